/* A bounded, thread-safe cache of decoded LZ4 blocks (or whole decoded slices when a frame
 * uses linked blocks). Readers of compressed backups hit the same 64 KiB block many times
 * (4 KiB guest reads, the kernel's read-ahead, several connections), and decoding it each
 * time would cost more than the read. Entries are reference-counted so that a reader copies
 * out of an entry without holding the cache lock; eviction (LRU) skips entries in use. */
#ifndef VM_BLOCK_CACHE_H
#define VM_BLOCK_CACHE_H

#include <stddef.h>
#include <stdint.h>

struct block_cache;
struct block_cache_entry;

/* budget: bytes of decoded data kept, entries being decoded included (entries in use may
 * exceed it briefly). It is raised, when entries are large, to keep at least four of the
 * largest (block_cache.c says why). */
struct block_cache *block_cache_new(size_t budget);
void block_cache_free(struct block_cache *bc);

/* The entry of (owner, key) with a reference taken, or NULL. */
struct block_cache_entry *block_cache_get(struct block_cache *bc, const void *owner, uint64_t key);

/* Inserts data (malloc'ed, ownership passes to the cache) and returns it with a reference.
 * If another thread inserted the same key meanwhile, data is freed and that entry returned.
 * Returns NULL only when out of memory (data freed). */
struct block_cache_entry *block_cache_put(struct block_cache *bc, const void *owner, uint64_t key,
                                          void *data, size_t len);

void block_cache_release(struct block_cache *bc, struct block_cache_entry *e);

/* Where the data of entries goes when the cache drops it (evicted, a duplicate put, the
 * cache freed): fn(ctx, data, len), which may keep the buffer for reuse (chunk_buffers.h);
 * without it, free(). Set before the first put; fn runs under the cache's lock. */
void block_cache_set_release(struct block_cache *bc, void (*fn)(void *ctx, void *data, size_t len),
                             void *ctx);

/* Room for an entry of len bytes about to be decoded: it counts against the limit (and
 * older entries are evicted for it) from now on, not only once block_cache_put inserts it,
 * so that the slices several connections are decoding at once stay within the budget too.
 * Every reservation is returned with block_cache_unreserve, right before the put or after
 * a failed decode. */
void block_cache_reserve(struct block_cache *bc, size_t len);
void block_cache_unreserve(struct block_cache *bc, size_t len);

const void *block_cache_data(const struct block_cache_entry *e);
size_t block_cache_len(const struct block_cache_entry *e);

struct block_cache_stats {
    uint64_t hits, misses, evictions;
    size_t bytes, entries;
    size_t limit; /* the budget in force: the one given, or four of the largest entries */
};
void block_cache_stats(struct block_cache *bc, struct block_cache_stats *st);

#endif
