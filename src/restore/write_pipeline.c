#include "write_pipeline.h"

#include <errno.h>
#include <inttypes.h>
#include <libnbd.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdlib.h>

#include "nbd_driver.h"
#include "nbd_runs.h"

#define MAX_WORKERS 64

struct write_pipeline {
    const struct nbd_write_opts *o;
    const struct write_pipeline_work *work;
    const struct wp_producer_ops *ops;
    void *producer;
    struct nbd_write_stats *st;
    atomic_size_t next_unit;
    size_t nbufs_max;
    pthread_mutex_t lock;
    pthread_cond_t cond; /* a buffer freed, or failure */
    size_t nbufs;        /* allocated */
    struct wp_buffer *free_list;
    struct wp_buffer *all;                     /* owner of every buffer */
    struct wp_buffer *ready_head, *ready_tail; /* queued by the workers */
    int workers_running;
    bool failed;
    struct vb_error err;           /* the first error */
    struct nbd_driver nbd;         /* the connections and the loop; workers wake it */
    struct wp_buffer *head, *tail; /* the calling thread's queue of buffers to write */
};

struct request {
    struct write_pipeline *wp;
    struct wp_buffer *buf;
    uint64_t voff;
    size_t len;
};

/* Records the first failure and wakes everyone. Call with the lock held. */
static void fail_locked(struct write_pipeline *wp, const struct vb_error *e)
{
    if (!wp->failed) {
        wp->failed = true;
        wp->err = *e;
    }
    pthread_cond_broadcast(&wp->cond);
}

static void fail(struct write_pipeline *wp, const struct vb_error *e)
{
    pthread_mutex_lock(&wp->lock);
    fail_locked(wp, e);
    pthread_mutex_unlock(&wp->lock);
    nbd_driver_wake(&wp->nbd);
}

void wp_buffer_drop(struct write_pipeline *wp, struct wp_buffer *b)
{
    pthread_mutex_lock(&wp->lock);
    b->next = wp->free_list;
    wp->free_list = b;
    pthread_cond_signal(&wp->cond);
    pthread_mutex_unlock(&wp->lock);
}

struct wp_buffer *wp_buffer_get(struct write_pipeline *wp)
{
    pthread_mutex_lock(&wp->lock);
    while (!wp->failed && !wp->free_list && wp->nbufs >= wp->nbufs_max)
        pthread_cond_wait(&wp->cond, &wp->lock);
    struct wp_buffer *b = NULL;
    if (wp->failed) {
        pthread_mutex_unlock(&wp->lock);
        return NULL;
    }
    if (wp->free_list) {
        b = wp->free_list;
        wp->free_list = b->next;
        pthread_mutex_unlock(&wp->lock);
        b->next = NULL;
        return b;
    }
    wp->nbufs++;
    pthread_mutex_unlock(&wp->lock);
    /* allocated outside the lock: the other workers go on */
    b = calloc(1, sizeof *b);
    if (b && !(b->data = malloc(wp->work->buffer_size))) {
        free(b);
        b = NULL;
    }
    struct vb_error e;
    pthread_mutex_lock(&wp->lock);
    if (b) {
        b->all_next = wp->all;
        wp->all = b;
    } else {
        wp->nbufs--;
        vb_error_set(&e, "out of memory for a %zu byte buffer", wp->work->buffer_size);
        fail_locked(wp, &e);
    }
    pthread_mutex_unlock(&wp->lock);
    if (!b)
        nbd_driver_wake(&wp->nbd);
    return b;
}

