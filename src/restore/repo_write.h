/* Writes one disk of a repository snapshot into an NBD export (our private qemu-nbd on the new
 * image) in one pass: the producer of write_pipeline.h for repositories.
 *
 *   reader threads (the pipeline's workers): claim the index's chunks in order (a chunk is
 *     one unit of work), fetch and decode each with repo_get_chunk_into (every check of
 *     virtbackup-repository(5), the SHA-256 included) into one of the pipeline's buffers;
 *     at most a bounded number of chunks is held at once, so readers wait while the writes
 *     lag;
 *   the pipeline skips their all-zero runs and writes the rest over several connections.
 *
 * All-zero chunks (the index's zero mark) are never fetched nor written, nor are all-zero runs
 * in a stored chunk: the target is a fresh image. */
#ifndef VR_REPO_WRITE_H
#define VR_REPO_WRITE_H

#include <signal.h>
#include <stdint.h>

#include "index.h"
#include "nbd_target.h"
#include "progress.h"
#include "repo.h"
#include "writer_nbd.h"

struct repo_write_opts {
    struct vb_nbd_target target; /* the server */
    const char *export_name;
    const char *what;       /* for messages: the disk */
    int connections;        /* the server must accept this many clients (qemu-nbd -e) */
    int max_in_flight;      /* per connection; qemu serves at most 16 */
    size_t request_size;    /* at most this many bytes per NBD write */
    int readers;            /* chunk reader threads */
    uint64_t memory_budget; /* bytes of chunks held at once (at least readers + 2 chunks) */
    struct progress *progress;
    volatile sig_atomic_t *stop; /* set to a signal number by its handler: abort soon */
};

void repo_write_opts_default(struct repo_write_opts *o);

/* Bytes of the disk's stored (not all-zero) chunks: what a restore reads. */
uint64_t repo_index_stored_bytes(const struct repo_index *idx);

/* st->bytes_written, bytes_zero (zero runs inside stored chunks), requests. 0, or -1 with the
 * first error (a damaged chunk: its digest and the disk offset). */
int repo_write_nbd(struct repo *r, const struct repo_index *idx, const struct repo_write_opts *o,
                   struct nbd_write_stats *st, struct vb_error *err);

#endif
