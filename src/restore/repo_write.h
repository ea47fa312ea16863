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

#include <stdint.h>

#include "index.h"
#include "repo.h"
#include "write_pipeline.h"

/* The defaults of a repository disk's restore (workers: chunk readers; the budget holds at
 * least workers + 2 chunks). */
void repo_write_opts_default(struct nbd_write_opts *o);

/* Bytes of the disk's stored (not all-zero) chunks: what a restore reads. */
uint64_t repo_index_stored_bytes(const struct repo_index *idx);

/* st->bytes_written, bytes_zero (zero runs inside stored chunks), requests. 0, or -1 with the
 * first error (a damaged chunk: its digest and the disk offset). */
int repo_write_nbd(struct repo *r, const struct repo_index *idx, const struct nbd_write_opts *o,
                   struct nbd_write_stats *st, struct vb_error *err);

#endif