int wp_buffer_queue(struct write_pipeline *wp, struct wp_buffer *b, struct vb_error *err)
{
    b->pending = 0;
    b->next_run = 0;
    int64_t zero =
        restore_find_runs(b->data, b->len, wp->o->request_size, &b->runs, &b->nruns, &b->runcap);
    if (zero < 0) {
        wp_buffer_drop(wp, b);
        return vb_error_set(err, "out of memory");
    }
    progress_add(wp->o->progress, (uint64_t)zero);
    pthread_mutex_lock(&wp->lock);
    wp->st->bytes_zero += (uint64_t)zero;
    if (b->nruns == 0) { /* all zero: nothing to write */
        b->next = wp->free_list;
        wp->free_list = b;
        pthread_cond_signal(&wp->cond);
        pthread_mutex_unlock(&wp->lock);
        return 0;
    }
    if (wp->ready_tail)
        wp->ready_tail->next = b;
    else
        wp->ready_head = b;
    wp->ready_tail = b;
    pthread_mutex_unlock(&wp->lock);
    nbd_driver_wake(&wp->nbd);
    return 0;
}

static void *worker_main(void *arg)
{
    struct write_pipeline *wp = arg;
    const struct wp_producer_ops *ops = wp->ops;
    struct vb_error e = {0};
    void *state = NULL;
    if (ops->worker_init && ops->worker_init(wp->producer, &state, &e) < 0) {
        fail(wp, &e);
    } else {
        while (!(wp->o->stop && *wp->o->stop)) {
            size_t unit = atomic_fetch_add(&wp->next_unit, 1);
            if (unit >= wp->work->units)
                break;
            if (ops->produce(wp->producer, state, wp, unit, &e) < 0) {
                fail(wp, &e); /* the first error stays: a NULL buffer means one was set */
                break;
            }
        }
        if (ops->worker_free)
            ops->worker_free(wp->producer, state);
    }
    pthread_mutex_lock(&wp->lock);
    wp->workers_running--;
    pthread_mutex_unlock(&wp->lock);
    nbd_driver_wake(&wp->nbd);
    return NULL;
}

/* Completion of one write (runs in the writer thread, inside nbd_aio_notify_*). */
static int write_done(void *user_data, int *error)
{
    struct request *r = user_data;
    struct write_pipeline *wp = r->wp;
    struct wp_buffer *b = r->buf;
    if (*error) {
        struct vb_error e;
        errno = *error;
        vb_error_errno(&e, "NBD write of %zu bytes at disk offset %" PRIu64 " failed", r->len,
                       r->voff);
        fail(wp, &e);
    } else {
        wp->st->bytes_written += r->len;
        progress_add(wp->o->progress, r->len);
    }
    if (--b->pending == 0 && b->next_run == b->nruns)
        wp_buffer_drop(wp, b);
    return 1; /* retire the command */
}

static void free_request(void *user_data)
{
    free(user_data);
}

/* Starts writes of queued runs while a connection has room. Returns -1 on a submission
 * error. */
static int submit_runs(struct write_pipeline *wp, struct nbd_driver *d, struct vb_error *err)
{
    while (wp->head) {
        struct wp_buffer *b = wp->head;
        if (b->next_run == b->nruns) { /* all submitted */
            wp->head = b->next;
            if (!wp->head)
                wp->tail = NULL;
            if (b->pending == 0)
                wp_buffer_drop(wp, b);
            continue;
        }
        int best = nbd_driver_pick(d, wp->o->max_in_flight);
        if (best < 0)
            return 0; /* every connection is full */
        const struct data_run *r = &b->runs[b->next_run];
        struct request *rq = malloc(sizeof *rq);
        if (!rq)
            return vb_error_set(err, "out of memory");
        *rq = (struct request){wp, b, b->voff + r->off, r->len};
        nbd_completion_callback cb = {
            .callback = write_done, .user_data = rq, .free = free_request};
        b->pending++;
        b->next_run++;
        if (nbd_aio_pwrite(d->conn[best], b->data + r->off, r->len, rq->voff, cb, 0) < 0) {
            /* libnbd called .free already; the write never started */
            b->pending--;
            return vb_error_set(err, "NBD write at disk offset %" PRIu64 ": %s", b->voff + r->off,
                                nbd_get_error());
        }
        wp->st->requests++;
    }
    return 0;
}

