/* stream_sink_async: a bounded queue of byte chunks between the thread that produces a
 * stream and a thread that checksums and writes it. */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "checksum.h"
#include "sink.h"

struct chunk {
    uint8_t *data;
    size_t len;
};

struct async_sink {
    struct stream_sink base;
    struct stream_sink *inner;
    size_t chunk_size, nchunks;
    struct chunk *chunks; /* ring: [head, head+queued) are full, the one at fill is filling */
    size_t head, queued, fill;
    uint32_t adler;
    bool stop, failed, done;
    struct vb_error err; /* the output thread's first error */
    pthread_t thread;
    bool thread_running;
    pthread_mutex_t lock;
    pthread_cond_t cond;
};

static void *output_main(void *arg)
{
    struct async_sink *as = arg;
    pthread_mutex_lock(&as->lock);
    for (;;) {
        while (!as->queued && !as->stop)
            pthread_cond_wait(&as->cond, &as->lock);
        if (!as->queued)
            break;
        struct chunk *c = &as->chunks[as->head];
        pthread_mutex_unlock(&as->lock);
        as->adler = stream_adler32(as->adler, c->data, c->len);
        struct vb_error e = {0};
        int rc = as->failed ? 0 : stream_sink_write(as->inner, c->data, c->len, &e);
        pthread_mutex_lock(&as->lock);
        if (rc < 0 && !as->failed) {
            as->failed = true;
            as->err = e;
        }
        c->len = 0;
        as->head = (as->head + 1) % as->nchunks;
        as->queued--;
        pthread_cond_broadcast(&as->cond);
    }
    pthread_mutex_unlock(&as->lock);
    return NULL;
}

/* Hands the filling chunk to the output thread and waits for a free one. */
static int push_chunk(struct async_sink *as, struct vb_error *err)
{
    pthread_mutex_lock(&as->lock);
    as->queued++;
    pthread_cond_broadcast(&as->cond);
    as->fill = (as->fill + 1) % as->nchunks;
    while (as->queued == as->nchunks && !as->failed)
        pthread_cond_wait(&as->cond, &as->lock);
    int rc = 0;
    if (as->failed) {
        *err = as->err;
        rc = -1;
    }
    pthread_mutex_unlock(&as->lock);
    return rc;
}

static int async_write(struct stream_sink *sink, const void *buf, size_t len, struct vb_error *err)
{
    struct async_sink *as = (struct async_sink *)sink;
    const uint8_t *p = buf;
    while (len) {
        struct chunk *c = &as->chunks[as->fill];
        size_t n = as->chunk_size - c->len < len ? as->chunk_size - c->len : len;
        memcpy(c->data + c->len, p, n);
        c->len += n;
        p += n;
        len -= n;
        if (c->len == as->chunk_size && push_chunk(as, err) < 0)
            return -1;
    }
    return 0;
}

/* Waits until every queued byte is written; -1 with the output thread's error. */
static int drain(struct async_sink *as, struct vb_error *err)
{
    if (as->chunks[as->fill].len && push_chunk(as, err) < 0)
        return -1;
    pthread_mutex_lock(&as->lock);
    while (as->queued && !as->failed)
        pthread_cond_wait(&as->cond, &as->lock);
    as->stop = true;
    pthread_cond_broadcast(&as->cond);
    pthread_mutex_unlock(&as->lock);
    pthread_join(as->thread, NULL);
    as->thread_running = false;
    if (as->failed) {
        *err = as->err;
        return -1;
    }
    return 0;
}

static int async_commit(struct stream_sink *sink, bool have_checksum, uint32_t checksum,
                        struct vb_error *err)
{
    (void)checksum; /* ours is the one that counts */
    struct async_sink *as = (struct async_sink *)sink;
    if (drain(as, err) < 0)
        return -1;
    if (as->inner->ops->commit(as->inner, have_checksum, as->adler, err) < 0)
        return -1;
    as->done = true;
    return 0;
}

static void stop_thread(struct async_sink *as)
{
    if (!as->thread_running)
        return;
    pthread_mutex_lock(&as->lock);
    as->failed = true; /* discard what is queued */
    as->stop = true;
    pthread_cond_broadcast(&as->cond);
    pthread_mutex_unlock(&as->lock);
    pthread_join(as->thread, NULL);
    as->thread_running = false;
}

static void async_abort(struct stream_sink *sink)
{
    struct async_sink *as = (struct async_sink *)sink;
    stop_thread(as);
    if (!as->done)
        as->inner->ops->abort(as->inner);
    as->done = true;
}

static uint32_t async_checksum(struct stream_sink *sink)
{
    return ((struct async_sink *)sink)->adler;
}

static void async_free(struct stream_sink *sink)
{
    struct async_sink *as = (struct async_sink *)sink;
    stop_thread(as);
    stream_sink_free(as->inner);
    for (size_t i = 0; as->chunks && i < as->nchunks; i++)
        free(as->chunks[i].data);
    free(as->chunks);
    pthread_mutex_destroy(&as->lock);
    pthread_cond_destroy(&as->cond);
    free(as);
}

static const struct stream_sink_ops async_ops = {
    .write = async_write,
    .commit = async_commit,
    .abort = async_abort,
    .free = async_free,
    .checksum = async_checksum,
};

struct stream_sink *stream_sink_async(struct stream_sink *inner, size_t chunk, size_t nchunks,
                                      struct vb_error *err)
{
    struct async_sink *as = calloc(1, sizeof *as);
    if (!as) {
        stream_sink_free(inner);
        vb_error_set(err, "out of memory");
        return NULL;
    }
    as->base.ops = &async_ops;
    as->base.name = inner->name; /* borrowed: messages name the real file */
    as->base.computes_checksum = true;
    as->inner = inner;
    as->chunk_size = chunk;
    as->nchunks = nchunks < 2 ? 2 : nchunks;
    as->adler = STREAM_ADLER32_INIT;
    pthread_mutex_init(&as->lock, NULL);
    pthread_cond_init(&as->cond, NULL);
    as->chunks = calloc(as->nchunks, sizeof *as->chunks);
    for (size_t i = 0; as->chunks && i < as->nchunks; i++)
        if (!(as->chunks[i].data = malloc(chunk)))
            goto fail;
    if (!as->chunks || pthread_create(&as->thread, NULL, output_main, as) != 0)
        goto fail;
    as->thread_running = true;
    return &as->base;
fail:
    vb_error_set(err, "out of memory for the output queue");
    as->done = true;
    async_free(&as->base);
    return NULL;
}
