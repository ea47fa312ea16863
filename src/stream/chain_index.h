/* The final content of a disk at one point in time, merged from the stream indexes of a chain
 * plan: sorted, non-overlapping segments, each naming the newest file that describes it.
 * Restore plans its one pass from it; map serves reads from it. Lookup is O(log n). */
#ifndef VB_CHAIN_INDEX_H
#define VB_CHAIN_INDEX_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "error.h"
#include "stream_index.h"

struct chain_segment {
    uint64_t start;
    uint64_t length;
    uint32_t file;   /* position in the chain (0 = base) */
    uint32_t extent; /* extent of that file's index that holds the bytes */
    bool zero;       /* final content is zero */
};

struct chain_index {
    size_t nfiles;
    struct stream_index **files; /* borrowed, in apply order */
    size_t nsegs;
    struct chain_segment *segs;
    uint64_t virtual_size; /* of the last file: the disk's size at this point */
    uint64_t data_bytes;   /* bytes of the final content held in DATA segments */
};

/* files: stream indexes in apply order (oldest first); later files win. */
struct chain_index *chain_index_build(struct stream_index **files, size_t nfiles,
                                      struct vb_error *err);
void chain_index_free(struct chain_index *ci);

/* The segment containing voff, or the first one after it (== nsegs if none). Regions no
 * segment covers were never described by any file and read as zeroes. */
size_t chain_index_lookup(const struct chain_index *ci, uint64_t voff);

/* Reads the final content of [off, off+len) into dst. */
int chain_index_read(const struct chain_index *ci, uint64_t off, size_t len, void *dst,
                     struct stream_read_buf *buf, struct vb_error *err);

#endif
