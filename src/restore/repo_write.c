#include "repo_write.h"

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
#include "util.h"
#include "vector.h"

#define MAX_READERS 64

struct chunk {
    struct chunk *next;     /* free list or a queue */
    struct chunk *all_next; /* every chunk slot, for the final cleanup */
    void *data;             /* the chunk's content (repo_get_chunk), NULL when the slot is free */
    uint64_t voff;
    size_t len;
    struct data_run *runs;
    size_t nruns, runcap, next_run; /* next_run: the writer's submission cursor */
    int pending;                    /* writes in flight (writer thread only) */
};

struct pipeline {
    struct repo *repo;
    const struct repo_index *idx;
    const struct repo_write_opts *o;
    struct nbd_write_stats *st;
    atomic_size_t next_chunk;
    pthread_mutex_t lock;
    pthread_cond_t cond; /* a slot freed, or failure */
    size_t slots, slots_max;
    struct chunk *free_list, *all;
    struct chunk *ready_head, *ready_tail; /* filled by readers */
    int readers_running;
    bool failed;
    struct vb_error err; /* the first error */
    struct nbd_driver nbd;
    struct chunk *head, *tail; /* the writer's own queue */
};

struct request {
    struct pipeline *pl;
    struct chunk *c;
    uint64_t voff;
    size_t len;
};

void repo_write_opts_default(struct repo_write_opts *o)
{
    *o = (struct repo_write_opts){
        .connections = 4,
        .max_in_flight = 16,
        .request_size = 2 * 1024 * 1024,
        .readers = 4,
        .memory_budget = 64 * 1024 * 1024,
    };
}

uint64_t repo_index_stored_bytes(const struct repo_index *idx)
{
    uint64_t n = 0;
    for (size_t i = 0; i < idx->n; i++)
        if (!repo_digest_is_zero(&idx->digests[i]))
            n += repo_index_chunk_len(idx, i);
    return n;
}

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
    nbd_driver_wake(&pl->nbd);
}

/* A free slot for one chunk; NULL once the restore failed. */
static struct chunk *get_slot(struct pipeline *pl)
{
    pthread_mutex_lock(&pl->lock);
    while (!pl->failed && !pl->free_list && pl->slots >= pl->slots_max)
        pthread_cond_wait(&pl->cond, &pl->lock);
    struct chunk *c = NULL;
    if (!pl->failed && pl->free_list) {
        c = pl->free_list;
        pl->free_list = c->next;
    } else if (!pl->failed) {
        c = calloc(1, sizeof *c);
        if (c) {
            pl->slots++;
            c->all_next = pl->all;
            pl->all = c;
        } else {
            struct vb_error e;
            vb_error_set(&e, "out of memory");
            fail_locked(pl, &e);
        }
    }
    pthread_mutex_unlock(&pl->lock);
    if (c)
        c->next = NULL;
    return c;
}

static void release_slot(struct pipeline *pl, struct chunk *c)
{
    free(c->data);
    c->data = NULL;
    pthread_mutex_lock(&pl->lock);
    c->next = pl->free_list;
    pl->free_list = c;
    pthread_cond_signal(&pl->cond);
    pthread_mutex_unlock(&pl->lock);
}

/* Fetches chunk i into slot c and queues what is to be written. */
static int read_chunk(struct pipeline *pl, struct chunk *c, size_t i, struct vb_error *e)
{
    const struct repo_index *idx = pl->idx;
    uint64_t voff = (uint64_t)i * idx->chunk_size;
    size_t want = repo_index_chunk_len(idx, i), len = 0;
    int64_t zero = -1;
    if (repo_get_chunk(pl->repo, &idx->digests[i], &c->data, &len, e) < 0) {
        vb_error_prefix(e, "disk offset %" PRIu64, voff);
    } else if (len != want) {
        char hex[65];
        repo_digest_hex(&idx->digests[i], hex);
        vb_error_set(e, "disk offset %" PRIu64 ": chunk %s holds %zu bytes, the index wants %zu",
                     voff, hex, len, want);
    } else {
        c->voff = voff;
        c->len = len;
        c->pending = 0;
        c->next_run = 0;
        if ((zero = restore_find_runs(c->data, c->len, pl->o->request_size, &c->runs, &c->nruns,
                                      &c->runcap)) < 0)
            vb_error_set(e, "out of memory");
    }
    if (zero < 0) {
        release_slot(pl, c);
        fail(pl, e);
        return -1;
    }
    progress_add(pl->o->progress, (uint64_t)zero);
    bool queued = c->nruns > 0; /* once queued, c is the writer's */
    pthread_mutex_lock(&pl->lock);
    pl->st->bytes_zero += (uint64_t)zero;
    if (queued) {
        if (pl->ready_tail)
            pl->ready_tail->next = c;
        else
            pl->ready_head = c;
        pl->ready_tail = c;
    }
    pthread_mutex_unlock(&pl->lock);
    if (queued)
        nbd_driver_wake(&pl->nbd);
    else
        release_slot(pl, c); /* all zero: nothing to write */
    return 0;
}

static void *reader_main(void *arg)
{
    struct pipeline *pl = arg;
    struct vb_error e = {0};
    const struct repo_index *idx = pl->idx;
    while (!(pl->o->stop && *pl->o->stop)) {
        struct chunk *c = get_slot(pl);
        if (!c)
            break; /* failed elsewhere */
        size_t i;
        do
            i = atomic_fetch_add(&pl->next_chunk, 1);
        while (i < idx->n && repo_digest_is_zero(&idx->digests[i]));
        if (i >= idx->n) {
            release_slot(pl, c);
            break;
        }
        if (read_chunk(pl, c, i, &e) < 0)
            break;
    }
    pthread_mutex_lock(&pl->lock);
    pl->readers_running--;
    pthread_mutex_unlock(&pl->lock);
    nbd_driver_wake(&pl->nbd);
    return NULL;
}

