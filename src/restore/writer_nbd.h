/* Writes the planned pieces of a chain into an NBD export (our private qemu-nbd on the new
 * image) in one pass: the producer of write_pipeline.h for stream chains.
 *
 *   decoder threads (the pipeline's workers): claim pieces in order (all pieces of one LZ4
 *     frame together: one unit of work), read them from the input (file or zip entry) in
 *     chunks of request_size bytes, decoding LZ4 as a stream (a 32 MiB frame is never held
 *     whole), each chunk into one of the pipeline's buffers;
 *   the pipeline skips their all-zero runs and writes the rest over several connections.
 *
 * Reads and decoding thus overlap with writes; a memory budget bounds every buffer: the
 * decoders' compressed input and LZ4 state, and the chunks being filled or written.
 * Bytes that are zero in the final content are never written: the target is a fresh image. */
#ifndef VR_WRITER_NBD_H
#define VR_WRITER_NBD_H

#include "chain_index.h"
#include "piece_plan.h"
#include "write_pipeline.h"

/* The defaults of a stream chain's restore. */
void nbd_write_opts_default(struct nbd_write_opts *o);

int restore_write_nbd(const struct chain_index *ci, const struct restore_work *w,
                      const struct nbd_write_opts *o, struct nbd_write_stats *st,
                      struct vb_error *err);

#endif
