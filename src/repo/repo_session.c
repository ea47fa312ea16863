/* Sessions (repo_session.h): the session object, its heartbeat thread, the store's clock. The
 * protocol is in virtbackup-repository(5). */
#include "repo_session.h"

#include "repo.h"

#include <errno.h>
#include <jansson.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#define SESSION_KEY_MAX 64
#define SESSION_OBJ_MAX 4096

struct repo_session {
    struct repo *r;
    char id[REPO_SESSION_ID_MAX];
    char key[SESSION_KEY_MAX];
    char *body; /* the JSON put at every refresh */
    pthread_t thread;
    bool thread_started;
    pthread_mutex_t lock;
    pthread_cond_t cond;
    bool stopping;
    /* the mtime of the last refresh, and whether the session went stale at some moment */
    int64_t last_mtime;
    bool lost;
    struct vb_error lost_why;
};

static bool lower_hex(char c)
{
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f');
}

void repo_session_id_new(char id[REPO_SESSION_ID_MAX])
{
    unsigned char r[8];
    if (getrandom(r, sizeof r, GRND_NONBLOCK) != (ssize_t)sizeof r) {
        /* uniqueness is what the random part is for: clock and pid do without the kernel's */
        struct timeval tv;
        gettimeofday(&tv, NULL);
        uint64_t v = (uint64_t)tv.tv_usec * 2654435761u ^ (uint64_t)getpid() << 20 ^
                     (uint64_t)tv.tv_sec << 40;
        memcpy(r, &v, sizeof r);
    }
    time_t t = time(NULL);
    struct tm tm;
    char when[20];
    if (!gmtime_r(&t, &tm) || strftime(when, sizeof when, "%Y%m%dT%H%M%SZ", &tm) != 16)
        strcpy(when, "19700101T000000Z");
    snprintf(id, REPO_SESSION_ID_MAX, "%.16s-%02x%02x%02x%02x%02x%02x%02x%02x", when, r[0], r[1],
             r[2], r[3], r[4], r[5], r[6], r[7]);
}

bool repo_session_id_valid(const char *id)
{
    if (strnlen(id, REPO_SESSION_ID_LEN + 1) != REPO_SESSION_ID_LEN || id[8] != 'T' ||
        id[15] != 'Z' || id[16] != '-')
        return false;
    for (int i = 0; i < REPO_SESSION_ID_LEN; i++) {
        if (i == 8 || i == 15 || i == 16)
            continue;
        if (i < 16 ? !(id[i] >= '0' && id[i] <= '9') : !lower_hex(id[i]))
            return false;
    }
    return true;
}

const char *repo_session_id(const struct repo_session *s)
{
    return s->id;
}

int64_t repo_session_stale_seconds(const struct repo *r)
{
    return r->config.session_stale_seconds;
}

int repo_store_now(struct repo *r, const char *tag, int64_t *now, struct vb_error *err)
{
    struct repo_store *st = r->store;
    char key[SESSION_KEY_MAX + 16];
    char rnd[REPO_SESSION_ID_MAX];
    if (!tag) {
        repo_session_id_new(rnd);
        tag = rnd;
    }
    snprintf(key, sizeof key, "clock/%s", tag);
    if (st->ops->put(st, key, "", 0, err) < 0)
        return vb_error_prefix(err, "%s: reading the store's clock", r->path);
    struct repo_stat rs = {0};
    int rc = st->ops->head(st, key, &rs, err);
    struct vb_error ignored = {0};
    st->ops->del(st, key, &ignored);
    if (rc == 1)
        return vb_error_set(err, "%s: reading the store's clock: %s vanished", r->path, key);
    if (rc < 0)
        return vb_error_prefix(err, "%s: reading the store's clock", r->path);
    *now = rs.mtime;
    return 0;
}

/* Puts the session object again; notes when the session had gone stale since the last
 * refresh (its object gone, or the gap between two refreshes beyond the stale interval). */
