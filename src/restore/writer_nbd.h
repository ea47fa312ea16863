/* Writes the planned pieces of a chain into an NBD export (our private qemu-nbd on the new
 * image) in one pass:
 *
 *   decoder threads (one per core): claim pieces in order (all pieces of one LZ4 frame
 *     together), read them from the input (file or zip entry) in chunks of request_size
 *     bytes, decoding LZ4 as a stream (a 32 MiB frame is never held whole), find the runs
 *     of each chunk that are not all-zero, queue the chunk;
 *   the calling thread: spreads the runs over several connections with many asynchronous
 *     writes in flight (libnbd aio, completions drive the next request), wakes on an eventfd
 *     when decoders queue work, and flushes every connection at the end.
 *
 * Reads and decoding thus overlap with writes; a memory budget bounds every buffer: the
 * decoders' compressed input and LZ4 state, and the chunks being filled or written.
 * Bytes that are zero in the final content are never written: the target is a fresh image. */
#ifndef VR_WRITER_NBD_H
#define VR_WRITER_NBD_H

#include "nbd_target.h"
#include <signal.h>
#include <stddef.h>
#include <stdint.h>

#include "chain_index.h"
#include "piece_plan.h"
#include "progress.h"

struct nbd_write_opts {
    struct vb_nbd_target target; /* the server: unix socket, or TCP (+TLS) */
    const char *export_name;     /* NBD export */
    int connections;             /* the server must accept this many clients (qemu-nbd -e) */
    int max_in_flight;           /* per connection; qemu serves at most 16 */
    size_t request_size;         /* bytes per chunk and at most per NBD write */
    int decoders;                /* decoder threads */
    uint64_t memory_budget;      /* bytes of buffers held at once */
    struct progress *progress;
    volatile sig_atomic_t *stop; /* set to a signal number by its handler: abort soon */
};

struct nbd_write_stats {
    uint64_t bytes_written;
    uint64_t bytes_zero; /* planned bytes that were all-zero and so skipped */
    uint64_t requests;
};

void nbd_write_opts_default(struct nbd_write_opts *o);

int restore_write_nbd(const struct chain_index *ci, const struct restore_work *w,
                      const struct nbd_write_opts *o, struct nbd_write_stats *st,
                      struct vb_error *err);

#endif
