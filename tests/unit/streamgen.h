/* Builds stream files for tests from a list of extents over an in-memory disk image. */
#ifndef VB_STREAMGEN_H
#define VB_STREAMGEN_H

#include <stdbool.h>
#include <stdint.h>

#include "meta.h"

struct gen_extent {
    uint64_t start, length;
    bool zero;
};

struct gen_stream {
    const char *path;
    const uint8_t *disk; /* DATA bytes come from disk[start..] */
    uint64_t virtual_size;
    int compressed; /* STREAM_META_COMPRESSED_FALSE or level */
    bool incremental;
    const char *checkpoint, *parent, *disk_name;
    const struct gen_extent *extents;
    size_t nextents;
    size_t piece; /* nonzero: deliver DATA in pieces of this size (streaming path) */
    bool summed;  /* with piece: pass each piece's adler32 (append_summed) */
    bool async;   /* write through stream_sink_async */
    int threads;  /* compressed: 0 the default, -1 on the writer's thread, N workers */
};

/* Writes the stream (and its .chksum); returns 0, or -1 printing the error. */
int gen_write(const struct gen_stream *g);

#endif
