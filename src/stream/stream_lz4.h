/* LZ4 frames as the stream format stores them (virtbackup-stream(5), COMPRESSION):
 * one LZ4 frame per DATA frame below 32 MiB, one per 32 MiB slice above; we write
 * independent 64 KiB blocks with block and content checksums and the content size, so
 * any LZ4 reader decodes them and a single block can be decoded on its own. */
#ifndef VB_STREAM_LZ4_H
#define VB_STREAM_LZ4_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "error.h"

#define STREAM_LZ4_BLOCK_SIZE (64 * 1024)

/* Worst-case size of one compressed frame of n bytes. */
size_t stream_lz4_bound(size_t n);

/* Compresses src into one LZ4 frame. Returns its size, or 0 with err set. */
size_t stream_lz4_compress(const void *src, size_t n, int level, void *dst, size_t cap,
                           struct vb_error *err);

/* Streaming encoder: one LZ4 frame built from pieces of any size (so a 32 MiB slice never has
 * to be held in memory). Output goes to the caller's buffer at each step. */
struct stream_lz4_encoder {
    void *cctx; /* LZ4F_cctx */
    int level;
};
int stream_lz4_encoder_init(struct stream_lz4_encoder *enc, int level, struct vb_error *err);
void stream_lz4_encoder_free(struct stream_lz4_encoder *enc);
/* Output bytes any single begin/update/end step with n input bytes may produce. */
size_t stream_lz4_encoder_bound(size_t n);
/* Each returns the bytes written to dst, or -1. */
int64_t stream_lz4_encoder_begin(struct stream_lz4_encoder *enc, uint64_t content_size, void *dst,
                                 size_t cap, struct vb_error *err);
int64_t stream_lz4_encoder_update(struct stream_lz4_encoder *enc, const void *src, size_t n,
                                  void *dst, size_t cap, struct vb_error *err);
int64_t stream_lz4_encoder_end(struct stream_lz4_encoder *enc, void *dst, size_t cap,
                               struct vb_error *err);

/* Decodes exactly one LZ4 frame of n bytes into exactly expect bytes, verifying the
 * checksums the frame carries. Errors give the byte position inside the frame. */
int stream_lz4_decompress(const void *src, size_t n, void *dst, size_t expect,
                          struct vb_error *err);
/* The same; with checksums false the frame's xxh32 checksums (block and content: two more
 * passes over the data) are neither computed nor verified. Only for callers that check the
 * whole file otherwise before trusting the result (a restore checks .chksum before it
 * commits the image). Corrupt input still cannot make the decoder misbehave. */
int stream_lz4_decompress_opts(const void *src, size_t n, void *dst, size_t expect, bool checksums,
                               struct vb_error *err);

/* The layout of one LZ4 frame, from its header and block headers only. */
struct stream_lz4_block {
    uint32_t offset;   /* of the block's data, from the frame start */
    uint32_t size;     /* stored bytes (without the 4-byte header and checksum) */
    bool uncompressed; /* stored as-is */
};

struct stream_lz4_layout {
    bool independent; /* blocks decodable on their own */
    bool block_checksum;
    bool content_checksum;
    uint32_t block_max;    /* maximum uncompressed block size */
    uint64_t content_size; /* from the header, or UINT64_MAX if absent */
    size_t nblocks;
    struct stream_lz4_block *blocks; /* malloc'ed */
};

/* Reads the frame header at frame[0..hdr_avail) (at least 19 bytes, or the whole frame if
 * shorter) and returns the header length, or -1. */
int stream_lz4_parse_header(const uint8_t *frame, size_t avail, struct stream_lz4_layout *layout,
                            struct vb_error *err);

/* Decodes one block of an independent-block frame into dst (capacity block_max); returns the
 * decoded length or -1. block points at the stored block data. */
int64_t stream_lz4_decode_block(const struct stream_lz4_layout *layout,
                                const struct stream_lz4_block *blk, const void *data, void *dst,
                                size_t cap, struct vb_error *err);

#endif
