#include "repo_source.h"

#include <inttypes.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "index.h"
#include "nbd_proto.h"
#include "overlay_identity.h"

#define RECENT 16 /* chunks last entered by readers: a reader entering n + 1 is sequential */

enum { QUEUED = 1, FETCHING = 2 }; /* a chunk's state bits */

struct repo_source {
    struct map_source base;
    struct repo *repo;
    char *disk;
    struct repo_index index;
    struct block_cache *cache;
    struct fetch_pool *pool;
    struct chunk_buffers *bufs; /* decoded chunks go into these when they have its size */
    unsigned window;            /* chunks fetched ahead of a sequential reader */
    pthread_mutex_t lock;
    pthread_cond_t fetched;
    uint8_t *state; /* per chunk */
    uint64_t recent[RECENT];
    size_t nrecent, next_recent;
};

static struct repo_source *of(struct map_source *s)
{
    return (struct repo_source *)s;
}

/* Fetches chunk n (not all-zero) and inserts it into the cache; the entry with a reference,
 * or NULL (err says which chunk of which disk and why). */
static struct block_cache_entry *fetch(struct repo_source *rs, uint64_t n, struct vb_error *err)
{
    uint32_t want = repo_index_chunk_len(&rs->index, n);
    block_cache_reserve(rs->cache, want);
    void *data = NULL;
    size_t len = 0;
    int rc;
    if (rs->bufs) {
        if (!(data = chunk_buffers_get(rs->bufs)))
            rc = vb_error_set(err, "out of memory");
        else
            rc = repo_get_chunk_into(rs->repo, &rs->index.digests[n], data, rs->index.chunk_size,
                                     &len, err);
        if (rc < 0) {
            chunk_buffers_put(rs->bufs, data, rs->index.chunk_size);
            data = NULL;
        }
    } else {
        rc = repo_get_chunk(rs->repo, &rs->index.digests[n], &data, &len, err);
    }
    block_cache_unreserve(rs->cache, want);
    uint64_t off = n * rs->index.chunk_size;
    if (rc < 0) {
        vb_error_prefix(err, "disk %s, offset %" PRIu64, rs->disk, off);
        return NULL;
    }
    if (len != want) {
        char hex[65];
        repo_digest_hex(&rs->index.digests[n], hex);
        vb_error_set(
            err, "disk %s: chunk %s at offset %" PRIu64 " holds %zu bytes, its index says %" PRIu32,
            rs->disk, hex, off, len, want);
        if (rs->bufs)
            chunk_buffers_put(rs->bufs, data, rs->index.chunk_size);
        else
            free(data);
        return NULL;
    }
    struct block_cache_entry *e = block_cache_put(rs->cache, rs, n, data, len);
    if (!e)
        vb_error_set(err, "out of memory");
    return e;
}

/* Chunk n from the cache, or fetched once however many threads want it at the same time. */
static struct block_cache_entry *chunk_get(struct repo_source *rs, uint64_t n, struct vb_error *err)
{
    pthread_mutex_lock(&rs->lock);
    struct block_cache_entry *e;
    while (!(e = block_cache_get(rs->cache, rs, n)) && (rs->state[n] & FETCHING))
        pthread_cond_wait(&rs->fetched, &rs->lock);
    if (e) {
        pthread_mutex_unlock(&rs->lock);
        return e;
    }
    rs->state[n] |= FETCHING;
    pthread_mutex_unlock(&rs->lock);
    e = fetch(rs, n, err);
    pthread_mutex_lock(&rs->lock);
    rs->state[n] &= (uint8_t)~FETCHING;
    pthread_cond_broadcast(&rs->fetched);
    pthread_mutex_unlock(&rs->lock);
    return e;
}

/* A fetch pool job: chunk n into the cache unless it is there or being fetched. A failure
 * is left for the reader, which fetches the chunk itself and reports it. */
