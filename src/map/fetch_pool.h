/* Worker threads that run fetch jobs in the background: the read-ahead of repository
 * sources (repo_source.h), shared by every export of a session. Jobs are queued in order and
 * a full queue drops new ones (read-ahead is a hint: a reader fetches what it needs itself). */
#ifndef VM_FETCH_POOL_H
#define VM_FETCH_POOL_H

#include <stdbool.h>
#include <stdint.h>

#include "error.h"

struct fetch_pool;

typedef void (*fetch_job_fn)(void *ctx, uint64_t arg);

/* threads workers (at least 1). NULL on error. */
struct fetch_pool *fetch_pool_new(unsigned threads, struct vb_error *err);
/* Queued jobs are dropped, running ones finished, the workers joined: after it returns no
 * job runs, so the contexts of the jobs may be freed. */
void fetch_pool_free(struct fetch_pool *p);
unsigned fetch_pool_threads(const struct fetch_pool *p);
/* Queues fn(ctx, arg); false when the queue is full (the job is not run). */
bool fetch_pool_submit(struct fetch_pool *p, fetch_job_fn fn, void *ctx, uint64_t arg);

#endif
