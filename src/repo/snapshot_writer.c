#include "snapshot_writer.h"

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "index.h"
#include "util.h"

#define MAX_THREADS 64

struct job {
    uint64_t n;  /* chunk number */
    size_t len;  /* bytes in buf */
    size_t read; /* of them read from the source */
    void *buf;   /* from the pool */
};

struct repo_disk_writer {
    struct repo *repo;
    uint64_t virtual_size;
    uint32_t chunk_size;
    uint64_t nchunks;
    repo_digest *digests; /* by chunk; all zero bytes: an all-zero chunk */
    unsigned char *given; /* by chunk: 1 once put */

    pthread_mutex_t lock;
    pthread_cond_t changed; /* a job queued, a buffer freed, an error, closing */
    /* the queue: a ring of up to slots jobs; buffers: a free stack of slots buffers */
    struct job *ring;
    size_t slots, head, queued;
    void **free_bufs;
    size_t nfree, allocated;
    bool closing, failed;
    struct vb_error error; /* the first failure */
    struct repo_disk_stats stats;

    pthread_t threads[MAX_THREADS];
    unsigned nthreads;
};

uint32_t repo_disk_writer_chunk_size(const struct repo_disk_writer *w)
{
    return w->chunk_size;
}

static void fail_locked(struct repo_disk_writer *w, const struct vb_error *err)
{
    if (!w->failed) {
        w->failed = true;
        w->error = *err;
    }
    pthread_cond_broadcast(&w->changed);
}

/* Hash, and put unless the repository holds it (repo_put_chunk looks first). */
static int store_chunk(struct repo_disk_writer *w, const struct job *j, struct vb_error *err)
{
    repo_digest d;
    bool zero = vb_is_zero(j->buf, j->len);
    bool was_new = false;
    uint64_t stored = 0;
    if (zero) {
        memset(&d, 0, sizeof d);
    } else {
        repo_chunk_name(w->repo, j->buf, j->len, &d);
        if (repo_put_chunk(w->repo, &d, j->buf, j->len, &was_new, &stored, err) < 0)
            return vb_error_prefix(err, "chunk at offset %" PRIu64, j->n * w->chunk_size);
    }
    pthread_mutex_lock(&w->lock);
    w->digests[j->n] = d;
    w->stats.bytes_read += j->read;
    if (zero) {
        w->stats.chunks_zero++;
    } else if (was_new) {
        w->stats.chunks_new++;
        w->stats.bytes_new += j->read;
        w->stats.bytes_stored += stored;
    }
    pthread_mutex_unlock(&w->lock);
    return 0;
}

static void *worker(void *arg)
{
    struct repo_disk_writer *w = arg;
    pthread_mutex_lock(&w->lock);
    for (;;) {
        while (!w->queued && !w->closing)
            pthread_cond_wait(&w->changed, &w->lock);
        if (!w->queued)
            break;
        struct job j = w->ring[w->head];
        w->head = (w->head + 1) % w->slots;
        w->queued--;
        bool skip = w->failed;
        pthread_mutex_unlock(&w->lock);

        struct vb_error err = {0};
        int rc = skip ? 0 : store_chunk(w, &j, &err);

        pthread_mutex_lock(&w->lock);
        if (rc < 0)
            fail_locked(w, &err);
        w->free_bufs[w->nfree++] = j.buf;
        pthread_cond_broadcast(&w->changed);
    }
    pthread_mutex_unlock(&w->lock);
    return NULL;
}

struct repo_disk_writer *repo_disk_writer_new(struct repo *r, uint64_t virtual_size,
                                              unsigned threads, struct vb_error *err)
{
    uint32_t cs = repo_chunk_size(r);
    /* refused before any chunk is read: the index is put last, and one object holds it */
    if (!repo_index_fits(virtual_size, cs)) {
        vb_error_set(err,
                     "a disk of %" PRIu64 " bytes is more chunks of %" PRIu32
                     " bytes than one index holds (at most %" PRIu64
                     " bytes): use a repository with larger chunks (virtrepo init --chunk-size)",
                     virtual_size, cs, repo_index_max_size(cs));
        return NULL;
    }
    if (threads == 0)
        threads = 1;
    if (threads > MAX_THREADS)
        threads = MAX_THREADS;
    struct repo_disk_writer *w = calloc(1, sizeof *w);
    if (!w) {
        vb_error_set(err, "out of memory");
        return NULL;
    }
    w->repo = r;
    w->virtual_size = virtual_size;
    w->chunk_size = cs;
    w->nchunks = (virtual_size + cs - 1) / cs;
    w->slots = 2 * (size_t)threads;
    w->digests = calloc(w->nchunks ? w->nchunks : 1, sizeof *w->digests);
    w->given = calloc(w->nchunks ? w->nchunks : 1, 1);
    w->ring = calloc(w->slots, sizeof *w->ring);
    w->free_bufs = calloc(w->slots, sizeof *w->free_bufs);
    pthread_mutex_init(&w->lock, NULL);
    pthread_cond_init(&w->changed, NULL);
    if (!w->digests || !w->given || !w->ring || !w->free_bufs) {
        vb_error_set(err, "out of memory for a disk of %" PRIu64 " chunks", w->nchunks);
        repo_disk_writer_free(w);
        return NULL;
    }
    for (unsigned i = 0; i < threads; i++) {
        int e = pthread_create(&w->threads[i], NULL, worker, w);
        if (e) {
            errno = e;
            vb_error_errno(err, "cannot start a chunk writer thread");
            repo_disk_writer_free(w);
            return NULL;
        }
        w->nthreads++;
    }
    return w;
}

