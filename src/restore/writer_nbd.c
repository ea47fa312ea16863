#include "writer_nbd.h"

#include <errno.h>
#include <inttypes.h>
#include <libnbd.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "nbd_driver.h"
#include "nbd_runs.h"
#include "stream_reader.h"
#include "util.h"
#include "vector.h"

/* Runs of zeroes shorter than this are written anyway: finer splitting costs requests and
 * gains nothing on 64 KiB qcow2 clusters. */
#define MAX_CONNS NBD_DRIVER_MAX_CONNS

struct buffer {
    struct buffer *next;     /* free list or ready queue */
    struct buffer *all_next; /* every buffer, for the final cleanup */
    char *data;              /* chunk bytes */
    uint64_t voff;
    size_t len;
    struct data_run *runs;
    size_t nruns, runcap, next_run; /* next_run: writer-thread submission cursor */
    int pending;                    /* writes in flight (writer thread only) */
};

/* Pieces decoded by one decoder in one pass: all pieces of one LZ4 frame, or one piece of an
 * uncompressed file. */
struct job {
    size_t first, count; /* in pipeline.order */
};

struct pipeline {
    const struct chain_index *ci;
    const struct restore_work *w;
    const struct nbd_write_opts *o;
    size_t *order; /* piece indexes, those of one LZ4 frame next to each other */
    struct job *jobs;
    size_t njobs;
    atomic_size_t next_job;
    size_t chunk;     /* bytes per buffer */
    size_t nbufs_max; /* buffers the budget allows */
    pthread_mutex_t lock;
    pthread_cond_t cond; /* a buffer freed, or failure */
    size_t nbufs;        /* allocated */
    struct buffer *free_list;
    struct buffer *all; /* owner of every buffer */
    struct buffer *ready_head, *ready_tail;
    int decoders_running;
    bool failed;
    struct vb_error err;   /* the first error */
    struct nbd_driver nbd; /* the connections and the loop; decoders wake it */
    struct nbd_write_stats *st;
    struct buffer *head, *tail; /* the calling thread's queue of buffers to write */
};

struct request {
    struct pipeline *pl;
    struct buffer *buf;
    uint64_t voff;
    size_t len;
};

void nbd_write_opts_default(struct nbd_write_opts *o)
{
    *o = (struct nbd_write_opts){
        .connections = 4,
        .max_in_flight = 16,
        .request_size = 1024 * 1024,
        .decoders = 2,
        .memory_budget = 16 * 1024 * 1024,
    };
}

static void wake_writer(struct pipeline *pl)
{
    nbd_driver_wake(&pl->nbd);
}

/* Records the first failure and wakes everyone. Call with the lock held. */
static void fail_locked(struct pipeline *pl, const struct vb_error *e)
{
    if (!pl->failed) {
        pl->failed = true;
        pl->err = *e;
    }
    pthread_cond_broadcast(&pl->cond);
}

static void fail(struct pipeline *pl, const struct vb_error *e)
{
    pthread_mutex_lock(&pl->lock);
    fail_locked(pl, e);
    pthread_mutex_unlock(&pl->lock);
    wake_writer(pl);
}

static void release_buffer(struct pipeline *pl, struct buffer *b)
{
    pthread_mutex_lock(&pl->lock);
    b->next = pl->free_list;
    pl->free_list = b;
    pthread_cond_signal(&pl->cond);
    pthread_mutex_unlock(&pl->lock);
}

/* A free buffer, allocated while the budget allows; NULL once the restore failed. */
static struct buffer *get_buffer(struct pipeline *pl)
{
    pthread_mutex_lock(&pl->lock);
    while (!pl->failed && !pl->free_list && pl->nbufs >= pl->nbufs_max)
        pthread_cond_wait(&pl->cond, &pl->lock);
    struct buffer *b = NULL;
    if (pl->failed) {
        pthread_mutex_unlock(&pl->lock);
        return NULL;
    }
    if (pl->free_list) {
        b = pl->free_list;
        pl->free_list = b->next;
        pthread_mutex_unlock(&pl->lock);
        b->next = NULL;
        return b;
    }
    pl->nbufs++;
    pthread_mutex_unlock(&pl->lock);
    b = calloc(1, sizeof *b);
    if (b && !(b->data = malloc(pl->chunk))) {
        free(b);
        b = NULL;
    }
    struct vb_error e;
    pthread_mutex_lock(&pl->lock);
    if (b) {
        b->all_next = pl->all;
        pl->all = b;
    } else {
        pl->nbufs--;
        vb_error_set(&e, "out of memory for a %zu byte buffer", pl->chunk);
        fail_locked(pl, &e);
    }
    pthread_mutex_unlock(&pl->lock);
    if (!b)
        wake_writer(pl);
    return b;
}

