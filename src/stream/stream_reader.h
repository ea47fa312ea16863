/* Sequential reads of a stream file's content in bounded memory: what stream_index_read does,
 * but a compressed 32 MiB slice is never held whole. Its LZ4 frame is decoded as a stream: the
 * compressed bytes are read in chunks of at most in_chunk bytes and the output goes straight
 * to the caller's buffer, so memory is in_chunk plus the LZ4 decoder's state (a few hundred
 * KiB for 64 KiB blocks), whatever the frame's block mode: frames with linked blocks (the
 * reference's, python-lz4) decode this way as well as our independent ones.
 *
 * The reader keeps its place: a read that starts at or after where the previous one ended,
 * inside the same LZ4 frame, continues decoding (skipped bytes are decoded and dropped, as
 * linked blocks require); any other read starts the frame holding it afresh. Reading a slice
 * front to back in any number of reads therefore decodes it exactly once, and checks its
 * block and content checksums (unless the index's lz4_checksums is false), its size and that
 * nothing follows it. One reader per thread;
 * sources are read with pread only. */
#ifndef VB_STREAM_READER_H
#define VB_STREAM_READER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "error.h"
#include "stream_index.h"

#define STREAM_READER_IN_CHUNK (512 * 1024)

struct stream_reader {
    size_t in_chunk;
    void *dctx; /* LZ4F_dctx */
    uint8_t *in;
    size_t in_len, in_pos; /* buffered compressed bytes, and how many were consumed */
    uint8_t *scratch;      /* for skipped bytes when the caller's buffer is small */
    /* the LZ4 frame being decoded */
    const struct stream_index *idx; /* NULL: none */
    const struct stream_slice *slice;
    uint64_t in_read; /* compressed bytes of the frame read from the file so far */
    uint64_t pos;     /* raw offset in the extent of the next decoded byte */
    bool started;     /* frame header parsed */
};

/* in_chunk 0: STREAM_READER_IN_CHUNK. */
int stream_reader_init(struct stream_reader *r, size_t in_chunk, struct vb_error *err);
void stream_reader_free(struct stream_reader *r);

/* Bytes a reader holds at most (input chunk, scratch and LZ4 state for frames with blocks up
 * to block_max bytes), for memory budgets. */
size_t stream_reader_footprint(size_t in_chunk, size_t block_max);

/* Reads [off, off+len) of extent e of idx into dst, like stream_index_read. Errors name the
 * file and the file offset of the LZ4 frame. After an error the reader starts afresh. */
int stream_reader_read(struct stream_reader *r, const struct stream_index *idx, size_t e,
                       uint64_t off, size_t len, void *dst, struct vb_error *err);

#endif
