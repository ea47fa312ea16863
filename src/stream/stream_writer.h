/* Writes one stream (virtbackup-stream(5), LAYOUT): META first, then DATA/ZERO frames in ascending
 * order, STOP, and for compressed streams the trailer and COMP frame. Every byte passes through an
 * adler32 that the sink stores beside the file at commit. */
#ifndef VB_STREAM_WRITER_H
#define VB_STREAM_WRITER_H

#include <stddef.h>
#include <stdint.h>

#include "error.h"
#include "meta.h"
#include "sink.h"

struct stream_writer;

/* Writes the META frame at once: meta->data_size must already be the sum of all DATA lengths
 * that will follow (virtbackup-stream(5), METADATA): the extent map is complete before the
 * stream starts. The
 * writer takes ownership of the sink. */
struct stream_writer *stream_writer_new(struct stream_sink *sink, const struct stream_meta *meta,
                                        struct vb_error *err);

/* Compressed streams: compress on n worker threads (0: on the caller's thread). The default
 * is stream_lz4_default_workers(); takes effect only before the first DATA frame. */
void stream_writer_set_compress_threads(struct stream_writer *w, unsigned n);

int stream_writer_zero(struct stream_writer *w, uint64_t start, uint64_t length,
                       struct vb_error *err);

/* A whole DATA extent from memory; compressed streams are sliced and compressed here. */
int stream_writer_data(struct stream_writer *w, uint64_t start, const void *buf, uint64_t length,
                       struct vb_error *err);

/* A DATA extent delivered in pieces of any size (extents too large to hold, or produced by a
 * pipeline). In compressed streams the LZ4 frames are built as the pieces arrive. */
int stream_writer_data_begin(struct stream_writer *w, uint64_t start, uint64_t length,
                             struct vb_error *err);
int stream_writer_data_append(struct stream_writer *w, const void *buf, size_t len,
                              struct vb_error *err);
/* The same, with the adler32 of buf (from adler32(1, buf, len)) computed elsewhere, so the
 * checksum work can be done by another thread: uncompressed streams then only combine it
 * (adler32_combine) instead of reading the bytes again. */
int stream_writer_data_append_summed(struct stream_writer *w, const void *buf, size_t len,
                                     uint32_t adler, struct vb_error *err);
int stream_writer_data_end(struct stream_writer *w, struct vb_error *err);

/* Writes STOP (and trailer/COMP), checks dataSize, commits the sink. */
int stream_writer_finish(struct stream_writer *w, uint32_t *checksum, struct vb_error *err);

/* Bytes written so far (the file size once finished). */
uint64_t stream_writer_bytes(const struct stream_writer *w);

/* Frees the writer; an unfinished stream is aborted (its partial file removed). */
void stream_writer_free(struct stream_writer *w);

#endif