/* Decodes [voff, voff+len) of piece p into one buffer and queues its non-zero runs. */
static int decode_chunk(struct pipeline *pl, struct stream_reader *rd,
                        const struct restore_piece *p, uint64_t voff, size_t len,
                        struct vb_error *e)
{
    struct buffer *b = get_buffer(pl);
    if (!b)
        return -1; /* failed elsewhere */
    const struct stream_index *idx = pl->ci->files[p->file];
    const struct stream_extent *x = &idx->extents[p->extent];
    b->voff = voff;
    b->len = len;
    b->pending = 0;
    b->next_run = 0;
    int64_t zero = -1;
    if (stream_reader_read(rd, idx, p->extent, voff - x->start, len, b->data, e) < 0)
        vb_error_prefix(e, "reading disk offset %" PRIu64, voff);
    else if ((zero = restore_find_runs(b->data, b->len, pl->o->request_size, &b->runs, &b->nruns,
                                       &b->runcap)) < 0)
        vb_error_set(e, "out of memory");
    if (zero < 0) {
        release_buffer(pl, b);
        fail(pl, e);
        return -1;
    }
    progress_add(pl->o->progress, (uint64_t)zero);
    pthread_mutex_lock(&pl->lock);
    pl->st->bytes_zero += (uint64_t)zero;
    if (b->nruns == 0) { /* all zero: nothing to write */
        b->next = pl->free_list;
        pl->free_list = b;
        pthread_cond_signal(&pl->cond);
        pthread_mutex_unlock(&pl->lock);
        return 0;
    }
    if (pl->ready_tail)
        pl->ready_tail->next = b;
    else
        pl->ready_head = b;
    pl->ready_tail = b;
    pthread_mutex_unlock(&pl->lock);
    wake_writer(pl);
    return 0;
}

static void *decoder_main(void *arg)
{
    struct pipeline *pl = arg;
    struct stream_reader rd;
    struct vb_error e = {0};
    if (stream_reader_init(&rd, STREAM_READER_IN_CHUNK, &e) < 0) {
        fail(pl, &e);
    } else {
        for (bool ok = true; ok;) {
            size_t j = atomic_fetch_add(&pl->next_job, 1);
            if (j >= pl->njobs)
                break;
            const struct job *job = &pl->jobs[j];
            /* pieces of one LZ4 frame in ascending order: one decoding pass */
            for (size_t k = 0; ok && k < job->count; k++) {
                const struct restore_piece *p = &pl->w->pieces[pl->order[job->first + k]];
                for (uint64_t pos = 0; ok && pos < p->len; pos += pl->chunk) {
                    size_t n = p->len - pos < pl->chunk ? (size_t)(p->len - pos) : pl->chunk;
                    ok = decode_chunk(pl, &rd, p, p->voff + pos, n, &e) == 0;
                }
            }
        }
    }
    stream_reader_free(&rd);
    pthread_mutex_lock(&pl->lock);
    pl->decoders_running--;
    pthread_mutex_unlock(&pl->lock);
    wake_writer(pl);
    return NULL;
}

/* Sort key of a piece: where its LZ4 frame (or the piece itself) starts, then file, then
 * offset, so the pieces of one frame come together even when a newer file's piece lies in
 * between. */
struct order_key {
    uint64_t group, voff;
    uint32_t file;
    size_t i;
};

static int cmp_key(const void *a, const void *b)
{
    const struct order_key *x = a, *y = b;
    if (x->group != y->group)
        return x->group < y->group ? -1 : 1;
    if (x->file != y->file)
        return x->file < y->file ? -1 : 1;
    return x->voff < y->voff ? -1 : x->voff > y->voff;
}