static int write_done(void *user_data, int *error)
{
    struct request *rq = user_data;
    struct pipeline *pl = rq->pl;
    struct chunk *c = rq->c;
    if (*error) {
        struct vb_error e;
        errno = *error;
        vb_error_errno(&e, "NBD write of %zu bytes at disk offset %" PRIu64 " failed", rq->len,
                       rq->voff);
        fail(pl, &e);
    } else {
        pl->st->bytes_written += rq->len;
        progress_add(pl->o->progress, rq->len);
    }
    if (--c->pending == 0 && c->next_run == c->nruns)
        release_slot(pl, c);
    return 1;
}

static void free_request(void *user_data)
{
    free(user_data);
}

static int submit_writes(void *opaque, struct nbd_driver *d, struct vb_error *err)
{
    struct pipeline *pl = opaque;
    pthread_mutex_lock(&pl->lock);
    if (pl->ready_head) {
        if (pl->tail)
            pl->tail->next = pl->ready_head;
        else
            pl->head = pl->ready_head;
        pl->tail = pl->ready_tail;
        pl->ready_head = pl->ready_tail = NULL;
    }
    bool reading = pl->readers_running > 0, failed = pl->failed;
    pthread_mutex_unlock(&pl->lock);
    if (failed) /* pl->err says why */
        return vb_error_set(err, "restore failed");
    while (pl->head) {
        struct chunk *c = pl->head;
        if (c->next_run == c->nruns) {
            pl->head = c->next;
            if (!pl->head)
                pl->tail = NULL;
            if (c->pending == 0)
                release_slot(pl, c);
            continue;
        }
        int best = nbd_driver_pick(d, pl->o->max_in_flight);
        if (best < 0)
            break; /* every connection is full */
        const struct data_run *r = &c->runs[c->next_run];
        struct request *rq = malloc(sizeof *rq);
        if (!rq)
            return vb_error_set(err, "out of memory");
        *rq = (struct request){pl, c, c->voff + r->off, r->len};
        nbd_completion_callback cb = {
            .callback = write_done, .user_data = rq, .free = free_request};
        c->pending++;
        c->next_run++;
        if (nbd_aio_pwrite(d->conn[best], (char *)c->data + r->off, r->len, rq->voff, cb, 0) < 0) {
            c->pending--; /* libnbd freed the request already */
            return vb_error_set(err, "NBD write at disk offset %" PRIu64 ": %s", c->voff + r->off,
                                nbd_get_error());
        }
        pl->st->requests++;
    }
    return reading || pl->head ? NBD_DRIVER_MORE : NBD_DRIVER_DONE;
}

int repo_write_nbd(struct repo *r, const struct repo_index *idx, const struct repo_write_opts *o,
                   struct nbd_write_stats *st, struct vb_error *err)
{
    *st = (struct nbd_write_stats){0};
    int nconn = o->connections < 1                      ? 1
                : o->connections > NBD_DRIVER_MAX_CONNS ? NBD_DRIVER_MAX_CONNS
                                                        : o->connections;
    int nreaders = o->readers < 1 ? 1 : o->readers > MAX_READERS ? MAX_READERS : o->readers;
    struct pipeline pl = {.repo = r, .idx = idx, .o = o, .st = st};
    atomic_init(&pl.next_chunk, 0);
    /* each reader holds one chunk while the others' are written */
    pl.slots_max = (size_t)(o->memory_budget / idx->chunk_size);
    if (pl.slots_max < (size_t)nreaders + 2)
        pl.slots_max = (size_t)nreaders + 2;
    pthread_mutex_init(&pl.lock, NULL);
    pthread_cond_init(&pl.cond, NULL);
    char where[600];
    vb_nbd_target_describe(&o->target, where, sizeof where);
    pthread_t threads[MAX_READERS];
    int started = 0, rc = 0;
    if (nbd_driver_init(&pl.nbd, where, o->stop, err) < 0) {
        rc = -1;
        goto out;
    }
    pl.nbd.stop_is_signal = true;
    if (restore_nbd_connect(&pl.nbd, &o->target, o->export_name, nconn, idx->virtual_size, err) <
        0) {
        rc = -1;
        goto out;
    }
    pl.readers_running = nreaders;
    for (; started < nreaders; started++) {
        if (pthread_create(&threads[started], NULL, reader_main, &pl) != 0) {
            struct vb_error e;
            vb_error_set(&e, "cannot start a reader thread");
            pthread_mutex_lock(&pl.lock);
            pl.readers_running -= nreaders - started;
            fail_locked(&pl, &e);
            pthread_mutex_unlock(&pl.lock);
            break;
        }
    }
    static const struct nbd_driver_ops write_ops = {.submit = submit_writes};
    struct vb_error e;
    rc = nbd_driver_run(&pl.nbd, &write_ops, &pl, &e);
    if (rc < 0)
        fail(&pl, &e); /* the first error is the restore's; the readers stop waiting */
    for (int i = 0; i < started; i++)
        pthread_join(threads[i], NULL);
    if (rc < 0) {
        *err = pl.err;
    } else {
        rc = restore_nbd_flush(&pl.nbd, err);
    }
out:
    /* closing a connection retires its commands; only then may their chunks go */
    nbd_driver_close(&pl.nbd, rc == 0);
    for (struct chunk *c = pl.all, *next; c; c = next) {
        next = c->all_next;
        free(c->data);
        free(c->runs);
        free(c);
    }
    pthread_cond_destroy(&pl.cond);
    pthread_mutex_destroy(&pl.lock);
    return rc;
}
