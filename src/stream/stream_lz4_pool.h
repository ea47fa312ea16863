/* Compressed DATA on all cores. The LZ4 frames of a stream (virtbackup-stream(5),
 * COMPRESSION: independent 64 KiB blocks, block and content checksums, content size) are built by
 * worker threads, and their bytes, together with the stream's own bytes between them (frame
 * headers, terminators), come out in stream order through the emit callback, always on the
 * caller's thread. The frames are byte for byte those of the single-context encoder
 * (stream_lz4_encoder): blocks are independent, so a worker can compress any run of whole
 * blocks with a context of its own; one sequential context per frame writes the header and
 * computes the content checksum (liblz4 does not export XXH32).
 *
 * Memory is bounded: 2 x workers jobs of about 2 x 320 KiB each, whatever the frame sizes.
 * The workers also compute the content checksums (in stream order, one worker at a time)
 * and the adler32 of what they produce, and write it out, so the caller's thread only copies
 * its data in.
 * All functions are called from one thread; each returns 0, or -1 with err set (also for the
 * errors of the callbacks and of the workers, reported by the call that meets them). */
#ifndef VB_STREAM_LZ4_POOL_H
#define VB_STREAM_LZ4_POOL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "error.h"

/* Writes bytes of the stream, in order; adler is adler32(1, buf, len) (0 unless the pool was
 * asked for it). Called on the worker threads (one at a time) while compressed data is under
 * way, otherwise on the caller's thread: the caller must not touch what emit and frame use
 * between its pool calls, except after stream_lz4_pool_flush. */
typedef int (*stream_lz4_emit_fn)(void *opaque, const void *buf, size_t len, uint32_t adler,
                                  struct vb_error *err);
/* Called, in order, once an LZ4 frame's last byte went through emit: its stored size. */
typedef int (*stream_lz4_frame_fn)(void *opaque, uint64_t stored, struct vb_error *err);

struct stream_lz4_pool;

/* The worker count to use by default: 0 (compress on the caller's thread) on one CPU,
 * otherwise the CPUs this process may run on, at most 4. A caller that was given a count
 * (virtbackup's VIRTBACKUP_COMPRESS_THREADS) sets it with stream_writer_set_compress_threads. */
unsigned stream_lz4_default_workers(void);

/* workers 0: everything happens on the caller's thread with one streaming encoder.
 * job_size: input bytes per job (rounded to 64 KiB, at least 128 KiB); 0 = the default.
 * want_adler: pass the adler32 of every piece to emit. */
struct stream_lz4_pool *stream_lz4_pool_new(int level, unsigned workers, size_t job_size,
                                            bool want_adler, stream_lz4_emit_fn emit,
                                            stream_lz4_frame_fn frame, void *opaque,
                                            struct vb_error *err);

/* Stream bytes outside LZ4 frames (between frame_end and the next frame_begin). */
int stream_lz4_pool_raw(struct stream_lz4_pool *p, const void *buf, size_t len,
                        struct vb_error *err);

/* One LZ4 frame of exactly content_size bytes, given in pieces of any size. */
int stream_lz4_pool_frame_begin(struct stream_lz4_pool *p, uint64_t content_size,
                                struct vb_error *err);
int stream_lz4_pool_frame_append(struct stream_lz4_pool *p, const void *buf, size_t len,
                                 struct vb_error *err);
int stream_lz4_pool_frame_end(struct stream_lz4_pool *p, struct vb_error *err);

/* Waits until every byte given so far went through emit. */
int stream_lz4_pool_flush(struct stream_lz4_pool *p, struct vb_error *err);

/* Stops the workers (discarding what was not emitted) and frees everything. */
void stream_lz4_pool_free(struct stream_lz4_pool *p);

#endif
