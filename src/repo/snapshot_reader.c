#include "snapshot_reader.h"

#include <inttypes.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "index.h"

#define CACHE_CHUNKS 4

struct cached_chunk {
    uint64_t n; /* chunk number */
    void *data; /* its content, NULL when the slot is empty */
    size_t len;
    uint64_t last_use; /* for least-recently-used replacement */
};

struct repo_disk_reader {
    struct repo *repo;
    struct repo_index index;
    pthread_mutex_t lock;
    struct cached_chunk cache[CACHE_CHUNKS];
    uint64_t clock;
};

struct repo_disk_reader *repo_disk_reader_open(struct repo *r, const repo_digest *index_digest,
                                               struct vb_error *err)
{
    struct repo_disk_reader *rd = calloc(1, sizeof *rd);
    if (!rd) {
        vb_error_set(err, "out of memory");
        return NULL;
    }
    rd->repo = r;
    if (repo_get_index(r, index_digest, &rd->index, err) < 0) {
        free(rd);
        return NULL;
    }
    pthread_mutex_init(&rd->lock, NULL);
    return rd;
}

uint64_t repo_disk_reader_size(const struct repo_disk_reader *rd)
{
    return rd->index.virtual_size;
}

/* Under the lock: the content of chunk n, from the cache or fetched into it. */
static struct cached_chunk *chunk_locked(struct repo_disk_reader *rd, uint64_t n,
                                         struct vb_error *err)
{
    struct cached_chunk *victim = &rd->cache[0];
    for (size_t i = 0; i < CACHE_CHUNKS; i++) {
        struct cached_chunk *c = &rd->cache[i];
        if (c->data && c->n == n) {
            c->last_use = ++rd->clock;
            return c;
        }
        if (!c->data || (victim->data && c->last_use < victim->last_use))
            victim = c;
    }
    uint64_t start = n * rd->index.chunk_size;
    uint64_t want = rd->index.virtual_size - start < rd->index.chunk_size
                        ? rd->index.virtual_size - start
                        : rd->index.chunk_size;
    void *data;
    size_t len;
    if (repo_get_chunk(rd->repo, &rd->index.digests[n], &data, &len, err) < 0) {
        vb_error_prefix(err, "chunk at offset %" PRIu64, start);
        return NULL;
    }
    if (len != want) {
        char hex[65];
        repo_digest_hex(&rd->index.digests[n], hex);
        vb_error_set(err,
                     "chunk %s at offset %" PRIu64 " holds %zu bytes, the index wants %" PRIu64,
                     hex, start, len, want);
        free(data);
        return NULL;
    }
    free(victim->data);
    *victim = (struct cached_chunk){.n = n, .data = data, .len = len, .last_use = ++rd->clock};
    return victim;
}

int repo_disk_reader_pread(struct repo_disk_reader *rd, void *buf, size_t len, uint64_t off,
                           struct vb_error *err)
{
    uint64_t size = rd->index.virtual_size;
    if (off > size || len > size - off)
        return vb_error_set(err, "read of %zu bytes at %" PRIu64 " beyond the end (%" PRIu64 ")",
                            len, off, size);
    unsigned char *out = buf;
    uint32_t cs = rd->index.chunk_size;
    int rc = 0;
    pthread_mutex_lock(&rd->lock);
    while (len && rc == 0) {
        uint64_t n = off / cs, in = off % cs;
        size_t piece = cs - in < len ? cs - in : len;
        if (repo_digest_is_zero(&rd->index.digests[n])) {
            memset(out, 0, piece);
        } else {
            struct cached_chunk *c = chunk_locked(rd, n, err);
            if (!c)
                rc = -1;
            else
                memcpy(out, (unsigned char *)c->data + in, piece);
        }
        out += piece;
        off += piece;
        len -= piece;
    }
    pthread_mutex_unlock(&rd->lock);
    return rc;
}

void repo_disk_reader_close(struct repo_disk_reader *rd)
{
    if (!rd)
        return;
    for (size_t i = 0; i < CACHE_CHUNKS; i++)
        free(rd->cache[i].data);
    repo_index_free(&rd->index);
    pthread_mutex_destroy(&rd->lock);
    free(rd);
}