static int refresh(struct repo_session *s, struct vb_error *err)
{
    struct repo_store *st = s->r->store;
    struct repo_stat before = {0};
    int had = st->ops->head(st, s->key, &before, err);
    if (had < 0)
        return -1;
    if (st->ops->put(st, s->key, s->body, strlen(s->body), err) < 0)
        return -1;
    struct repo_stat after = {0};
    int rc = st->ops->head(st, s->key, &after, err);
    if (rc != 0)
        return rc < 0 ? -1 : vb_error_set(err, "%s vanished after its put", s->key);
    int64_t stale = repo_session_stale_seconds(s->r);
    pthread_mutex_lock(&s->lock);
    if (!s->lost && had == 1) {
        s->lost = true;
        vb_error_set(&s->lost_why, "its object %s was removed", s->key);
    } else if (!s->lost && after.mtime - s->last_mtime > stale) {
        s->lost = true;
        vb_error_set(&s->lost_why, "not refreshed for %lld seconds (stale after %lld)",
                     (long long)(after.mtime - s->last_mtime), (long long)stale);
    }
    s->last_mtime = after.mtime;
    pthread_mutex_unlock(&s->lock);
    return 0;
}

static void *heartbeat(void *arg)
{
    struct repo_session *s = arg;
    pthread_mutex_lock(&s->lock);
    while (!s->stopping) {
        struct timespec until;
        clock_gettime(CLOCK_REALTIME, &until);
        until.tv_sec += s->r->config.heartbeat_seconds;
        int rc = 0;
        while (!s->stopping && rc != ETIMEDOUT)
            rc = pthread_cond_timedwait(&s->cond, &s->lock, &until);
        if (s->stopping)
            break;
        pthread_mutex_unlock(&s->lock);
        /* a failed refresh is retried at the next beat; the gap it leaves is what
         * repo_session_check judges */
        struct vb_error err = {0};
        refresh(s, &err);
        pthread_mutex_lock(&s->lock);
    }
    pthread_mutex_unlock(&s->lock);
    return NULL;
}

static char *session_body(const char *kind, const char *vm)
{
    char host[256] = "";
    if (gethostname(host, sizeof host - 1) < 0)
        strcpy(host, "?");
    char started[REPO_TIME_MAX];
    repo_time_format(time(NULL), true, started);
    json_t *o = json_pack("{s:s, s:s, s:I, s:o, s:s}", "kind", kind, "host", host, "pid",
                          (json_int_t)getpid(), "vm", vm ? json_string(vm) : json_null(), "started",
                          started);
    char *text = o ? json_dumps(o, JSON_COMPACT) : NULL;
    json_decref(o);
    return text;
}

int repo_session_begin(struct repo *r, const char *kind, const char *vm, struct repo_session **out,
                       struct vb_error *err)
{
    *out = NULL;
    struct repo_session *s = calloc(1, sizeof *s);
    if (!s)
        return vb_error_errno(err, "session");
    s->r = r;
    repo_session_id_new(s->id);
    snprintf(s->key, sizeof s->key, "sessions/%s", s->id);
    pthread_mutex_init(&s->lock, NULL);
    pthread_cond_init(&s->cond, NULL);
    s->body = session_body(kind, vm);
    if (!s->body) {
        vb_error_set(err, "session: out of memory");
        goto fail;
    }
    struct repo_store *st = r->store;
    if (st->ops->put(st, s->key, s->body, strlen(s->body), err) < 0)
        goto fail;
    struct repo_stat rs = {0};
    int rc = st->ops->head(st, s->key, &rs, err);
    if (rc != 0) {
        if (rc == 1)
            vb_error_set(err, "%s vanished after its put", s->key);
        goto fail_put;
    }
    s->last_mtime = rs.mtime;
    if (pthread_create(&s->thread, NULL, heartbeat, s) != 0) {
        vb_error_set(err, "session: cannot start the heartbeat thread");
        goto fail_put;
    }
    s->thread_started = true;
    if (!r->session)
        r->session = s;
    *out = s;
    return 0;
fail_put:;
    struct vb_error ignored = {0};
    st->ops->del(st, s->key, &ignored);
fail:
    vb_error_prefix(err, "%s: beginning a %s session", r->path, kind);
    pthread_mutex_destroy(&s->lock);
    pthread_cond_destroy(&s->cond);
    free(s->body);
    free(s);
    return -1;
}

int repo_session_begin_reader(struct repo *r, const char *path, const char *kind,
                              struct vb_error *err)
{
    struct repo_session *s = NULL;
    if (repo_session_begin(r, kind, NULL, &s, err) == 0)
        return 0;
    /* a repository on read-only storage (a mounted copy, a read-only share) cannot hold a
     * session, and no garbage collection can run on it either: read it without one */
    if (access(path, W_OK) == 0 || (errno != EROFS && errno != EACCES))
        return -1;
    vb_error_set(err, "%s is read-only (%s): reading it without a session", path, strerror(errno));
    return 1;
}

