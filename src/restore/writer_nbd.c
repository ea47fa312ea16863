#include "writer_nbd.h"

#include <inttypes.h>
#include <stdbool.h>
#include <stdlib.h>

#include "nbd_runs.h"
#include "stream_reader.h"
#include "write_pipeline.h"

/* Pieces decoded by one decoder in one pass: all pieces of one LZ4 frame, or one piece of an
 * uncompressed file. The pipeline's unit of work. */
struct job {
    size_t first, count; /* in producer.order */
};

struct producer {
    const struct chain_index *ci;
    const struct restore_work *w;
    size_t *order; /* piece indexes, those of one LZ4 frame next to each other */
    struct job *jobs;
    size_t njobs;
    size_t chunk; /* bytes per buffer */
};

void nbd_write_opts_default(struct nbd_write_opts *o)
{
    *o = (struct nbd_write_opts){
        .connections = 4,
        .max_in_flight = 16,
        .request_size = 1024 * 1024,
        .workers = 2,
        .memory_budget = 16 * 1024 * 1024,
    };
}

/* Decodes [voff, voff+len) of piece p into one buffer and queues it. */
static int decode_chunk(struct producer *pr, struct write_pipeline *wp, struct stream_reader *rd,
                        const struct restore_piece *p, uint64_t voff, size_t len,
                        struct vb_error *e)
{
    struct wp_buffer *b = wp_buffer_get(wp);
    if (!b)
        return -1; /* failed elsewhere */
    const struct stream_index *idx = pr->ci->files[p->file];
    const struct stream_extent *x = &idx->extents[p->extent];
    b->voff = voff;
    b->len = len;
    if (stream_reader_read(rd, idx, p->extent, voff - x->start, len, b->data, e) < 0) {
        wp_buffer_drop(wp, b);
        return vb_error_prefix(e, "reading disk offset %" PRIu64, voff);
    }
    return wp_buffer_queue(wp, b, e);
}

static int decoder_init(void *producer, void **state, struct vb_error *err)
{
    (void)producer;
    struct stream_reader *rd = malloc(sizeof *rd);
    if (!rd)
        return vb_error_set(err, "out of memory");
    if (stream_reader_init(rd, STREAM_READER_IN_CHUNK, err) < 0) {
        stream_reader_free(rd);
        free(rd);
        return -1;
    }
    *state = rd;
    return 0;
}

static void decoder_free(void *producer, void *state)
{
    (void)producer;
    stream_reader_free(state);
    free(state);
}

/* One job: the pieces of one LZ4 frame in ascending order (one decoding pass), each cut into
 * buffers. */
static int decode_job(void *producer, void *state, struct write_pipeline *wp, size_t unit,
                      struct vb_error *err)
{
    struct producer *pr = producer;
    const struct job *job = &pr->jobs[unit];
    for (size_t k = 0; k < job->count; k++) {
        const struct restore_piece *p = &pr->w->pieces[pr->order[job->first + k]];
        for (uint64_t pos = 0; pos < p->len; pos += pr->chunk) {
            size_t n = p->len - pos < pr->chunk ? (size_t)(p->len - pos) : pr->chunk;
            if (decode_chunk(pr, wp, state, p, p->voff + pos, n, err) < 0)
                return -1;
        }
    }
    return 0;
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

static int plan_jobs(struct producer *pl, struct vb_error *err)
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

int restore_write_nbd(const struct chain_index *ci, const struct restore_work *w,
                      const struct nbd_write_opts *o, struct nbd_write_stats *st,
                      struct vb_error *err)
{
    struct producer pr = {.ci = ci, .w = w};
    int ndec = o->workers < 1 ? 1 : o->workers > 64 ? 64 : o->workers;
    /* The budget covers every buffer: the decoders' input and LZ4 state, then chunks. */
    pr.chunk = o->request_size < RESTORE_ZERO_GRAIN ? RESTORE_ZERO_GRAIN : o->request_size;
    uint64_t budget = o->memory_budget, decoding = 0;
    for (size_t i = 0; i < ci->nfiles; i++)
        if (ci->files[i]->compressed)
            decoding = (uint64_t)ndec * stream_reader_footprint(STREAM_READER_IN_CHUNK, 64 * 1024);
    int rc = plan_jobs(&pr, err);
    if (rc == 0) {
        struct write_pipeline_work work = {
            .export_need = ci->virtual_size,
            .units = pr.njobs,
            .buffer_size = pr.chunk,
            .buffers = budget > decoding ? (size_t)((budget - decoding) / pr.chunk) : 0,
        };
        static const struct wp_producer_ops ops = {
            .worker_init = decoder_init, .worker_free = decoder_free, .produce = decode_job};
        rc = write_pipeline_run(o, &work, &ops, &pr, st, err);
    } else {
        *st = (struct nbd_write_stats){0};
    }
    free(pr.order);
    free(pr.jobs);
    return rc;
}
