#include "fetch_pool.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>

#define QUEUE_MAX 256

struct fetch_job {
    fetch_job_fn fn;
    void *ctx;
    uint64_t arg;
};

struct fetch_pool {
    pthread_mutex_t lock;
    pthread_cond_t work;
    struct fetch_job queue[QUEUE_MAX]; /* a ring */
    size_t head, count;
    bool stopping;
    unsigned nthreads;
    pthread_t *threads;
};

static void *worker(void *arg)
{
    struct fetch_pool *p = arg;
    pthread_mutex_lock(&p->lock);
    for (;;) {
        while (!p->stopping && p->count == 0)
            pthread_cond_wait(&p->work, &p->lock);
        if (p->stopping)
            break;
        struct fetch_job j = p->queue[p->head];
        p->head = (p->head + 1) % QUEUE_MAX;
        p->count--;
        pthread_mutex_unlock(&p->lock);
        j.fn(j.ctx, j.arg);
        pthread_mutex_lock(&p->lock);
    }
    pthread_mutex_unlock(&p->lock);
    return NULL;
}

struct fetch_pool *fetch_pool_new(unsigned threads, struct vb_error *err)
{
    struct fetch_pool *p = calloc(1, sizeof *p);
    if (threads < 1)
        threads = 1;
    if (!p || !(p->threads = calloc(threads, sizeof *p->threads))) {
        free(p);
        vb_error_set(err, "out of memory");
        return NULL;
    }
    pthread_mutex_init(&p->lock, NULL);
    pthread_cond_init(&p->work, NULL);
    for (unsigned i = 0; i < threads; i++) {
        int e = pthread_create(&p->threads[i], NULL, worker, p);
        if (e != 0) {
            errno = e;
            vb_error_errno(err, "cannot start a read-ahead thread");
            fetch_pool_free(p);
            return NULL;
        }
        p->nthreads++;
    }
    return p;
}

void fetch_pool_free(struct fetch_pool *p)
{
    if (!p)
        return;
    pthread_mutex_lock(&p->lock);
    p->stopping = true;
    pthread_cond_broadcast(&p->work);
    pthread_mutex_unlock(&p->lock);
    for (unsigned i = 0; i < p->nthreads; i++)
        pthread_join(p->threads[i], NULL);
    pthread_cond_destroy(&p->work);
    pthread_mutex_destroy(&p->lock);
    free(p->threads);
    free(p);
}

unsigned fetch_pool_threads(const struct fetch_pool *p)
{
    return p->nthreads;
}

bool fetch_pool_submit(struct fetch_pool *p, fetch_job_fn fn, void *ctx, uint64_t arg)
{
    pthread_mutex_lock(&p->lock);
    bool ok = !p->stopping && p->count < QUEUE_MAX;
    if (ok) {
        p->queue[(p->head + p->count) % QUEUE_MAX] = (struct fetch_job){fn, ctx, arg};
        p->count++;
        pthread_cond_signal(&p->work);
    }
    pthread_mutex_unlock(&p->lock);
    return ok;
}
