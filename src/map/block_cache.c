#include "block_cache.h"

#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>

/* The cache keeps at least this many of its largest entries, whatever the budget. Readers
 * come back to the entry they just read (the next 4 KiB of a guest read, the next request of
 * an nbdcopy connection); an entry larger than the budget (a whole 32 MiB slice of an LZ4
 * frame with linked blocks, as python-lz4 writes them) evicted on release would be decoded
 * again by every request: 84 s instead of 1 s to read a 1 GB chain with --cache-size 16. */
#define KEEP_LARGEST 4

struct block_cache_entry {
    const void *owner;
    uint64_t key;
    void *data;
    size_t len;
    unsigned refs;
    struct block_cache_entry *hnext;               /* hash chain */
    struct block_cache_entry *lru_prev, *lru_next; /* most recent at head */
};

struct block_cache {
    pthread_mutex_t lock;
    size_t budget, bytes, entries;
    size_t reserved; /* entries being decoded (block_cache_reserve) */
    size_t largest;  /* the largest entry inserted so far */
    size_t nbuckets;
    struct block_cache_entry **buckets;
    struct block_cache_entry *head, *tail;
    uint64_t hits, misses, evictions;
    void (*release_data)(void *ctx, void *data, size_t len); /* NULL: free() */
    void *release_ctx;
};

static void drop_data(struct block_cache *bc, void *data, size_t len)
{
    if (bc->release_data)
        bc->release_data(bc->release_ctx, data, len);
    else
        free(data);
}

void block_cache_set_release(struct block_cache *bc, void (*fn)(void *ctx, void *data, size_t len),
                             void *ctx)
{
    bc->release_data = fn;
    bc->release_ctx = ctx;
}

static size_t hash(const struct block_cache *bc, const void *owner, uint64_t key)
{
    uint64_t h = (uint64_t)(uintptr_t)owner * 0x9e3779b97f4a7c15ull ^ key * 0xff51afd7ed558ccdull;
    h ^= h >> 29;
    return (size_t)(h % bc->nbuckets);
}

struct block_cache *block_cache_new(size_t budget)
{
    struct block_cache *bc = calloc(1, sizeof *bc);
    if (!bc)
        return NULL;
    bc->budget = budget;
    /* about one bucket per 64 KiB block of the budget */
    bc->nbuckets = budget / 65536 + 64;
    bc->buckets = calloc(bc->nbuckets, sizeof *bc->buckets);
    if (!bc->buckets) {
        free(bc);
        return NULL;
    }
    pthread_mutex_init(&bc->lock, NULL);
    return bc;
}

void block_cache_free(struct block_cache *bc)
{
    if (!bc)
        return;
    for (struct block_cache_entry *e = bc->head, *n; e; e = n) {
        n = e->lru_next;
        drop_data(bc, e->data, e->len);
        free(e);
    }
    free(bc->buckets);
    pthread_mutex_destroy(&bc->lock);
    free(bc);
}

static void lru_unlink(struct block_cache *bc, struct block_cache_entry *e)
{
    if (e->lru_prev)
        e->lru_prev->lru_next = e->lru_next;
    else
        bc->head = e->lru_next;
    if (e->lru_next)
        e->lru_next->lru_prev = e->lru_prev;
    else
        bc->tail = e->lru_prev;
    e->lru_prev = e->lru_next = NULL;
}

static void lru_push_front(struct block_cache *bc, struct block_cache_entry *e)
{
    e->lru_prev = NULL;
    e->lru_next = bc->head;
    if (bc->head)
        bc->head->lru_prev = e;
    bc->head = e;
    if (!bc->tail)
        bc->tail = e;
}

static void table_unlink(struct block_cache *bc, struct block_cache_entry *e)
{
    struct block_cache_entry **pp = &bc->buckets[hash(bc, e->owner, e->key)];
    while (*pp && *pp != e)
        pp = &(*pp)->hnext;
    if (*pp)
        *pp = e->hnext;
    lru_unlink(bc, e);
    bc->bytes -= e->len;
    bc->entries--;
}

