/* One disk of one point of a stream chain into the repository (virtrepo(1), IMPORT): the
 * point's stream file replayed onto the previous point's chunk list, chunk by chunk. A chunk
 * no extent of the file touches keeps its digest (nothing read); a touched one is the
 * previous point's chunk (read from the repository) with the file's DATA and ZERO extents
 * applied, put through the snapshot writer like a backup's. The disk is never materialised
 * whole. */
#ifndef VB_VIRTREPO_IMPORT_REPLAY_H
#define VB_VIRTREPO_IMPORT_REPLAY_H

#include <stdbool.h>

#include "error.h"
#include "repo.h"
#include "snapshot_writer.h"
#include "stream_index.h"

/* The disk as of the point whose stream file is si: prev is the disk's index at the point
 * before (NULL: none, the file is a base and every range it does not describe is zero). With
 * check_prev, each chunk taken over from prev is first checked to exist (prev came from a
 * snapshot committed by an earlier run, not from this one). *index receives the new index's
 * digest, *stats what it cost. 0, or -1 (nothing of the snapshot is committed). */
int import_replay_disk(struct repo *r, const struct repo_index *prev, bool check_prev,
                       const struct stream_index *si, repo_digest *index,
                       struct repo_disk_stats *stats, struct vb_error *err);

#endif
