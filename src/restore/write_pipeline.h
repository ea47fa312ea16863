/* virtrestore's one way of writing a disk into an NBD export (our private qemu-nbd on the new
 * image) in one pass, whatever the input; a producer (an ops table) says what the work is:
 *
 *   worker threads: claim the producer's units of work in ascending order (a unit to one
 *     worker), and run the producer on each: it takes buffers from a pool bounded by the
 *     memory budget (so workers wait while the writes lag), fills each with the bytes of one
 *     disk range and hands it back; the pipeline finds the runs of each buffer that are not
 *     all-zero and queues it for writing (in the order buffers are handed back: ranges never
 *     overlap, so the order of writes does not matter);
 *   the calling thread: the NBD loop (nbd_driver.h) spreads the queued runs over several
 *     connections with many writes in flight; a buffer returns to the pool once its writes
 *     completed; every connection is flushed at the end, before success is reported.
 *
 * The first error (a producer's, a write's, the stop flag's) is the pipeline's; the others
 * stop soon after it. All-zero runs are never written: the target is a fresh image.
 *
 * Producers: writer_nbd.c (a stream chain's planned pieces), repo_write.c (a repository
 * snapshot's chunks). */
#ifndef VR_WRITE_PIPELINE_H
#define VR_WRITE_PIPELINE_H

#include <signal.h>
#include <stddef.h>
#include <stdint.h>

#include "error.h"
#include "nbd_target.h"
#include "progress.h"

struct nbd_write_stats {
    uint64_t bytes_written;
    uint64_t bytes_zero; /* bytes handed to the pipeline that were all-zero and so skipped */
    uint64_t requests;
};

struct write_pipeline;

/* A buffer of the pool: the producer fills data (buffer_size bytes) with the disk's bytes at
 * voff and sets voff and len. The rest is the pipeline's. */
struct wp_buffer {
    char *data;
    uint64_t voff;
    size_t len;
    struct wp_buffer *next;     /* free list or a queue */
    struct wp_buffer *all_next; /* every buffer, for the final cleanup */
    struct data_run *runs;
    size_t nruns, runcap, next_run; /* next_run: the writer's submission cursor */
    int pending;                    /* writes in flight (writer thread only) */
};

struct wp_producer_ops {
    /* Per-worker state (e.g. a decoder), or NULL ops for none: 0, or -1 with err set. */
    int (*worker_init)(void *producer, void **state, struct vb_error *err);
    void (*worker_free)(void *producer, void *state);
    /* Produces unit (0 .. units-1): takes buffers with wp_buffer_get, fills them, passes
     * each to wp_buffer_queue (or back with wp_buffer_drop). 0, or -1 with err set (or, when
     * wp_buffer_get returned NULL, the restore failed elsewhere: err need not be set). */
    int (*produce)(void *producer, void *state, struct write_pipeline *wp, size_t unit,
                   struct vb_error *err);
};

/* How a disk is written: the server, the connections and the threads (virtrestore's
 * --nbd-connections, --threads, the memory budget). */
struct nbd_write_opts {
    struct vb_nbd_target target; /* the server: unix socket, or TCP (+TLS) */
    const char *export_name;     /* NBD export */
    int connections;             /* the server must accept this many clients (qemu-nbd -e) */
    int max_in_flight;           /* per connection; qemu serves at most 16 */
    size_t request_size;         /* at most this many bytes per NBD write */
    int workers;                 /* worker threads: decoders, chunk readers (1..64) */
    uint64_t memory_budget;      /* bytes of buffers held at once */
    struct progress *progress;   /* advanced by written and skipped zero bytes */
    volatile sig_atomic_t *stop; /* set to a signal number by its handler: abort soon */
};

/* What the producer makes, and the pool its budget allows. */
struct write_pipeline_work {
    uint64_t export_need; /* the export must have at least this many bytes */
    size_t units;         /* units of work */
    size_t buffer_size;   /* bytes of each buffer */
    size_t buffers;       /* buffers the memory budget allows (at least workers + 2 are used) */
};

/* Writes every unit the producer makes. st: bytes written, all-zero bytes skipped, NBD
 * requests. 0, or -1 with the first error. */
int write_pipeline_run(const struct nbd_write_opts *o, const struct write_pipeline_work *work,
                       const struct wp_producer_ops *ops, void *producer,
                       struct nbd_write_stats *st, struct vb_error *err);

/* A free buffer, allocated while the budget allows, waiting for one otherwise; NULL once
 * the restore failed. */
struct wp_buffer *wp_buffer_get(struct write_pipeline *wp);

/* Queues the non-zero runs of b's data[0..len) at voff for writing (an all-zero buffer goes
 * back to the pool at once). 0, or -1 with err set (b is back in the pool). */
int wp_buffer_queue(struct write_pipeline *wp, struct wp_buffer *b, struct vb_error *err);

/* Gives back a buffer that will not be queued (its producer failed). */
void wp_buffer_drop(struct write_pipeline *wp, struct wp_buffer *b);

#endif