static int check_offset(struct repo_disk_writer *w, uint64_t offset, uint64_t *n,
                        struct vb_error *err)
{
    if (offset % w->chunk_size || offset >= w->virtual_size)
        return vb_error_set(err,
                            "offset %" PRIu64 " is not the start of a chunk of a disk of %" PRIu64
                            " bytes (chunk size %" PRIu32 ")",
                            offset, w->virtual_size, w->chunk_size);
    *n = offset / w->chunk_size;
    return 0;
}

/* Under the lock: refuses a chunk given twice, or any chunk after a failure. */
static int claim_locked(struct repo_disk_writer *w, uint64_t n, struct vb_error *err)
{
    if (w->failed) {
        *err = w->error;
        return -1;
    }
    if (w->closing)
        return vb_error_set(err, "chunk given after the disk was finished");
    if (w->given[n])
        return vb_error_set(err, "chunk at offset %" PRIu64 " given twice", n * w->chunk_size);
    w->given[n] = 1;
    return 0;
}

void *repo_disk_writer_buffer(struct repo_disk_writer *w, struct vb_error *err)
{
    pthread_mutex_lock(&w->lock);
    /* a free one, a new one while fewer than slots exist, else wait */
    void *buf = NULL;
    while (!buf && !w->failed) {
        if (w->nfree) {
            buf = w->free_bufs[--w->nfree];
        } else if (w->allocated < w->slots) {
            w->allocated++;
            pthread_mutex_unlock(&w->lock);
            buf = malloc(w->chunk_size);
            pthread_mutex_lock(&w->lock);
            if (!buf) {
                w->allocated--;
                struct vb_error oom;
                vb_error_set(&oom, "out of memory for a chunk buffer");
                fail_locked(w, &oom);
            }
        } else {
            pthread_cond_wait(&w->changed, &w->lock);
        }
    }
    if (w->failed) {
        if (buf)
            w->free_bufs[w->nfree++] = buf;
        *err = w->error;
        buf = NULL;
    }
    pthread_mutex_unlock(&w->lock);
    return buf;
}

void repo_disk_writer_release(struct repo_disk_writer *w, void *buf)
{
    if (!buf)
        return;
    pthread_mutex_lock(&w->lock);
    w->free_bufs[w->nfree++] = buf;
    pthread_cond_broadcast(&w->changed);
    pthread_mutex_unlock(&w->lock);
}

int repo_disk_writer_submit(struct repo_disk_writer *w, uint64_t offset, void *buf, size_t len,
                            size_t read, struct vb_error *err)
{
    uint64_t n = 0;
    if (check_offset(w, offset, &n, err) < 0) {
        repo_disk_writer_release(w, buf);
        return -1;
    }
    uint64_t want =
        w->virtual_size - offset < w->chunk_size ? w->virtual_size - offset : w->chunk_size;
    if (len != want) {
        repo_disk_writer_release(w, buf);
        return vb_error_set(err, "chunk at offset %" PRIu64 " has %zu bytes, not %" PRIu64, offset,
                            len, want);
    }
    pthread_mutex_lock(&w->lock);
    if (claim_locked(w, n, err) < 0) {
        w->free_bufs[w->nfree++] = buf;
        pthread_cond_broadcast(&w->changed);
        pthread_mutex_unlock(&w->lock);
        return -1;
    }
    w->ring[(w->head + w->queued) % w->slots] =
        (struct job){.n = n, .len = len, .read = read < len ? read : len, .buf = buf};
    w->queued++;
    pthread_cond_broadcast(&w->changed);
    pthread_mutex_unlock(&w->lock);
    return 0;
}

int repo_disk_writer_put(struct repo_disk_writer *w, uint64_t offset, const void *data, size_t len,
                         size_t read, struct vb_error *err)
{
    if (len > w->chunk_size)
        return vb_error_set(err, "chunk at offset %" PRIu64 " has %zu bytes, more than %" PRIu32,
                            offset, len, w->chunk_size);
    void *buf = repo_disk_writer_buffer(w, err);
    if (!buf)
        return -1;
    memcpy(buf, data, len);
    return repo_disk_writer_submit(w, offset, buf, len, read, err);
}

