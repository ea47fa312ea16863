/* The mark of garbage collection (gc.h): every index and chunk the snapshot manifests refer
 * to, read from the manifests and their indexes. Nothing here needs a key: manifests name
 * their indexes and indexes their chunks in the clear (virtbackup-repository(5)). */
#include "digest_set.h"
#include "gc.h"
#include "repo.h"
#include "vector.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MARK_MANIFEST_MAX (64u << 20)

VB_VECTOR(key_list, char *);

struct manifest_walk {
    int64_t since;
    struct key_list keys;
    char last[REPO_KEY_MAX + 64];
};

/* snapshots/<uuid>/<id>.json written at or after since */
static int collect_manifest(void *ctx, const char *key, const struct repo_stat *st,
                            struct vb_error *err)
{
    struct manifest_walk *w = ctx;
    snprintf(w->last, sizeof w->last, "%s", key);
    size_t len = strlen(key);
    if (len < 5 || strcmp(key + len - 5, ".json") != 0)
        return 0; /* markers and other objects beside the manifests */
    if (w->since != INT64_MIN && st->mtime < w->since)
        return 0;
    char *copy = strdup(key);
    if (!copy || vb_vector_push(&w->keys, copy) < 0) {
        free(copy);
        return vb_error_errno(err, "listing snapshots");
    }
    return 0;
}

/* The chunks of index d added to chunks (when the index is new to indexes). */
static int mark_index(struct repo *r, const repo_digest *d, struct repo_digest_set *indexes,
                      struct repo_digest_set *chunks, struct vb_error *err)
{
    int added = repo_digest_set_add(indexes, d);
    if (added < 0)
        return vb_error_set(err, "out of memory");
    if (added == 0)
        return 0;
    struct repo_index idx;
    if (repo_get_index(r, d, &idx, err) < 0)
        return -1;
    int rc = 0;
    for (size_t i = 0; i < idx.n && rc == 0; i++)
        if (!repo_digest_is_zero(&idx.digests[i]) &&
            repo_digest_set_add(chunks, &idx.digests[i]) < 0)
            rc = vb_error_set(err, "out of memory");
    repo_index_free(&idx);
    return rc;
}

static int mark_manifest(struct repo *r, const char *key, struct repo_digest_set *indexes,
                         struct repo_digest_set *chunks, uint64_t *snapshots, struct vb_error *err)
{
    void *text = NULL;
    size_t len = 0;
    int rc = r->store->ops->get(r->store, key, 0, 0, &text, &len, err);
    if (rc == 1)
        return 0; /* forgotten meanwhile */
    if (rc < 0)
        return -1;
    struct repo_manifest m;
    memset(&m, 0, sizeof m);
    if (len > MARK_MANIFEST_MAX)
        rc = vb_error_set(err, "%zu bytes, more than a manifest holds", len);
    else
        rc = repo_manifest_parse(text, len, &m, err);
    free(text);
    for (size_t i = 0; rc == 0 && i < m.n_disks; i++)
        rc = mark_index(r, &m.disks[i].index, indexes, chunks, err);
    for (size_t i = 0; rc == 0 && i < m.n_blobs; i++)
        rc = mark_index(r, &m.blobs[i].index, indexes, chunks, err);
    repo_manifest_free(&m);
    if (rc < 0)
        return vb_error_prefix(err, "%s/%s", r->path, key);
    ++*snapshots;
    return 0;
}

int repo_gc_mark(struct repo *r, int64_t since, struct repo_digest_set *indexes,
                 struct repo_digest_set *chunks, uint64_t *snapshots, struct vb_error *err)
{
    struct manifest_walk *w = calloc(1, sizeof *w);
    if (!w)
        return vb_error_errno(err, "mark");
    w->since = since;
    int rc = 0;
    for (bool more = true, first = true; more && rc == 0; first = false) {
        char after[sizeof w->last];
        snprintf(after, sizeof after, "%s", w->last);
        rc = r->store->ops->list(r->store, "snapshots/", first ? NULL : after, 0, collect_manifest,
                                 w, &more, err);
    }
    if (rc < 0)
        vb_error_prefix(err, "%s: listing snapshots", r->path);
    for (size_t i = 0; rc == 0 && i < w->keys.n; i++)
        rc = mark_manifest(r, w->keys.v[i], indexes, chunks, snapshots, err);
    for (size_t i = 0; i < w->keys.n; i++)
        free(w->keys.v[i]);
    vb_vector_free(&w->keys);
    free(w);
    return rc;
}