/* nbd_driver's submit: takes what the workers queued and writes it. */
static int submit_writes(void *opaque, struct nbd_driver *d, struct vb_error *err)
{
    struct write_pipeline *wp = opaque;
    pthread_mutex_lock(&wp->lock);
    if (wp->ready_head) {
        if (wp->tail)
            wp->tail->next = wp->ready_head;
        else
            wp->head = wp->ready_head;
        wp->tail = wp->ready_tail;
        wp->ready_head = wp->ready_tail = NULL;
    }
    bool producing = wp->workers_running > 0, failed = wp->failed;
    pthread_mutex_unlock(&wp->lock);
    if (failed) /* a worker or a completion failed: wp->err says why */
        return vb_error_set(err, "restore failed");
    if (submit_runs(wp, d, err) < 0)
        return -1;
    return producing || wp->head ? NBD_DRIVER_MORE : NBD_DRIVER_DONE;
}

int write_pipeline_run(const struct nbd_write_opts *o, const struct write_pipeline_work *work,
                       const struct wp_producer_ops *ops, void *producer,
                       struct nbd_write_stats *st, struct vb_error *err)
{
    *st = (struct nbd_write_stats){0};
    int nconn = o->connections < 1                      ? 1
                : o->connections > NBD_DRIVER_MAX_CONNS ? NBD_DRIVER_MAX_CONNS
                                                        : o->connections;
    int nworkers = o->workers < 1 ? 1 : o->workers > MAX_WORKERS ? MAX_WORKERS : o->workers;
    struct write_pipeline wp = {.o = o, .work = work, .ops = ops, .producer = producer, .st = st};
    atomic_init(&wp.next_unit, 0);
    /* each worker fills one buffer while the others' are written */
    wp.nbufs_max = work->buffers < (size_t)nworkers + 2 ? (size_t)nworkers + 2 : work->buffers;
    pthread_mutex_init(&wp.lock, NULL);
    pthread_cond_init(&wp.cond, NULL);
    char where[600];
    vb_nbd_target_describe(&o->target, where, sizeof where);
    pthread_t threads[MAX_WORKERS];
    int started = 0, rc = 0;
    if (nbd_driver_init(&wp.nbd, where, o->stop, err) < 0) {
        rc = -1;
        goto out;
    }
    wp.nbd.stop_is_signal = true;
    if (restore_nbd_connect(&wp.nbd, &o->target, o->export_name, nconn, work->export_need, err) <
        0) {
        rc = -1;
        goto out;
    }
    wp.workers_running = nworkers;
    for (; started < nworkers; started++) {
        if (pthread_create(&threads[started], NULL, worker_main, &wp) != 0) {
            struct vb_error e;
            vb_error_set(&e, "cannot start a worker thread");
            pthread_mutex_lock(&wp.lock);
            wp.workers_running -= nworkers - started;
            fail_locked(&wp, &e);
            pthread_mutex_unlock(&wp.lock);
            break;
        }
    }
    static const struct nbd_driver_ops write_ops = {.submit = submit_writes};
    struct vb_error e;
    rc = nbd_driver_run(&wp.nbd, &write_ops, &wp, &e);
    if (rc < 0)
        fail(&wp, &e); /* the first error is the restore's; the workers stop waiting */
    for (int i = 0; i < started; i++)
        pthread_join(threads[i], NULL);
    if (rc < 0)
        *err = wp.err;
    else
        rc = restore_nbd_flush(&wp.nbd, err);
out:
    /* Closing a connection retires its commands; only then may their buffers go. */
    nbd_driver_close(&wp.nbd, rc == 0);
    for (struct wp_buffer *b = wp.all, *next; b; b = next) {
        next = b->all_next;
        free(b->data);
        free(b->runs);
        free(b);
    }
    pthread_cond_destroy(&wp.cond);
    pthread_mutex_destroy(&wp.lock);
    return rc;
}
