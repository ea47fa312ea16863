/* Spare buffers of one size (a repository's chunk size) for decoded chunks: an evicted
 * chunk's buffer is kept for the next chunk fetched, up to a few of them, so that a
 * sequential read does not get a fresh mmap for every chunk (buffers of 4 MiB and more are
 * mmap'ed: main.c says why), whose pages the kernel faults in and clears again each time:
 * half the system time of reading a snapshot, measured. Thread-safe. */
#ifndef VM_CHUNK_BUFFERS_H
#define VM_CHUNK_BUFFERS_H

#include <stddef.h>

struct chunk_buffers;

/* Buffers of size bytes; at most keep spare ones are held. NULL when out of memory. */
struct chunk_buffers *chunk_buffers_new(size_t size, unsigned keep);
void chunk_buffers_free(struct chunk_buffers *cb);
size_t chunk_buffers_size(const struct chunk_buffers *cb);
/* A buffer of the pool's size (a spare one, or malloc'ed); NULL when out of memory. */
void *chunk_buffers_get(struct chunk_buffers *cb);
/* Takes back a buffer from chunk_buffers_get (or any malloc'ed one: len says which: only
 * those of the pool's size are kept); frees it when enough are spare. A block cache's
 * release function (block_cache_set_release). */
void chunk_buffers_put(void *cb, void *data, size_t len);

#endif
