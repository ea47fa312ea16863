/* The one-pass plan of a restore: the pieces of the final disk content that need I/O, cut
 * from the chain index (newest file wins, final zeroes dropped: a fresh image reads as zero).
 * A piece never crosses an LZ4 frame (32 MiB slice) of a compressed file and names it, so
 * the pieces of one frame (consecutive in the plan) can be decoded in one streaming pass;
 * pieces of uncompressed files are at most max_piece bytes. Depends on the stream library
 * only, so it is unit-tested on its own. */
#ifndef VR_PIECE_PLAN_H
#define VR_PIECE_PLAN_H

#include <stddef.h>
#include <stdint.h>

#include "chain_index.h"

struct restore_piece {
    uint64_t voff;   /* virtual offset of the first byte */
    uint64_t len;    /* bytes */
    uint32_t file;   /* chain position (index into ci->files) */
    uint32_t extent; /* extent of that file that holds the bytes */
    uint32_t slice;  /* compressed: its LZ4 frame (index into the file's slices); else
                        RESTORE_NO_SLICE */
};

#define RESTORE_NO_SLICE UINT32_MAX

struct restore_work {
    size_t n;
    struct restore_piece *pieces; /* ascending voff */
    uint64_t bytes;               /* sum of len */
    uint64_t stored;              /* bytes read from the input files (compressed size) */
};

int restore_work_build(const struct chain_index *ci, uint64_t max_piece, struct restore_work *w,
                       struct vb_error *err);
void restore_work_free(struct restore_work *w);

#endif
