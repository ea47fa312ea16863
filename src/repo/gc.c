/* Garbage collection (gc.h), the run: refuse a second gc, empty earlier trashes (gc_trash.c),
 * mark (gc_mark.c), move what nothing refers to into trash/<gc-id>/, record. The protocol and
 * why it is safe while backups and restores run are in virtbackup-repository(5). */
#include "gc.h"

#include "digest_set.h"
#include "repo.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct move_walk {
    struct repo *r;
    const struct repo_gc_options *o;
    const char *gc_id;
    bool chunks; /* chunks/ or indexes/ */
    struct repo_digest_set *keep;
    uint64_t moved, bytes;
    char last[REPO_KEY_MAX + 64];
};

/* chunks/<hh>/<name> or indexes/<name>: moved to trash/<gc-id>/<key> unless kept */
static int move_one(void *ctx, const char *key, const struct repo_stat *st, struct vb_error *err)
{
    struct move_walk *w = ctx;
    snprintf(w->last, sizeof w->last, "%s", key);
    const char *slash = strrchr(key, '/');
    repo_digest d;
    if (!slash || repo_digest_parse(slash + 1, &d) < 0)
        return 0; /* not an object of the repository's */
    if (w->chunks && (slash - key != 9 || strncmp(slash - 2, slash + 1, 2) != 0))
        return 0; /* chunks/<hh>/ must be the name's first digits */
    if (repo_digest_set_has(w->keep, &d))
        return 0;
    if (!w->o->dry_run) {
        char dst[REPO_KEY_MAX + 64];
        snprintf(dst, sizeof dst, "trash/%s/%s", w->gc_id, key);
        struct repo_store *s = w->r->store;
        int rc = s->ops->copy(s, key, dst, err);
        if (rc == 1)
            return 0; /* deleted meanwhile (another gc's trash emptied it cannot: one gc) */
        if (rc < 0 || s->ops->del(s, key, err) < 0)
            return vb_error_prefix(err, "moving %s to the trash", key);
        if (w->o->moved_hook)
            w->o->moved_hook(w->o->hook_ctx);
    }
    w->moved++;
    w->bytes += st->size;
    return 0;
}

static int move_unreferenced(struct repo *r, const struct repo_gc_options *o, const char *gc_id,
                             const char *prefix, struct repo_digest_set *keep, uint64_t *moved,
                             uint64_t *bytes, struct vb_error *err)
{
    struct move_walk *w = calloc(1, sizeof *w);
    if (!w)
        return vb_error_errno(err, "gc");
    w->r = r;
    w->o = o;
    w->gc_id = gc_id;
    w->chunks = strcmp(prefix, "chunks/") == 0;
    w->keep = keep;
    int rc = 0;
    for (bool more = true, first = true; more && rc == 0; first = false) {
        char after[sizeof w->last];
        snprintf(after, sizeof after, "%s", w->last);
        rc =
            r->store->ops->list(r->store, prefix, first ? NULL : after, 0, move_one, w, &more, err);
    }
    *moved = w->moved;
    *bytes = w->bytes;
    free(w);
    return rc < 0 ? vb_error_prefix(err, "%s: %s", r->path, prefix) : 0;
}

/* Another gc whose session is alive: refused, naming it. */
static int refuse_second_gc(struct repo *r, const char *own, int64_t now,
                            const struct repo_session_info *s, size_t n, struct vb_error *err)
{
    for (size_t i = 0; i < n; i++)
        if (strcmp(s[i].kind, "gc") == 0 && strcmp(s[i].id, own) != 0 &&
            now - s[i].mtime <= repo_session_stale_seconds(r))
            return vb_error_set(err,
                                "%s: another gc is running (session %s, refreshed %lld s "
                                "ago); one gc at a time",
                                r->path, s[i].id, (long long)(now - s[i].mtime));
    return 0;
}

/* Session and clock objects left by processes that died: a stale session is dead
 * (virtbackup-repository(5)), its object only clutters the listing. */
static void remove_stale_sessions(struct repo *r, int64_t now, const struct repo_session_info *s,
                                  size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (now - s[i].mtime <= repo_session_stale_seconds(r))
            continue;
        char key[REPO_KEY_MAX];
        snprintf(key, sizeof key, "sessions/%s", s[i].id);
        struct vb_error ignored = {0};
        r->store->ops->del(r->store, key, &ignored);
    }
}

/* Adds to ids (*n of them) every session alive now that it lacks, own excepted; with prune,
 * deletes the objects of stale ones. 0, or -1. */
static int add_alive_sessions(struct repo *r, const char *own, bool prune,
                              char (**ids)[REPO_SESSION_ID_MAX], size_t *n, struct vb_error *err)
{
    struct repo_session_info *s = NULL;
    size_t n_s = 0;
    int64_t now = 0;
    if (repo_store_now(r, NULL, &now, err) < 0 || repo_sessions_list(r, false, &s, &n_s, err) < 0)
        return -1;
    void *grown = realloc(*ids, (*n + n_s + 1) * sizeof **ids);
    if (!grown) {
        free(s);
        return vb_error_errno(err, "gc");
    }
    *ids = grown;
    for (size_t i = 0; i < n_s; i++) {
        if (strcmp(s[i].id, own) == 0 || now - s[i].mtime > repo_session_stale_seconds(r))
            continue;
        bool have = false;
        for (size_t j = 0; j < *n && !have; j++)
            have = strcmp((*ids)[j], s[i].id) == 0;
        if (!have)
            memcpy((*ids)[(*n)++], s[i].id, REPO_SESSION_ID_MAX);
    }
    if (prune)
        remove_stale_sessions(r, now, s, n_s);
    free(s);
    return 0;
}

