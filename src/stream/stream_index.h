/* The extent index of one stream file, built from one pass over its frame headers (no payload
 * reads): every DATA and ZERO frame with its virtual range, where its payload lies in the file
 * and, for compressed streams, the size and file offset of every LZ4 frame (32 MiB slice).
 * Building it is also the structural check of the file: anything that the reference's restore
 * would trip over, or that a careful reader should refuse, fails with file and byte offset. */
#ifndef VB_STREAM_INDEX_H
#define VB_STREAM_INDEX_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "error.h"
#include "frame.h"
#include "meta.h"
#include "source.h"

struct stream_extent {
    uint64_t start;       /* virtual (guest disk) offset */
    uint64_t length;      /* virtual length (uncompressed) */
    uint64_t file_offset; /* DATA: first payload byte in the file */
    uint64_t stored;      /* DATA: payload bytes in the file */
    uint32_t slice_first; /* compressed DATA: index into stream_index.slices */
    uint32_t slice_count;
    bool zero; /* ZERO frame (no payload) */
};

/* One LZ4 frame of a compressed DATA frame: raw bytes [raw_offset, raw_offset + raw_length)
 * of its extent, stored at [file_offset, file_offset + stored). */
struct stream_slice {
    uint64_t file_offset;
    uint64_t stored;
    uint64_t raw_offset;
    uint64_t raw_length;
};

struct stream_index {
    struct stream_source *source; /* owned */
    struct stream_meta meta;
    bool compressed;
    size_t nextents;
    struct stream_extent *extents; /* ascending, non-overlapping */
    size_t nslices;
    struct stream_slice *slices;
    uint64_t data_bytes, zero_bytes;
    size_t data_frames, zero_frames;
    /* false: skip LZ4 frames' xxh32 checksums when reading (stream_lz4_decompress_opts);
     * true after stream_index_build */
    bool lz4_checksums;
};

/* Reads and checks only the META frame. meta_end receives the offset after its CRLF. */
int stream_read_meta(struct stream_source *src, struct stream_meta *meta, uint64_t *meta_end,
                     struct vb_error *err);

/* Builds the index, taking ownership of src (freed on failure too). */
struct stream_index *stream_index_build(struct stream_source *src, struct vb_error *err);
struct stream_index *stream_index_open(const char *path, struct vb_error *err);
void stream_index_free(struct stream_index *idx);

/* The extent containing voff, or if none does, the first extent after it (== nextents if
 * none). O(log n). */
size_t stream_index_lookup(const struct stream_index *idx, uint64_t voff);

/* Scratch buffers for reads; one per thread. */
struct stream_read_buf {
    void *cbuf;
    size_t ccap;
    void *ubuf;
    size_t ucap;
};
void stream_read_buf_free(struct stream_read_buf *buf);

/* Reads [off, off+len) of extent e's uncompressed content into dst (ZERO extents give zeroes),
 * decoding and verifying LZ4 as needed. Thread-safe with one stream_read_buf per thread. */
int stream_index_read(const struct stream_index *idx, size_t e, uint64_t off, size_t len, void *dst,
                      struct stream_read_buf *buf, struct vb_error *err);

#endif