static void ahead_job(void *ctx, uint64_t n)
{
    struct repo_source *rs = ctx;
    pthread_mutex_lock(&rs->lock);
    rs->state[n] &= (uint8_t)~QUEUED;
    struct block_cache_entry *e = NULL;
    bool skip = (rs->state[n] & FETCHING) || (e = block_cache_get(rs->cache, rs, n));
    if (!skip)
        rs->state[n] |= FETCHING;
    pthread_mutex_unlock(&rs->lock);
    if (e)
        block_cache_release(rs->cache, e);
    if (skip)
        return;
    struct vb_error err = {0};
    e = fetch(rs, n, &err);
    pthread_mutex_lock(&rs->lock);
    rs->state[n] &= (uint8_t)~FETCHING;
    pthread_cond_broadcast(&rs->fetched);
    pthread_mutex_unlock(&rs->lock);
    if (e)
        block_cache_release(rs->cache, e);
}

/* Under the lock: queues chunks first..last that hold data and are not queued or fetching. */
static void queue_ahead(struct repo_source *rs, uint64_t first, uint64_t last)
{
    for (uint64_t k = first; k <= last && k < rs->index.n; k++) {
        if (repo_digest_is_zero(&rs->index.digests[k]) || rs->state[k])
            continue;
        if (!fetch_pool_submit(rs->pool, ahead_job, rs, k))
            return;
        rs->state[k] |= QUEUED;
    }
}

/* Sequential access: a reader entering chunk n right after chunk n - 1 (whichever
 * connection read that) has the next window of chunks fetched ahead. */
static void note_access(struct repo_source *rs, uint64_t n)
{
    if (!rs->pool)
        return;
    pthread_mutex_lock(&rs->lock);
    bool seen = false, follows = false;
    for (size_t i = 0; i < rs->nrecent; i++) {
        seen |= rs->recent[i] == n;
        follows |= n > 0 && rs->recent[i] == n - 1;
    }
    if (!seen) {
        rs->recent[rs->next_recent] = n;
        rs->next_recent = (rs->next_recent + 1) % RECENT;
        if (rs->nrecent < RECENT)
            rs->nrecent++;
        if (follows)
            queue_ahead(rs, n + 1, n + rs->window);
    }
    pthread_mutex_unlock(&rs->lock);
}

static int src_read(struct map_source *s, uint64_t off, size_t len, void *dst, struct vb_error *err)
{
    struct repo_source *rs = of(s);
    uint8_t *out = dst;
    uint32_t cs = rs->index.chunk_size;
    while (len) {
        uint64_t n = off / cs, in = off % cs;
        size_t piece = cs - in < len ? (size_t)(cs - in) : len;
        if (repo_digest_is_zero(&rs->index.digests[n])) {
            memset(out, 0, piece);
        } else {
            note_access(rs, n);
            struct block_cache_entry *e = chunk_get(rs, n, err);
            if (!e)
                return -1;
            memcpy(out, (const uint8_t *)block_cache_data(e) + in, piece);
            block_cache_release(rs->cache, e);
        }
        out += piece;
        off += piece;
        len -= piece;
    }
    return 0;
}

static uint32_t src_status(struct map_source *s, uint64_t off, uint64_t max, uint64_t *run)
{
    struct repo_source *rs = of(s);
    uint32_t cs = rs->index.chunk_size;
    uint64_t n = off / cs;
    bool zero = repo_digest_is_zero(&rs->index.digests[n]);
    uint64_t end = (n + 1) * cs;
    while (end - off < max && ++n < rs->index.n &&
           repo_digest_is_zero(&rs->index.digests[n]) == zero)
        end += cs;
    *run = end - off < max ? end - off : max;
    return zero ? NBD_STATE_HOLE | NBD_STATE_ZERO : 0;
}

static void src_prefetch(struct map_source *s, uint64_t off, uint64_t len)
{
    struct repo_source *rs = of(s);
    if (!rs->pool || len == 0)
        return;
    uint32_t cs = rs->index.chunk_size;
    pthread_mutex_lock(&rs->lock);
    queue_ahead(rs, off / cs, (off + len - 1) / cs);
    pthread_mutex_unlock(&rs->lock);
}