struct repo *repo_open_session(const char *path, const char *kind, const char *vm,
                               struct vb_error *err)
{
    struct repo *r = repo_open(path, NULL, err);
    struct repo_session *s = NULL;
    if (r && repo_session_begin(r, kind, vm, &s, err) < 0) {
        repo_close(r);
        return NULL;
    }
    return r;
}

int repo_session_check(struct repo_session *s, struct vb_error *err)
{
    struct vb_error why = {0};
    if (refresh(s, &why) < 0) {
        return vb_error_set(err,
                            "session went stale: the repository may have been "
                            "garbage-collected meanwhile; nothing committed (refreshing %s: %s)",
                            s->key, why.msg);
    }
    pthread_mutex_lock(&s->lock);
    bool lost = s->lost;
    why = s->lost_why;
    pthread_mutex_unlock(&s->lock);
    if (lost)
        return vb_error_set(err,
                            "session went stale: the repository may have been "
                            "garbage-collected meanwhile; nothing committed (session %s: %s)",
                            s->id, why.msg);
    return 0;
}

void repo_session_end(struct repo_session *s)
{
    if (!s)
        return;
    if (s->r->session == s)
        s->r->session = NULL;
    if (s->thread_started) {
        pthread_mutex_lock(&s->lock);
        s->stopping = true;
        pthread_cond_signal(&s->cond);
        pthread_mutex_unlock(&s->lock);
        pthread_join(s->thread, NULL);
    }
    struct vb_error ignored = {0};
    s->r->store->ops->del(s->r->store, s->key, &ignored);
    pthread_mutex_destroy(&s->lock);
    pthread_cond_destroy(&s->cond);
    free(s->body);
    free(s);
}

/* ---- the listing gc reads ---- */

struct session_walk {
    struct repo_session_info *v;
    size_t n, cap;
    char last[SESSION_KEY_MAX + 8];
};

static int collect_session(void *ctx, const char *key, const struct repo_stat *st,
                           struct vb_error *err)
{
    struct session_walk *w = ctx;
    snprintf(w->last, sizeof w->last, "%s", key);
    const char *id = key + strlen("sessions/");
    if (!repo_session_id_valid(id))
        return 0;
    if (w->n == w->cap) {
        size_t cap = w->cap ? 2 * w->cap : 16;
        void *v = realloc(w->v, cap * sizeof *w->v);
        if (!v)
            return vb_error_errno(err, "listing sessions");
        w->v = v;
        w->cap = cap;
    }
    struct repo_session_info *i = &w->v[w->n++];
    memset(i, 0, sizeof *i);
    snprintf(i->id, sizeof i->id, "%s", id);
    i->mtime = st->mtime;
    return 0;
}

int repo_sessions_list(struct repo *r, bool with_kind, struct repo_session_info **out, size_t *n,
                       struct vb_error *err)
{
    struct session_walk w = {0};
    *out = NULL;
    *n = 0;
    for (bool more = true, first = true; more; first = false) {
        char after[sizeof w.last];
        snprintf(after, sizeof after, "%s", w.last);
        if (r->store->ops->list(r->store, "sessions/", first ? NULL : after, 0, collect_session, &w,
                                &more, err) < 0) {
            free(w.v);
            return vb_error_prefix(err, "%s: listing sessions", r->path);
        }
    }
    for (size_t i = 0; with_kind && i < w.n; i++) {
        char key[SESSION_KEY_MAX];
        snprintf(key, sizeof key, "sessions/%s", w.v[i].id);
        void *data = NULL;
        size_t got = 0;
        struct vb_error ignored = {0};
        if (r->store->ops->get(r->store, key, 0, SESSION_OBJ_MAX, &data, &got, &ignored) != 0)
            continue; /* ended meanwhile */
        json_t *o = json_loadb(data, got, 0, NULL);
        json_t *k = o ? json_object_get(o, "kind") : NULL;
        if (json_is_string(k))
            snprintf(w.v[i].kind, sizeof w.v[i].kind, "%s", json_string_value(k));
        json_decref(o);
        free(data);
    }
    *out = w.v;
    *n = w.n;
    return 0;
}