static int plan_jobs(struct pipeline *pl, struct vb_error *err)
{
    const struct restore_work *w = pl->w;
    size_t n = w->n;
    struct order_key *keys = malloc((n ? n : 1) * sizeof *keys);
    pl->order = malloc((n ? n : 1) * sizeof *pl->order);
    pl->jobs = malloc((n ? n : 1) * sizeof *pl->jobs);
    if (!keys || !pl->order || !pl->jobs) {
        free(keys);
        return vb_error_set(err, "out of memory");
    }
    for (size_t i = 0; i < n; i++) {
        const struct restore_piece *p = &w->pieces[i];
        uint64_t group = p->voff;
        if (p->slice != RESTORE_NO_SLICE) {
            const struct stream_index *idx = pl->ci->files[p->file];
            group = idx->extents[p->extent].start + idx->slices[p->slice].raw_offset;
        }
        keys[i] = (struct order_key){group, p->voff, p->file, i};
    }
    qsort(keys, n, sizeof *keys, cmp_key);
    pl->njobs = 0;
    for (size_t i = 0; i < n; i++) {
        pl->order[i] = keys[i].i;
        const struct restore_piece *p = &w->pieces[keys[i].i];
        const struct restore_piece *prev = i ? &w->pieces[keys[i - 1].i] : NULL;
        if (prev && p->slice != RESTORE_NO_SLICE && prev->slice == p->slice &&
            prev->file == p->file)
            pl->jobs[pl->njobs - 1].count++;
        else
            pl->jobs[pl->njobs++] = (struct job){i, 1};
    }
    free(keys);
    return 0;
}

/* Completion of one write (runs in the writer thread, inside nbd_aio_notify_*). */
static int write_done(void *user_data, int *error)
{
    struct request *r = user_data;
    struct pipeline *pl = r->pl;
    struct buffer *b = r->buf;
    if (*error) {
        struct vb_error e;
        errno = *error;
        vb_error_errno(&e, "NBD write of %zu bytes at disk offset %" PRIu64 " failed", r->len,
                       r->voff);
        fail(pl, &e);
    } else {
        pl->st->bytes_written += r->len;
        progress_add(pl->o->progress, r->len);
    }
    if (--b->pending == 0 && b->next_run == b->nruns)
        release_buffer(pl, b);
    return 1; /* retire the command */
}

static void free_request(void *user_data)
{
    free(user_data);
}

/* Moves what the decoders queued to the writer's own list. */
static void take_ready(struct pipeline *pl, struct buffer **head, struct buffer **tail,
                       bool *decoding, bool *failed)
{
    pthread_mutex_lock(&pl->lock);
    if (pl->ready_head) {
        if (*tail)
            (*tail)->next = pl->ready_head;
        else
            *head = pl->ready_head;
        *tail = pl->ready_tail;
        pl->ready_head = pl->ready_tail = NULL;
    }
    *decoding = pl->decoders_running > 0;
    *failed = pl->failed;
    pthread_mutex_unlock(&pl->lock);
}

/* Starts writes of queued runs while a connection has room. Returns -1 on a submission
 * error. */
static int submit_runs(struct pipeline *pl, struct nbd_driver *d, struct vb_error *err)
{
    while (pl->head) {
        struct buffer *b = pl->head;
        if (b->next_run == b->nruns) { /* all submitted (or all zero) */
            pl->head = b->next;
            if (!pl->head)
                pl->tail = NULL;
            if (b->pending == 0)
                release_buffer(pl, b);
            continue;
        }
        int best = nbd_driver_pick(d, pl->o->max_in_flight);
        if (best < 0)
            return 0; /* every connection is full */
        const struct data_run *r = &b->runs[b->next_run];
        struct request *rq = malloc(sizeof *rq);
        if (!rq)
            return vb_error_set(err, "out of memory");
        *rq = (struct request){pl, b, b->voff + r->off, r->len};
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
        pl->st->requests++;
    }
    return 0;
}

