/* The walk over every snapshot of a repository that snapshots, forget, check and verify
 * share: keys listed, each manifest read and parsed, damaged ones kept and marked. */
#include <stdlib.h>
#include <string.h>

#include "vector.h"
#include "virtrepo.h"

static int add_key(void *ctx, const char *uuid, const char *id, struct vb_error *err)
{
    struct virtrepo_snapshots *s = ctx;
    struct virtrepo_snapshot x = {0};
    if (strlen(uuid) > REPO_UUID_LEN || strlen(id) >= sizeof x.id)
        return vb_error_set(err, "snapshot key %s/%s: too long", uuid, id);
    strcpy(x.uuid, uuid);
    strcpy(x.id, id);
    if (vb_vector_push(s, x) < 0)
        return vb_error_set(err, "out of memory");
    return 0;
}

static int by_id(const void *a, const void *b)
{
    const struct virtrepo_snapshot *x = a, *y = b;
    int c = strcmp(x->id, y->id);
    return c ? c : strcmp(x->uuid, y->uuid);
}

int virtrepo_load_snapshots(struct repo *r, struct virtrepo_snapshots *out, struct vb_error *err)
{
    memset(out, 0, sizeof *out);
    if (repo_list_snapshots(r, NULL, add_key, out, err) < 0) {
        virtrepo_snapshots_free(out);
        return vb_error_prefix(err, "listing the snapshots");
    }
    if (out->n) /* an empty repository has no array: qsort wants one */
        qsort(out->v, out->n, sizeof *out->v, by_id);
    for (size_t i = 0; i < out->n; i++) {
        struct virtrepo_snapshot *s = &out->v[i];
        s->parsed = repo_get_manifest(r, s->uuid, s->id, &s->m, &s->error) == 0;
    }
    return 0;
}

void virtrepo_snapshots_free(struct virtrepo_snapshots *s)
{
    for (size_t i = 0; i < s->n; i++)
        repo_manifest_free(&s->v[i].m);
    vb_vector_free(s);
}