/* The budget, raised to hold KEEP_LARGEST of the largest entries. */
static size_t limit(const struct block_cache *bc)
{
    size_t floor = bc->largest * KEEP_LARGEST;
    return floor > bc->budget ? floor : bc->budget;
}

static bool over_limit(const struct block_cache *bc)
{
    return bc->bytes + bc->reserved > limit(bc);
}

/* Drops least recently used entries that nobody is reading until the limit holds (for the
 * entries and the reservations together). Entries in use stay; they are freed by their last
 * release. */
static void evict(struct block_cache *bc)
{
    struct block_cache_entry *e = bc->tail;
    while (over_limit(bc) && e) {
        struct block_cache_entry *prev = e->lru_prev;
        if (e->refs == 0) {
            table_unlink(bc, e);
            drop_data(bc, e->data, e->len);
            free(e);
            bc->evictions++;
        }
        e = prev;
    }
}

struct block_cache_entry *block_cache_get(struct block_cache *bc, const void *owner, uint64_t key)
{
    pthread_mutex_lock(&bc->lock);
    struct block_cache_entry *e = bc->buckets[hash(bc, owner, key)];
    while (e && !(e->owner == owner && e->key == key))
        e = e->hnext;
    if (e) {
        e->refs++;
        lru_unlink(bc, e);
        lru_push_front(bc, e);
        bc->hits++;
    } else {
        bc->misses++;
    }
    pthread_mutex_unlock(&bc->lock);
    return e;
}

struct block_cache_entry *block_cache_put(struct block_cache *bc, const void *owner, uint64_t key,
                                          void *data, size_t len)
{
    pthread_mutex_lock(&bc->lock);
    size_t h = hash(bc, owner, key);
    struct block_cache_entry *e = bc->buckets[h];
    while (e && !(e->owner == owner && e->key == key))
        e = e->hnext;
    if (e) { /* another reader decoded it first */
        e->refs++;
        pthread_mutex_unlock(&bc->lock);
        drop_data(bc, data, len);
        return e;
    }
    e = calloc(1, sizeof *e);
    if (!e) {
        pthread_mutex_unlock(&bc->lock);
        drop_data(bc, data, len);
        return NULL;
    }
    *e =
        (struct block_cache_entry){.owner = owner, .key = key, .data = data, .len = len, .refs = 1};
    e->hnext = bc->buckets[h];
    bc->buckets[h] = e;
    lru_push_front(bc, e);
    bc->bytes += len;
    bc->entries++;
    if (len > bc->largest)
        bc->largest = len;
    evict(bc);
    pthread_mutex_unlock(&bc->lock);
    return e;
}

void block_cache_reserve(struct block_cache *bc, size_t len)
{
    pthread_mutex_lock(&bc->lock);
    bc->reserved += len;
    if (len > bc->largest)
        bc->largest = len;
    evict(bc);
    pthread_mutex_unlock(&bc->lock);
}

void block_cache_unreserve(struct block_cache *bc, size_t len)
{
    pthread_mutex_lock(&bc->lock);
    bc->reserved -= len < bc->reserved ? len : bc->reserved;
    pthread_mutex_unlock(&bc->lock);
}

void block_cache_release(struct block_cache *bc, struct block_cache_entry *e)
{
    if (!e)
        return;
    pthread_mutex_lock(&bc->lock);
    e->refs--;
    if (e->refs == 0 && over_limit(bc))
        evict(bc);
    pthread_mutex_unlock(&bc->lock);
}

const void *block_cache_data(const struct block_cache_entry *e)
{
    return e->data;
}

size_t block_cache_len(const struct block_cache_entry *e)
{
    return e->len;
}

void block_cache_stats(struct block_cache *bc, struct block_cache_stats *st)
{
    pthread_mutex_lock(&bc->lock);
    *st = (struct block_cache_stats){.hits = bc->hits,
                                     .misses = bc->misses,
                                     .evictions = bc->evictions,
                                     .bytes = bc->bytes,
                                     .entries = bc->entries,
                                     .limit = limit(bc)};
    pthread_mutex_unlock(&bc->lock);
}