/* nbd_driver's submit: takes what the decoders queued and writes it. */
static int submit_writes(void *opaque, struct nbd_driver *d, struct vb_error *err)
{
    struct pipeline *pl = opaque;
    bool decoding, failed;
    take_ready(pl, &pl->head, &pl->tail, &decoding, &failed);
    if (failed) /* a decoder or a completion failed: pl->err says why */
        return vb_error_set(err, "restore failed");
    if (submit_runs(pl, d, err) < 0)
        return -1;
    return decoding || pl->head ? NBD_DRIVER_MORE : NBD_DRIVER_DONE;
}

static void free_buffers(struct buffer *b)
{
    while (b) {
        struct buffer *next = b->all_next;
        free(b->data);
        free(b->runs);
        free(b);
        b = next;
    }
}

int restore_write_nbd(const struct chain_index *ci, const struct restore_work *w,
                      const struct nbd_write_opts *o, struct nbd_write_stats *st,
                      struct vb_error *err)
{
    *st = (struct nbd_write_stats){0};
    int nconn = o->connections < 1 ? 1 : o->connections > MAX_CONNS ? MAX_CONNS : o->connections;
    int ndec = o->decoders < 1 ? 1 : o->decoders > 64 ? 64 : o->decoders;
    struct pipeline pl = {.ci = ci, .w = w, .o = o, .st = st};
    atomic_init(&pl.next_job, 0);
    /* The budget covers every buffer: the decoders' input and LZ4 state, then chunks. */
    pl.chunk = o->request_size < RESTORE_ZERO_GRAIN ? RESTORE_ZERO_GRAIN : o->request_size;
    uint64_t budget = o->memory_budget, decoding = 0;
    for (size_t i = 0; i < ci->nfiles; i++)
        if (ci->files[i]->compressed)
            decoding = (uint64_t)ndec * stream_reader_footprint(STREAM_READER_IN_CHUNK, 64 * 1024);
    pl.nbufs_max = budget > decoding ? (size_t)((budget - decoding) / pl.chunk) : 0;
    if (pl.nbufs_max < (size_t)ndec + 2) /* each decoder fills one while others are written */
        pl.nbufs_max = (size_t)ndec + 2;
    pthread_mutex_init(&pl.lock, NULL);
    pthread_cond_init(&pl.cond, NULL);
    char where[600];
    vb_nbd_target_describe(&o->target, where, sizeof where);
    pthread_t threads[64];
    int started = 0, rc = 0;
    if (nbd_driver_init(&pl.nbd, where, o->stop, err) < 0) {
        rc = -1;
        goto out;
    }
    pl.nbd.stop_is_signal = true;
    if (plan_jobs(&pl, err) < 0 || restore_nbd_connect(&pl.nbd, &o->target, o->export_name, nconn,
                                                       ci->virtual_size, err) < 0) {
        rc = -1;
        goto out;
    }
    pl.decoders_running = ndec;
    for (; started < ndec; started++) {
        if (pthread_create(&threads[started], NULL, decoder_main, &pl) != 0) {
            struct vb_error e;
            vb_error_set(&e, "cannot start a decoder thread");
            pthread_mutex_lock(&pl.lock);
            pl.decoders_running -= ndec - started;
            fail_locked(&pl, &e);
            pthread_mutex_unlock(&pl.lock);
            break;
        }
    }
    static const struct nbd_driver_ops write_ops = {.submit = submit_writes};
    struct vb_error e;
    rc = nbd_driver_run(&pl.nbd, &write_ops, &pl, &e);
    if (rc < 0)
        fail(&pl, &e); /* the first error is the restore's; the decoders stop waiting */
    for (int i = 0; i < started; i++)
        pthread_join(threads[i], NULL);
    if (rc < 0)
        *err = pl.err;
    else
        rc = restore_nbd_flush(&pl.nbd, err);
out:
    /* Closing a connection retires its commands; only then may their buffers go. */
    nbd_driver_close(&pl.nbd, rc == 0);
    free_buffers(pl.all);
    free(pl.order);
    free(pl.jobs);
    pthread_cond_destroy(&pl.cond);
    pthread_mutex_destroy(&pl.lock);
    return rc;
}