/* Step 1: every earlier trash not emptied yet. */
static int empty_trashes(struct repo *r, const struct repo_gc_options *o, const char *own,
                         int64_t now, const struct repo_session_info *s, size_t n,
                         struct repo_gc_report *rep, struct vb_error *err)
{
    char(*ids)[REPO_SESSION_ID_MAX] = NULL;
    size_t n_ids = 0;
    if (repo_gc_record_ids(r, &ids, &n_ids, err) < 0)
        return -1;
    rep->trashes = calloc(n_ids + 1, sizeof *rep->trashes);
    int rc = rep->trashes ? 0 : vb_error_errno(err, "gc");
    for (size_t i = 0; rc == 0 && i < n_ids; i++) {
        if (strcmp(ids[i], own) == 0)
            continue;
        struct repo_gc_record rec;
        rc = repo_gc_record_get(r, ids[i], &rec, err);
        if (rc == 1) {
            rc = 0;
            continue;
        }
        if (rc < 0)
            break;
        /* a gc killed during its move (its session is dead: refuse_second_gc) recorded only
         * the sessions alive when its move began; one begun later may have found a chunk
         * present before it was moved: its trash waits for every session alive now too */
        if (strcmp(rec.state, "marked") == 0) {
            rc = add_alive_sessions(r, own, false, &rec.alive, &rec.n_alive, err);
            snprintf(rec.state, sizeof rec.state, "moved");
            if (rc == 0 && !o->dry_run)
                rc = repo_gc_record_put(r, ids[i], &rec, err);
        }
        if (rc == 0 && strcmp(rec.state, "emptied") != 0)
            rc = repo_gc_empty_trash(r, ids[i], &rec, now, s, n, o->dry_run,
                                     &rep->trashes[rep->n_trashes++], err);
        repo_gc_record_free(&rec);
    }
    free(ids);
    return rc;
}

int repo_gc_run(struct repo *r, const struct repo_gc_options *o, struct repo_gc_report *rep,
                struct vb_error *err)
{
    memset(rep, 0, sizeof *rep);
    rep->dry_run = o->dry_run;
    struct repo_session *session = NULL;
    struct repo_session_info *sessions = NULL;
    size_t n_sessions = 0;
    struct repo_digest_set *indexes = repo_digest_set_new(), *chunks = repo_digest_set_new();
    struct repo_gc_record rec = {0};
    int64_t now = 0;
    int rc = -1;
    if (!indexes || !chunks) {
        vb_error_set(err, "out of memory");
        goto out;
    }
    if (!o->dry_run) {
        if (repo_session_begin(r, "gc", NULL, &session, err) < 0)
            goto out;
        snprintf(rep->gc_id, sizeof rep->gc_id, "%s", repo_session_id(session));
    }
    const char *own = session ? rep->gc_id : "";
    if (repo_store_now(r, NULL, &now, err) < 0 ||
        repo_sessions_list(r, true, &sessions, &n_sessions, err) < 0 ||
        refuse_second_gc(r, own, now, sessions, n_sessions, err) < 0)
        goto out;
    /* 1: earlier trashes */
    if (empty_trashes(r, o, own, now, sessions, n_sessions, rep, err) < 0)
        goto out;
    /* 2: mark, from a time taken before the listing of manifests */
    if (repo_store_now(r, NULL, &rep->mark_time, err) < 0 ||
        repo_gc_mark(r, INT64_MIN, indexes, chunks, &rep->snapshots, err) < 0)
        goto out;
    /* 3: its trash waits for every session alive at some moment of the move: those alive
     * when it begins, and (below) those alive when it ends, which include every session
     * begun during the move and not ended before its end */
    if (add_alive_sessions(r, own, !o->dry_run, &rep->alive, &rep->n_alive, err) < 0)
        goto out;
    if (!o->dry_run) {
        snprintf(rec.state, sizeof rec.state, "marked");
        rec.mark_time = rep->mark_time;
        rec.alive = rep->alive;
        rec.n_alive = rep->n_alive;
        /* recorded before the first move: readers find the trash through the record */
        if (repo_gc_record_put(r, rep->gc_id, &rec, err) < 0)
            goto out;
    }
    if (move_unreferenced(r, o, rep->gc_id, "chunks/", chunks, &rep->moved_chunks,
                          &rep->moved_chunk_bytes, err) < 0 ||
        move_unreferenced(r, o, rep->gc_id, "indexes/", indexes, &rep->moved_indexes,
                          &rep->moved_index_bytes, err) < 0)
        goto out;
    if (add_alive_sessions(r, own, false, &rep->alive, &rep->n_alive, err) < 0)
        goto out;
    if (!o->dry_run) {
        snprintf(rec.state, sizeof rec.state, "moved");
        rec.alive = rep->alive;
        rec.n_alive = rep->n_alive;
        rec.moved = rep->moved_chunks + rep->moved_indexes;
        rec.bytes = rep->moved_chunk_bytes + rep->moved_index_bytes;
        if (repo_gc_record_put(r, rep->gc_id, &rec, err) < 0)
            goto out;
    }
    rc = 0;
out:
    free(sessions);
    repo_digest_set_free(indexes);
    repo_digest_set_free(chunks);
    repo_session_end(session);
    return rc;
}

void repo_gc_report_free(struct repo_gc_report *rep)
{
    for (size_t i = 0; i < rep->n_trashes; i++)
        free(rep->trashes[i].waiting);
    free(rep->trashes);
    free(rep->alive);
    memset(rep, 0, sizeof *rep);
}