static int src_verify(struct map_source *s, struct vb_error *err)
{
    struct repo_source *rs = of(s);
    for (uint64_t n = 0; n < rs->index.n; n++) {
        if (repo_digest_is_zero(&rs->index.digests[n]))
            continue;
        struct block_cache_entry *e = chunk_get(rs, n, err);
        if (!e)
            return -1;
        block_cache_release(rs->cache, e);
    }
    return 0;
}

static void src_close(struct map_source *s)
{
    struct repo_source *rs = of(s);
    if (!rs)
        return;
    repo_index_free(&rs->index);
    free(rs->state);
    free(rs->disk);
    free(rs->base.description);
    free(rs->base.identity);
    pthread_cond_destroy(&rs->fetched);
    pthread_mutex_destroy(&rs->lock);
    free(rs);
}

static const struct map_source_ops repo_source_ops = {
    .read = src_read,
    .status = src_status,
    .prefetch = src_prefetch,
    .verify = src_verify,
    .close = src_close,
};

struct map_source *repo_source_open(struct repo *r, const struct repo_manifest *m,
                                    const struct repo_manifest_disk *d, struct block_cache *cache,
                                    struct fetch_pool *pool, struct chunk_buffers *bufs,
                                    struct vb_error *err)
{
    struct repo_source *rs = calloc(1, sizeof *rs);
    if (!rs) {
        vb_error_set(err, "out of memory");
        return NULL;
    }
    rs->base.ops = &repo_source_ops;
    pthread_mutex_init(&rs->lock, NULL);
    pthread_cond_init(&rs->fetched, NULL);
    rs->repo = r;
    rs->cache = cache;
    rs->pool = pool;
    if (!(rs->disk = strdup(d->target))) {
        vb_error_set(err, "out of memory");
        goto fail;
    }
    if (repo_get_index(r, &d->index, &rs->index, err) < 0) {
        vb_error_prefix(err, "disk %s of snapshot %s", d->target, m->id);
        goto fail;
    }
    if (rs->index.virtual_size != d->virtual_size || rs->index.chunk_size != d->chunk_size) {
        vb_error_set(err,
                     "disk %s of snapshot %s: its index holds %" PRIu64
                     " bytes in chunks of %" PRIu32 ", the manifest says %" PRIu64 " in %" PRIu32,
                     d->target, m->id, rs->index.virtual_size, rs->index.chunk_size,
                     d->virtual_size, d->chunk_size);
        goto fail;
    }
    if (bufs && chunk_buffers_size(bufs) == rs->index.chunk_size)
        rs->bufs = bufs;
    if (!(rs->state = calloc(rs->index.n ? rs->index.n : 1, 1))) {
        vb_error_set(err, "out of memory");
        goto fail;
    }
    if (pool) {
        /* as many chunks ahead as the workers can fetch at once, twice over, but no more
         * than half the cache holds: read-ahead must not evict what readers are reading */
        struct block_cache_stats st;
        block_cache_stats(cache, &st);
        uint64_t fit = st.limit / 2 / rs->index.chunk_size;
        uint64_t want = 2ull * fetch_pool_threads(pool);
        rs->window = (unsigned)(fit < want ? fit : want);
    }
    rs->base.size = rs->index.virtual_size;
    uint64_t data = 0;
    for (size_t n = 0; n < rs->index.n; n++)
        if (!repo_digest_is_zero(&rs->index.digests[n]))
            data++;
    if (asprintf(&rs->base.description,
                 "%s: snapshot %s of %s (%s, %s), %" PRIu64 " of %zu chunks of %" PRIu32
                 " bytes hold data",
                 d->target, m->id, m->vm, repo_level_name(m->level), m->time, data, rs->index.n,
                 rs->index.chunk_size) < 0) {
        rs->base.description = NULL;
        vb_error_set(err, "out of memory");
        goto fail;
    }
    if (!(rs->base.identity = overlay_identity_repo(r->config.id, m, d, err)))
        goto fail;
    return &rs->base;
fail:
    src_close(&rs->base);
    return NULL;
}
