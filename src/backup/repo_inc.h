/* Which chunks of a disk an incremental into a repository reads (virtbackup(1), REPOSITORY
 * OUTPUT): every chunk a dirty range touches is read whole, its allocated parts only (holes
 * are zeroes), and so is every chunk whose base chunk is missing (virtbackup-repository(5),
 * BAD CHUNKS); every other chunk's digest is copied from the base snapshot's index. A disk
 * that grew re-reads the base's last chunk when it was short and everything past it; one that
 * shrank re-reads its new last chunk when it is short. */
#ifndef VB_BACKUP_REPO_INC_H
#define VB_BACKUP_REPO_INC_H

#include <stdint.h>

#include "backup.h"

struct repo_inc_plan {
    unsigned char *touched; /* by chunk: 1 read it, 0 copy the base's digest */
    uint64_t nchunks, ntouched;
    struct extent_list read; /* the DATA extents of the touched chunks, ascending */
};

/* The plan for a disk of size bytes in chunks of cs: dirty, the dirty ranges (DATA and ZERO
 * extents alike: both changed), alloc, the allocation of the whole disk, base_size, the
 * base's virtual size, base_missing, by chunk of the base, 1 where the base's chunk is
 * missing from the repository (NULL: none): such a chunk is read as if it had changed, so
 * that its content is stored again. 0, or -1 (out of memory). */
int repo_inc_plan_make(const struct extent_list *dirty, const struct extent_list *alloc,
                       uint64_t size, uint32_t cs, uint64_t base_size,
                       const unsigned char *base_missing, struct repo_inc_plan *p,
                       struct vb_error *err);
void repo_inc_plan_free(struct repo_inc_plan *p);

#endif