int repo_disk_writer_put_zero(struct repo_disk_writer *w, uint64_t offset, struct vb_error *err)
{
    uint64_t n = 0;
    if (check_offset(w, offset, &n, err) < 0)
        return -1;
    pthread_mutex_lock(&w->lock);
    int rc = claim_locked(w, n, err);
    if (rc == 0)
        w->stats.chunks_zero++; /* digests[n] is all zero already */
    pthread_mutex_unlock(&w->lock);
    return rc;
}

int repo_disk_writer_put_digest(struct repo_disk_writer *w, uint64_t offset, const repo_digest *d,
                                struct vb_error *err)
{
    uint64_t n = 0;
    if (check_offset(w, offset, &n, err) < 0)
        return -1;
    pthread_mutex_lock(&w->lock);
    int rc = claim_locked(w, n, err);
    if (rc == 0) {
        w->digests[n] = *d;
        if (repo_digest_is_zero(d))
            w->stats.chunks_zero++;
        else
            w->stats.chunks_copied++;
    }
    pthread_mutex_unlock(&w->lock);
    return rc;
}

static void stop_workers(struct repo_disk_writer *w)
{
    pthread_mutex_lock(&w->lock);
    w->closing = true;
    pthread_cond_broadcast(&w->changed);
    pthread_mutex_unlock(&w->lock);
    for (unsigned i = 0; i < w->nthreads; i++)
        pthread_join(w->threads[i], NULL);
    w->nthreads = 0;
}

int repo_disk_writer_finish(struct repo_disk_writer *w, repo_digest *index_digest,
                            struct repo_disk_stats *stats, struct vb_error *err)
{
    stop_workers(w);
    if (w->failed) {
        *err = w->error;
        return -1;
    }
    for (uint64_t n = 0; n < w->nchunks; n++)
        if (!w->given[n])
            return vb_error_set(err,
                                "the chunk at offset %" PRIu64 " of a disk of %" PRIu64
                                " bytes was never given",
                                n * w->chunk_size, w->virtual_size);
    struct repo_index idx = {.virtual_size = w->virtual_size,
                             .chunk_size = w->chunk_size,
                             .n = w->nchunks,
                             .digests = w->digests};
    if (repo_put_index(w->repo, &idx, index_digest, err) < 0)
        return -1;
    w->stats.chunks = w->nchunks;
    *stats = w->stats;
    return 0;
}

void repo_disk_writer_free(struct repo_disk_writer *w)
{
    if (!w)
        return;
    stop_workers(w);
    for (size_t i = 0; i < w->nfree; i++)
        free(w->free_bufs[i]);
    pthread_mutex_destroy(&w->lock);
    pthread_cond_destroy(&w->changed);
    free(w->free_bufs);
    free(w->ring);
    free(w->given);
    free(w->digests);
    free(w);
}

static int index_present(struct repo *r, const repo_digest *d, const char *what,
                         struct vb_error *err)
{
    char hex[REPO_DIGEST_HEX + 1];
    repo_digest_hex(d, hex);
    int rc = repo_index_exists(r, d, err);
    if (rc < 0)
        return vb_error_prefix(err, "%s", what);
    if (rc == 1)
        return vb_error_set(err, "%s: index %s is not in the repository", what, hex);
    return 0;
}

int repo_put_blob(struct repo *r, const void *data, size_t len, repo_digest *index,
                  struct vb_error *err)
{
    struct repo_disk_writer *w = repo_disk_writer_new(r, len, 1, err);
    if (!w)
        return -1;
    uint32_t cs = repo_disk_writer_chunk_size(w);
    const unsigned char *p = data;
    int rc = 0;
    for (size_t off = 0; rc == 0 && off < len; off += cs) {
        size_t n = len - off < cs ? len - off : cs;
        rc = repo_disk_writer_put(w, off, p + off, n, n, err);
    }
    struct repo_disk_stats st;
    if (rc == 0)
        rc = repo_disk_writer_finish(w, index, &st, err);
    repo_disk_writer_free(w);
    return rc;
}

int repo_snapshot_commit(struct repo *r, const struct repo_manifest *m, struct vb_error *err)
{
    char what[128];
    for (size_t i = 0; i < m->n_disks; i++) {
        snprintf(what, sizeof what, "disk %s", m->disks[i].target);
        if (index_present(r, &m->disks[i].index, what, err) < 0)
            return vb_error_prefix(err, "snapshot %s not committed", m->id);
    }
    for (size_t i = 0; i < m->n_blobs; i++) {
        snprintf(what, sizeof what, "%s blob", repo_blob_kind_name(m->blobs[i].kind));
        if (index_present(r, &m->blobs[i].index, what, err) < 0)
            return vb_error_prefix(err, "snapshot %s not committed", m->id);
    }
    return repo_put_manifest(r, m, err);
}
