/* A disk of a repository snapshot (virtbackup-repository(5)) as an export's data source
 * (map_source.h): chunks fetched on demand through the disk's index, every one decoded and
 * its SHA-256 checked, kept decoded in the session's block cache (--cache-size); all-zero
 * chunks read as zeroes without a fetch and are reported as holes. Sequential readers (a
 * read of chunk n right after one of chunk n-1, on any connection) get the next chunks
 * fetched ahead in parallel by the fetch pool's workers (--threads). */
#ifndef VM_REPO_SOURCE_H
#define VM_REPO_SOURCE_H

#include "block_cache.h"
#include "chunk_buffers.h"
#include "error.h"
#include "fetch_pool.h"
#include "manifest.h"
#include "map_source.h"
#include "repo.h"

/* Disk d of snapshot m of repository r (r, cache, pool and bufs outlive the source; pool
 * may be NULL: no read-ahead). Decoded chunks go into buffers of bufs when its size is the
 * disk's chunk size (then cache must release its entries' data to bufs), else into buffers
 * of their own; bufs may be NULL. NULL on error. */
struct map_source *repo_source_open(struct repo *r, const struct repo_manifest *m,
                                    const struct repo_manifest_disk *d, struct block_cache *cache,
                                    struct fetch_pool *pool, struct chunk_buffers *bufs,
                                    struct vb_error *err);

#endif
