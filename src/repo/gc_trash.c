/* Step 1 of garbage collection (gc.h): an earlier run's trash is emptied once every session
 * that was alive while that run moved objects has ended or gone stale. Before anything is
 * deleted, every trashed chunk or index that a manifest written since that run's mark uses is
 * moved back: a writer whose session was alive then may have found such a chunk present just
 * before the move and committed a snapshot using it (virtbackup-repository(5)). */
#include "digest_set.h"
#include "gc.h"
#include "repo.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct trash_walk {
    struct repo *r;
    bool delete;
    uint64_t objects, bytes;
    char last[REPO_KEY_MAX + 64];
};

/* trash/<gc-id>/chunks/<hh>/<name> or trash/<gc-id>/indexes/<name> */
static int trashed_digest(const char *rest, bool *is_chunk, repo_digest *d)
{
    const char *slash = strrchr(rest, '/');
    if (!slash || repo_digest_parse(slash + 1, d) < 0)
        return -1;
    *is_chunk = strncmp(rest, "chunks/", 7) == 0;
    return *is_chunk || strncmp(rest, "indexes/", 8) == 0 ? 0 : -1;
}

static int visit_trashed(void *ctx, const char *key, const struct repo_stat *st,
                         struct vb_error *err)
{
    struct trash_walk *w = ctx;
    snprintf(w->last, sizeof w->last, "%s", key);
    w->objects++;
    w->bytes += st->size;
    if (w->delete &&w->r->store->ops->del(w->r->store, key, err) < 0)
        return -1;
    return 0;
}

static int walk_trash(struct repo *r, const char *prefix, struct trash_walk *w,
                      struct vb_error *err)
{
    w->r = r;
    w->last[0] = '\0';
    for (bool more = true, first = true; more; first = false) {
        char after[sizeof w->last];
        snprintf(after, sizeof after, "%s", w->last);
        if (r->store->ops->list(r->store, prefix, first ? NULL : after, 0, visit_trashed, w, &more,
                                err) < 0)
            return vb_error_prefix(err, "%s: %s", r->path, prefix);
    }
    return 0;
}

/* Moves back every object of the trash that is in wanted (what new manifests use). */
struct rescue_walk {
    struct repo *r;
    size_t prefix_len;
    struct repo_digest_set *want_chunks, *want_indexes;
    uint64_t rescued, rescued_bytes;
    char last[REPO_KEY_MAX + 64];
};

static int rescue_one(void *ctx, const char *key, const struct repo_stat *st, struct vb_error *err)
{
    struct rescue_walk *w = ctx;
    snprintf(w->last, sizeof w->last, "%s", key);
    bool is_chunk;
    repo_digest d;
    const char *rest = key + w->prefix_len;
    if (trashed_digest(rest, &is_chunk, &d) < 0)
        return 0;
    if (!repo_digest_set_has(is_chunk ? w->want_chunks : w->want_indexes, &d))
        return 0;
    int rc = w->r->store->ops->copy(w->r->store, key, rest, err);
    if (rc < 0)
        return vb_error_prefix(err, "moving %s back", key);
    if (rc == 0) {
        w->rescued++;
        w->rescued_bytes += st->size;
    }
    return 0;
}

static int rescue(struct repo *r, const char *prefix, const struct repo_gc_record *rec,
                  uint64_t *rescued, uint64_t *rescued_bytes, struct vb_error *err)
{
    struct rescue_walk *w = calloc(1, sizeof *w);
    if (!w)
        return vb_error_errno(err, "rescue");
    w->r = r;
    w->prefix_len = strlen(prefix);
    w->want_chunks = repo_digest_set_new();
    w->want_indexes = repo_digest_set_new();
    uint64_t manifests = 0;
    int rc = -1;
    if (!w->want_chunks || !w->want_indexes)
        vb_error_set(err, "out of memory");
    else
        rc = repo_gc_mark(r, rec->mark_time, w->want_indexes, w->want_chunks, &manifests, err);
    for (bool more = true, first = true; rc == 0 && more; first = false) {
        char after[sizeof w->last];
        snprintf(after, sizeof after, "%s", w->last);
        rc = r->store->ops->list(r->store, prefix, first ? NULL : after, 0, rescue_one, w, &more,
                                 err);
    }
    *rescued = w->rescued;
    *rescued_bytes = w->rescued_bytes;
    repo_digest_set_free(w->want_chunks);
    repo_digest_set_free(w->want_indexes);
    free(w);
    return rc;
}

/* Whether session id is alive now (listed and not stale). */
static bool session_alive(const char *id, int64_t now, int64_t stale,
                          const struct repo_session_info *sessions, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (strcmp(sessions[i].id, id) == 0)
            return now - sessions[i].mtime <= stale;
    return false;
}

int repo_gc_empty_trash(struct repo *r, const char *gc_id, const struct repo_gc_record *rec,
                        int64_t now, const struct repo_session_info *sessions, size_t n_sessions,
                        bool dry_run, struct repo_gc_trash *t, struct vb_error *err)
{
    memset(t, 0, sizeof *t);
    snprintf(t->gc_id, sizeof t->gc_id, "%s", gc_id);
    int64_t stale = repo_session_stale_seconds(r);
    t->waiting = calloc(rec->n_alive + 1, sizeof *t->waiting);
    if (!t->waiting)
        return vb_error_errno(err, "gc");
    for (size_t i = 0; i < rec->n_alive; i++)
        if (session_alive(rec->alive[i], now, stale, sessions, n_sessions))
            memcpy(t->waiting[t->n_waiting++], rec->alive[i], REPO_SESSION_ID_MAX);
    if (t->n_waiting)
        return 0;
    char prefix[REPO_KEY_MAX];
    snprintf(prefix, sizeof prefix, "trash/%s/", gc_id);
    struct trash_walk *w = calloc(1, sizeof *w);
    if (!w)
        return vb_error_errno(err, "gc");
    int rc = 0;
    uint64_t rescued_bytes = 0;
    if (!dry_run) {
        rc = rescue(r, prefix, rec, &t->rescued, &rescued_bytes, err);
        w->delete = true;
    }
    if (rc == 0)
        rc = walk_trash(r, prefix, w, err);
    /* a rescued object's trash name is deleted, its bytes stay */
    t->freed_objects = w->objects - (w->objects >= t->rescued ? t->rescued : w->objects);
    t->freed_bytes = w->bytes - (w->bytes >= rescued_bytes ? rescued_bytes : w->bytes);
    free(w);
    if (rc < 0)
        return vb_error_prefix(err, "emptying the trash of gc %s", gc_id);
    t->emptied = true;
    if (dry_run)
        return 0;
    struct repo_gc_record done = *rec;
    snprintf(done.state, sizeof done.state, "emptied");
    done.freed = t->freed_bytes;
    return repo_gc_record_put(r, gc_id, &done, err);
}
