#include "chunk_buffers.h"

#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>

struct chunk_buffers {
    pthread_mutex_t lock;
    size_t size;
    unsigned keep, n;
    void **spare;
};

struct chunk_buffers *chunk_buffers_new(size_t size, unsigned keep)
{
    struct chunk_buffers *cb = calloc(1, sizeof *cb);
    if (!cb || !(cb->spare = calloc(keep ? keep : 1, sizeof *cb->spare))) {
        free(cb);
        return NULL;
    }
    pthread_mutex_init(&cb->lock, NULL);
    cb->size = size;
    cb->keep = keep;
    return cb;
}

void chunk_buffers_free(struct chunk_buffers *cb)
{
    if (!cb)
        return;
    for (unsigned i = 0; i < cb->n; i++)
        free(cb->spare[i]);
    free(cb->spare);
    pthread_mutex_destroy(&cb->lock);
    free(cb);
}

size_t chunk_buffers_size(const struct chunk_buffers *cb)
{
    return cb->size;
}

void *chunk_buffers_get(struct chunk_buffers *cb)
{
    void *p = NULL;
    pthread_mutex_lock(&cb->lock);
    if (cb->n)
        p = cb->spare[--cb->n];
    pthread_mutex_unlock(&cb->lock);
    return p ? p : malloc(cb->size);
}

void chunk_buffers_put(void *ctx, void *data, size_t len)
{
    struct chunk_buffers *cb = ctx;
    if (!data)
        return;
    pthread_mutex_lock(&cb->lock);
    bool kept = len == cb->size && cb->n < cb->keep;
    if (kept)
        cb->spare[cb->n++] = data;
    pthread_mutex_unlock(&cb->lock);
    if (!kept)
        free(data);
}
