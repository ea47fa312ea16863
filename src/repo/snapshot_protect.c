/* Protection markers (snapshot_protect.h): snapshots/<uuid>/<id>.protected, empty. The
 * snapshot listing passes over them (only <id>.json names a snapshot), so a marker is
 * invisible to every reader but these functions. */
#include <stdlib.h>
#include <string.h>

#include "snapshot_protect.h"

#define MARKER_SUFFIX ".protected"

static int marker_key(const char *uuid, const char *id, char key[REPO_KEY_MAX],
                      struct vb_error *err)
{
    if (!uuid || repo_snapshot_key(uuid, id, key) < 0)
        return vb_error_set(err, "snapshot %s of %s: not a snapshot id and domain uuid", id,
                            uuid ? uuid : "(no uuid)");
    char *dot = strrchr(key, '.'); /* snapshots/<uuid>/<id>.json */
    if ((size_t)(dot - key) + sizeof MARKER_SUFFIX > REPO_KEY_MAX)
        return vb_error_set(err, "snapshot %s: key too long", id);
    strcpy(dot, MARKER_SUFFIX);
    return 0;
}

int repo_snapshot_protect(struct repo *r, const char *uuid, const char *id, struct vb_error *err)
{
    char key[REPO_KEY_MAX];
    if (marker_key(uuid, id, key, err) < 0)
        return -1;
    struct repo_manifest m;
    int rc = repo_get_manifest(r, uuid, id, &m, err);
    repo_manifest_free(&m);
    if (rc < 0)
        return -1;
    if (r->store->ops->put(r->store, key, "", 0, err) < 0)
        return vb_error_prefix(err, "protecting snapshot %s", id);
    return 0;
}

int repo_snapshot_unprotect(struct repo *r, const char *uuid, const char *id, struct vb_error *err)
{
    char key[REPO_KEY_MAX];
    if (marker_key(uuid, id, key, err) < 0)
        return -1;
    int rc = r->store->ops->del(r->store, key, err);
    if (rc < 0)
        return vb_error_prefix(err, "unprotecting snapshot %s", id);
    return rc;
}

int repo_snapshot_is_protected(struct repo *r, const char *uuid, const char *id,
                               struct vb_error *err)
{
    char key[REPO_KEY_MAX];
    if (marker_key(uuid, id, key, err) < 0)
        return -1;
    /* a get of the whole (empty) object: as cheap as a head, on every backend */
    void *data = NULL;
    size_t got = 0;
    int rc = r->store->ops->get(r->store, key, 0, 0, &data, &got, err);
    free(data);
    if (rc < 0)
        return vb_error_prefix(err, "snapshot %s: its protection marker", id);
    return rc == 0 ? 1 : 0;
}
