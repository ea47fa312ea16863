/* The protection marker of a snapshot (virtbackup-repository(5)): an empty object
 * snapshots/<uuid>/<id>.protected beside the manifest, which stays immutable. A protected
 * snapshot is never pruned and not forgotten without --force (virtrepo(1)). */
#ifndef VB_REPO_SNAPSHOT_PROTECT_H
#define VB_REPO_SNAPSHOT_PROTECT_H

#include "error.h"
#include "repo.h"

/* Protects snapshot id of the VM uuid: its manifest must be there and parse; the marker is
 * put (again, when it is there already). 0, or -1. */
int repo_snapshot_protect(struct repo *r, const char *uuid, const char *id, struct vb_error *err);

/* Deletes the marker: 0 deleted, 1 the snapshot was not protected, -1 an error. */
int repo_snapshot_unprotect(struct repo *r, const char *uuid, const char *id, struct vb_error *err);

/* 1 protected, 0 not, -1 an error (the store could not say). */
int repo_snapshot_is_protected(struct repo *r, const char *uuid, const char *id,
                               struct vb_error *err);

#endif
