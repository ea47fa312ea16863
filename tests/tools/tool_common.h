/* Small helpers shared by the test tools (header-only: each tool is one file). */
#ifndef VB_TOOL_COMMON_H
#define VB_TOOL_COMMON_H

#include <stdint.h>

#include "stream_index.h"

/* The end of the read piece that starts at pos inside extent x: pieces never cross a 32 MiB
 * boundary of the extent, so compressed slices are decoded whole (and verified). */
static inline uint64_t tool_piece_end(const struct stream_extent *x, uint64_t pos, uint64_t limit)
{
    uint64_t rel = pos - x->start;
    uint64_t end = x->start + (rel / STREAM_SLICE_SIZE + 1) * STREAM_SLICE_SIZE;
    return end < limit ? end : limit;
}

#endif
