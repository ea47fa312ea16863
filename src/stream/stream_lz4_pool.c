/* stream_lz4_pool: LZ4 frames compressed by worker threads, emitted in order.
 *
 * The caller's bytes are copied into jobs (a ring of 2 x workers); a job is a list of
 * segments whose outputs are concatenated:
 *   RAW    bytes copied as they are (stream frame headers, terminators, and the header of a
 *          PART frame, which the caller's thread writes);
 *   WHOLE  a complete LZ4 frame of at most job_size bytes (LZ4F_compressFrame: a fresh state);
 *   PART   a run of whole 64 KiB blocks of a larger frame (the frame's last run also holds its
 *          last, shorter block), compressed with the worker's own context: LZ4F_compressBegin
 *          (header discarded) + LZ4F_compressUpdate with autoFlush, which writes complete
 *          blocks (size, data, XXH32 block checksum). Blocks are independent, and every run
 *          starts with a full block (liblz4 clears its match table for inputs of 4 KiB and
 *          more), so these are the bytes a single context writes for the same blocks.
 *   TAIL   the end mark and content checksum of a PART frame (8 bytes, filled in later).
 * For a PART frame the caller's thread writes the real header with hdr_ctx (content size,
 * block and content checksums, independent blocks: the single encoder's preferences). The
 * content checksum comes from sum_ctx, fed the same data with LZ4F_uncompressedUpdate
 * (liblz4 1.9.4 exports no XXH32): it only copies the blocks into a scratch buffer and
 * updates the checksum; LZ4F_compressEnd then gives the end mark and the checksum. sum_ctx
 * has block checksums off (they would be computed for nothing), so it cannot write the
 * header: hdr_ctx does, and is never fed.
 *
 * Each job thus has two tasks, both done by the worker that takes it: compressing (the jobs
 * in parallel) and checksumming (the jobs in stream order, one at a time). The worker then
 * puts the TAIL bytes in place, computes the adler32 of the job's output and writes it out
 * through the emit callback (in stream order, one worker at a time), all while the data is
 * in its cache: the caller's thread only copies the input in. emit and frame are thus called
 * from the workers, except while no job is under way (no job between submit and retire):
 * the caller's bytes are then written directly, on its thread. */
#define LZ4F_STATIC_LINKING_ONLY
#include "stream_lz4_pool.h"

#include <lz4frame.h>
#include <pthread.h>
#include <sched.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "checksum.h"
#include "stream_lz4.h"

#define BLOCK       ((size_t)STREAM_LZ4_BLOCK_SIZE)
#define DEFAULT_JOB (256 * 1024)
/* room kept in every job for the RAW bytes around a frame */
#define RAW_RESERVE 4096
/* longer RAW pieces (the trailer) are written directly after a flush */
#define RAW_MAX  1024
#define MAX_SEGS 256
/* input step of the single-threaded encoder (bounds its output buffer) */
#define SERIAL_STEP (1024 * 1024)

enum seg_kind { SEG_RAW, SEG_WHOLE, SEG_PART, SEG_TAIL };

#define TAIL_LEN 8 /* end mark, content checksum */

struct seg {
    enum seg_kind kind;
    bool in_frame;           /* output counts into the current LZ4 frame's stored size */
    bool frame_last;         /* the frame's last segment */
    bool frame_first;        /* SEG_PART: the frame's first run (the checksum starts) */
    uint64_t content;        /* frame_first: the frame's size */
    size_t off, len;         /* input: job->in[off..off+len) */
    size_t out_off, out_len; /* output, set by the compressing worker */
    uint8_t tail[TAIL_LEN];  /* SEG_TAIL, set by the checksumming worker */
};

enum job_state { JOB_FREE, JOB_FILLING, JOB_QUEUED, JOB_DONE, JOB_FAILED };

struct job {
    enum job_state state;
    bool has_sum; /* holds PART or TAIL segments */
    bool ready;   /* compressed and checksummed: may be written (under the lock) */
    uint8_t *in;
    size_t in_len;
    uint8_t *out;
    size_t out_cap, out_len, out_need;
    uint32_t adler; /* of out */
    struct seg segs[MAX_SEGS];
    size_t nsegs;
    struct vb_error err, sum_err;
};

struct worker {
    struct stream_lz4_pool *pool;
    pthread_t thread;
    LZ4F_cctx *cctx;
};

struct stream_lz4_pool {
    int level;
    bool want_adler;
    unsigned nworkers;
    size_t job_size, in_cap;
    stream_lz4_emit_fn emit;
    stream_lz4_frame_fn frame;
    void *opaque;
    bool failed;
    struct vb_error err; /* the first error, returned by every later call */
    /* the frame in progress */
    bool in_frame, whole;
    uint64_t content, done;
    uint64_t stored; /* of the frame being emitted */
    /* workers == 0 */
    struct stream_lz4_encoder enc;
    void *cbuf;
    size_t cbuf_cap;
    /* workers > 0 */
    LZ4F_cctx *hdr_ctx, *sum_ctx;
    uint8_t *scratch;
    size_t scratch_cap;
    struct job *jobs;
    size_t njobs;
    struct job *fill; /* jobs[submitted % njobs] while being filled */
    struct seg *open; /* fill's open WHOLE or PART segment */
    size_t part_target;
    bool part_first;
    /* jobs handed over, taken for compression, checksummed, emitted */
    uint64_t submitted, started, summed, emitted, retired;
    bool emitting;    /* a worker is writing jobs out */
    bool emit_failed; /* the stream is broken: later jobs are not written */
    struct vb_error emit_err;
    struct worker *workers;
    unsigned nthreads;
    bool stop;
    pthread_mutex_t lock;
    pthread_cond_t work, turn, finished;
};

static LZ4F_preferences_t prefs(uint64_t content, int level, bool block_sum, bool content_sum,
                                bool auto_flush)
{
    LZ4F_preferences_t p;
    memset(&p, 0, sizeof p);
    p.frameInfo.blockSizeID = LZ4F_max64KB;
    p.frameInfo.blockMode = LZ4F_blockIndependent;
    p.frameInfo.blockChecksumFlag = block_sum ? LZ4F_blockChecksumEnabled : LZ4F_noBlockChecksum;
    p.frameInfo.contentChecksumFlag =
        content_sum ? LZ4F_contentChecksumEnabled : LZ4F_noContentChecksum;
    p.frameInfo.contentSize = content;
    p.compressionLevel = level;
    p.autoFlush = auto_flush;
    return p;
}

/* the single encoder's frame (stream_lz4.c) */
static LZ4F_preferences_t frame_prefs(uint64_t content, int level)
{
    return prefs(content, level, true, true, false);
}

/* a worker's context for runs of blocks */
static LZ4F_preferences_t part_prefs(int level)
{
    return prefs(0, level, true, false, true);
}

static int lz4_failed(struct vb_error *err, size_t r)
{
    return vb_error_set(err, "lz4 compression failed: %s", LZ4F_getErrorName(r));
}

unsigned stream_lz4_default_workers(void)
{
    long ncpu;
    cpu_set_t set;
    if (sched_getaffinity(0, sizeof set, &set) == 0)
        ncpu = CPU_COUNT(&set);
    else
        ncpu = sysconf(_SC_NPROCESSORS_ONLN);
    if (ncpu <= 1)
        return 0;
    return ncpu > 4 ? 4 : (unsigned)ncpu;
}

/* ---- workers ------------------------------------------------------------------------ */

static int compress_job(struct worker *wk, struct job *j)
{
    int level = wk->pool->level;
    size_t pos = 0;
    for (size_t i = 0; i < j->nsegs; i++) {
        struct seg *s = &j->segs[i];
        uint8_t *dst = j->out + pos;
        size_t cap = j->out_cap - pos, r = s->len;
        const uint8_t *src = j->in + s->off;
        if (s->kind == SEG_RAW) {
            memcpy(dst, src, s->len);
        } else if (s->kind == SEG_TAIL) {
            r = TAIL_LEN; /* the checksumming worker fills it in */
        } else if (s->kind == SEG_WHOLE) {
            LZ4F_preferences_t fp = frame_prefs(s->len, level);
            r = LZ4F_compressFrame(dst, cap, src, s->len, &fp);
        } else {
            LZ4F_preferences_t pp = part_prefs(level);
            uint8_t hdr[LZ4F_HEADER_SIZE_MAX];
            r = LZ4F_compressBegin(wk->cctx, hdr, sizeof hdr, &pp);
            if (!LZ4F_isError(r))
                r = LZ4F_compressUpdate(wk->cctx, dst, cap, src, s->len, NULL);
        }
        if (LZ4F_isError(r))
            return lz4_failed(&j->err, r);
        s->out_off = pos;
        s->out_len = r;
        pos += r;
    }
    j->out_len = pos;
    return 0;
}

/* Where memcpy(dst, src, n) is fast: on this project's AMD machines, rep movsb (glibc's
 * memcpy for these sizes) runs at a tenth of its speed when dst is a few bytes past src
 * modulo 4 KiB, which is exactly where a 4-byte block header puts a copy of 64 KiB-aligned
 * data. Returns the place in [base, base + 4096) that is skew bytes before src modulo 4 KiB. */
static uint8_t *aligned_to(uint8_t *base, const void *src, size_t skew)
{
    return base + (((uintptr_t)src - skew - (uintptr_t)base) & 4095);
}

/* The content checksums: the job's PART data through sum_ctx, one block per call (each call
 * writes one uncompressed block, header and data, into a scratch place chosen so that the
 * copy is aligned with its source); a TAIL gets the end mark and the checksum. Called for
 * the jobs in stream order, by one worker at a time. */
static int sum_job(struct stream_lz4_pool *p, struct job *j)
{
    for (size_t i = 0; i < j->nsegs; i++) {
        struct seg *s = &j->segs[i];
        size_t r = 0;
        if (s->kind == SEG_PART && s->frame_first) {
            uint8_t hdr[LZ4F_HEADER_SIZE_MAX];
            LZ4F_preferences_t sp = prefs(s->content, 0, false, true, true);
            r = LZ4F_compressBegin(p->sum_ctx, hdr, sizeof hdr, &sp);
        }
        const uint8_t *src = j->in + s->off;
        for (size_t done = 0; s->kind == SEG_PART && !LZ4F_isError(r) && done < s->len;
             done += BLOCK) {
            size_t n = s->len - done < BLOCK ? s->len - done : BLOCK;
            uint8_t *dst = aligned_to(p->scratch, src + done, 4);
            r = LZ4F_uncompressedUpdate(p->sum_ctx, dst, p->scratch_cap - 4096, src + done, n,
                                        NULL);
        }
        if (s->kind == SEG_TAIL) {
            uint8_t tail[32];
            r = LZ4F_compressEnd(p->sum_ctx, tail, sizeof tail, NULL);
            if (!LZ4F_isError(r) && r != TAIL_LEN)
                return vb_error_set(&j->sum_err, "lz4 frame end of %zu bytes", r);
            if (!LZ4F_isError(r))
                memcpy(s->tail, tail, TAIL_LEN);
        }
        if (LZ4F_isError(r))
            return lz4_failed(&j->sum_err, r);
    }
    return 0;
}

/* Both tasks are done: the TAIL bytes go in place, and the output gets its adler32. */
static void finish_job(struct stream_lz4_pool *p, struct job *j)
{
    for (size_t i = 0; i < j->nsegs; i++)
        if (j->segs[i].kind == SEG_TAIL)
            memcpy(j->out + j->segs[i].out_off, j->segs[i].tail, TAIL_LEN);
    if (p->want_adler)
        j->adler = stream_adler32(STREAM_ADLER32_INIT, j->out, j->out_len);
}

/* Writes the finished jobs out, in order, through the emit callback (called with the lock
 * held, returns with it held). One worker at a time does it, usually the one that made the
 * job, while its output is still in its cache; it goes on with the jobs that other workers
 * finished meanwhile, so no worker waits for its turn to write. */
static void emit_ready(struct stream_lz4_pool *p)
{
    while (!p->emitting && p->emitted < p->submitted && p->jobs[p->emitted % p->njobs].ready) {
        struct job *j = &p->jobs[p->emitted % p->njobs];
        bool ok = j->state != JOB_FAILED && !p->emit_failed;
        p->emitting = true;
        pthread_mutex_unlock(&p->lock);
        int rc = 0;
        struct vb_error e = {0};
        if (ok && j->out_len)
            rc = p->emit(p->opaque, j->out, j->out_len, j->adler, &e);
        for (size_t i = 0; ok && rc == 0 && i < j->nsegs; i++) {
            const struct seg *s = &j->segs[i];
            if (s->in_frame)
                p->stored += s->out_len;
            if (s->frame_last) {
                rc = p->frame(p->opaque, p->stored, &e);
                p->stored = 0;
            }
        }
        pthread_mutex_lock(&p->lock);
        if (rc < 0 && !p->emit_failed) {
            p->emit_failed = true;
            p->emit_err = e;
        }
        if (!ok || rc < 0) {
            if (j->state != JOB_FAILED)
                j->err = p->emit_err;
            j->state = JOB_FAILED;
        } else {
            j->state = JOB_DONE;
        }
        p->emitted++;
        p->emitting = false;
        pthread_cond_signal(&p->finished); /* only the caller's thread waits on it */
    }
}

/* The job's checksum task, when the checksums of all jobs before it are done. */
static int sum_in_turn(struct stream_lz4_pool *p, struct job *j, uint64_t seq, int rc)
{
    pthread_mutex_lock(&p->lock);
    while (p->summed != seq && !p->stop)
        pthread_cond_wait(&p->turn, &p->lock);
    bool stopped = p->summed != seq;
    pthread_mutex_unlock(&p->lock);
    if (stopped)
        return vb_error_set(&j->sum_err, "lz4 compression stopped");
    if (rc == 0 && j->has_sum)
        rc = sum_job(p, j);
    pthread_mutex_lock(&p->lock);
    p->summed++;
    pthread_cond_broadcast(&p->turn);
    pthread_mutex_unlock(&p->lock);
    return rc;
}

/* Workers take the jobs in order and do both tasks of each: the checksums first if it is
 * the job's turn already, otherwise after compressing, while the data is still in this
 * core's cache (waiting for the turn if need be: the checksums are sequential, but take a
 * fraction of the compression's time). */
static void *worker_main(void *arg)
{
    struct worker *wk = arg;
    struct stream_lz4_pool *p = wk->pool;
    pthread_mutex_lock(&p->lock);
    while (!p->stop) {
        if (p->started == p->submitted) {
            pthread_cond_wait(&p->work, &p->lock);
            continue;
        }
        uint64_t seq = p->started++;
        struct job *j = &p->jobs[seq % p->njobs];
        bool first = p->summed == seq;
        pthread_mutex_unlock(&p->lock);
        int rc = first ? sum_in_turn(p, j, seq, 0) : 0;
        if (rc == 0)
            rc = compress_job(wk, j);
        if (!first)
            rc = sum_in_turn(p, j, seq, rc);
        if (rc == 0)
            finish_job(p, j);
        pthread_mutex_lock(&p->lock);
        if (rc < 0)
            j->state = JOB_FAILED;
        j->ready = true;
        emit_ready(p);
    }
    pthread_mutex_unlock(&p->lock);
    return NULL;
}

/* ---- the caller's side ---------------------------------------------------------------- */

static int fail(struct stream_lz4_pool *p, struct vb_error *err)
{
    if (!p->failed) {
        p->failed = true;
        p->err = *err;
    }
    return -1;
}

static int failed(struct stream_lz4_pool *p, struct vb_error *err)
{
    if (!p->failed)
        return 0;
    *err = p->err;
    return -1;
}

/* Frees the oldest submitted job once a worker wrote it out (with block, waits for that).
 * Returns 1 if it did, 0 if the job is still under way, -1 on error. */
static int retire_head(struct stream_lz4_pool *p, bool block, struct vb_error *err)
{
    struct job *j = &p->jobs[p->retired % p->njobs];
    pthread_mutex_lock(&p->lock);
    while (block && j->state != JOB_DONE && j->state != JOB_FAILED)
        pthread_cond_wait(&p->finished, &p->lock);
    enum job_state st = j->state;
    pthread_mutex_unlock(&p->lock);
    if (st == JOB_FAILED) {
        *err = j->err.msg[0] ? j->err : j->sum_err;
        return fail(p, err);
    }
    if (st != JOB_DONE)
        return 0;
    pthread_mutex_lock(&p->lock);
    j->state = JOB_FREE;
    pthread_mutex_unlock(&p->lock);
    p->retired++;
    return 1;
}

/* Hands the filling job to the workers, then emits whatever is finished. */
static int submit(struct stream_lz4_pool *p, struct vb_error *err)
{
    struct job *j = p->fill;
    p->fill = NULL;
    p->open = NULL;
    if (!j->nsegs) {
        j->state = JOB_FREE;
        return 0;
    }
    if (j->out_cap < j->out_need) {
        free(j->out);
        j->out = malloc(j->out_need);
        j->out_cap = j->out ? j->out_need : 0;
        if (!j->out) {
            j->state = JOB_FREE;
            vb_error_set(err, "out of memory for lz4 output");
            return fail(p, err);
        }
    }
    pthread_mutex_lock(&p->lock);
    j->state = JOB_QUEUED;
    j->ready = false;
    p->submitted++;
    pthread_cond_signal(&p->work);
    pthread_mutex_unlock(&p->lock);
    while (p->retired < p->submitted) {
        int r = retire_head(p, false, err);
        if (r <= 0)
            return r;
    }
    return 0;
}

/* Makes sure the filling job has room for bytes more input and segs more segments. */
static int ensure_fill(struct stream_lz4_pool *p, size_t bytes, size_t segs, struct vb_error *err)
{
    if (p->fill && p->fill->in_len + bytes <= p->in_cap && p->fill->nsegs + segs <= MAX_SEGS)
        return 0;
    if (p->fill && submit(p, err) < 0)
        return -1;
    while (p->submitted - p->retired >= p->njobs)
        if (retire_head(p, true, err) < 0)
            return -1;
    struct job *j = &p->jobs[p->submitted % p->njobs];
    j->state = JOB_FILLING;
    j->in_len = 0;
    j->nsegs = 0;
    j->out_need = 0;
    j->out_len = 0;
    j->has_sum = false;
    j->err.msg[0] = j->sum_err.msg[0] = '\0';
    p->fill = j;
    return 0;
}

static struct seg *add_seg(struct stream_lz4_pool *p, enum seg_kind kind, bool in_frame)
{
    struct job *j = p->fill;
    struct seg *s = &j->segs[j->nsegs++];
    *s = (struct seg){.kind = kind, .in_frame = in_frame, .off = j->in_len};
    return s;
}

static int add_raw(struct stream_lz4_pool *p, const void *buf, size_t len, bool in_frame,
                   bool frame_last, struct vb_error *err)
{
    if (ensure_fill(p, len, 1, err) < 0)
        return -1;
    struct job *j = p->fill;
    struct seg *last = j->nsegs ? &j->segs[j->nsegs - 1] : NULL;
    struct seg *s = last && last->kind == SEG_RAW && !last->in_frame && !in_frame
                        ? last
                        : add_seg(p, SEG_RAW, in_frame);
    s->frame_last = frame_last;
    memcpy(j->in + j->in_len, buf, len);
    j->in_len += len;
    s->len += len;
    j->out_need += len;
    return 0;
}

static int emit_direct(struct stream_lz4_pool *p, const void *buf, size_t len, struct vb_error *err)
{
    if (len && p->emit(p->opaque, buf, len,
                       p->want_adler ? stream_adler32(STREAM_ADLER32_INIT, buf, len) : 0, err) < 0)
        return fail(p, err);
    return 0;
}

int stream_lz4_pool_flush(struct stream_lz4_pool *p, struct vb_error *err)
{
    if (failed(p, err) < 0)
        return -1;
    if (p->in_frame)
        return vb_error_set(err, "internal error: lz4 flush inside a frame");
    if (p->fill && submit(p, err) < 0)
        return -1;
    while (p->retired < p->submitted)
        if (retire_head(p, true, err) < 0)
            return -1;
    return 0;
}

int stream_lz4_pool_raw(struct stream_lz4_pool *p, const void *buf, size_t len,
                        struct vb_error *err)
{
    if (failed(p, err) < 0)
        return -1;
    if (p->in_frame)
        return vb_error_set(err, "internal error: raw bytes inside an lz4 frame");
    if (!p->nworkers || (!p->fill && p->retired == p->submitted))
        return emit_direct(p, buf, len, err);
    if (len > RAW_MAX)
        return stream_lz4_pool_flush(p, err) < 0 ? -1 : emit_direct(p, buf, len, err);
    return add_raw(p, buf, len, false, false, err);
}

/* Opens the next PART segment of the frame: whole blocks up to the job size; the last one
 * also takes the frame's tail, so that no run starts with a short block. */
static int open_part(struct stream_lz4_pool *p, struct vb_error *err)
{
    for (int attempt = 0;; attempt++) {
        if (ensure_fill(p, 0, 2, err) < 0)
            return -1;
        size_t used = p->fill->in_len;
        size_t target = used < p->job_size ? (p->job_size - used) / BLOCK * BLOCK : 0;
        if (target < BLOCK)
            target = BLOCK;
        uint64_t left = p->content - p->done;
        if (left < (uint64_t)target + BLOCK)
            target = (size_t)left;
        if (used + target + RAW_RESERVE <= p->in_cap || attempt > 0) {
            p->open = add_seg(p, SEG_PART, true);
            p->open->frame_first = p->part_first;
            p->open->content = p->content;
            p->part_first = false;
            p->fill->has_sum = true;
            p->part_target = target;
            return 0;
        }
        if (submit(p, err) < 0)
            return -1;
    }
}

/* The PART segment is complete: its output bound is known, and a full job goes. */
static int close_part(struct stream_lz4_pool *p, struct vb_error *err)
{
    LZ4F_preferences_t pp = part_prefs(p->level);
    p->fill->out_need += LZ4F_compressBound(p->open->len, &pp);
    p->open = NULL;
    if (p->done < p->content)
        return submit(p, err);
    return 0;
}

int stream_lz4_pool_frame_begin(struct stream_lz4_pool *p, uint64_t content_size,
                                struct vb_error *err)
{
    if (failed(p, err) < 0)
        return -1;
    if (p->in_frame)
        return vb_error_set(err, "internal error: lz4 frame inside a frame");
    p->in_frame = true;
    p->content = content_size;
    p->done = 0;
    if (!p->nworkers) {
        size_t bound = stream_lz4_encoder_bound(SERIAL_STEP);
        if (!p->cbuf) {
            p->cbuf = malloc(bound);
            if (!p->cbuf)
                return vb_error_set(err, "out of memory");
            p->cbuf_cap = bound;
        }
        int64_t r = stream_lz4_encoder_begin(&p->enc, content_size, p->cbuf, p->cbuf_cap, err);
        p->stored = r > 0 ? (uint64_t)r : 0;
        return r < 0 ? -1 : emit_direct(p, p->cbuf, (size_t)r, err);
    }
    p->whole = content_size <= p->job_size;
    if (p->whole) {
        if (ensure_fill(p, (size_t)content_size + 64, 2, err) < 0)
            return -1;
        p->open = add_seg(p, SEG_WHOLE, true);
        return 0;
    }
    uint8_t hdr[LZ4F_HEADER_SIZE_MAX];
    LZ4F_preferences_t fp = frame_prefs(content_size, p->level);
    size_t r = LZ4F_compressBegin(p->hdr_ctx, hdr, sizeof hdr, &fp);
    if (LZ4F_isError(r)) {
        lz4_failed(err, r);
        return fail(p, err);
    }
    /* the first run should fill at least half a job */
    if (p->fill && p->fill->in_len > p->job_size / 2 && submit(p, err) < 0)
        return -1;
    if (add_raw(p, hdr, r, true, false, err) < 0)
        return -1;
    p->part_first = true;
    return open_part(p, err);
}

int stream_lz4_pool_frame_append(struct stream_lz4_pool *p, const void *buf, size_t len,
                                 struct vb_error *err)
{
    if (failed(p, err) < 0)
        return -1;
    if (!p->in_frame || len > p->content - p->done)
        return vb_error_set(err, "internal error: lz4 input outside its frame");
    const uint8_t *src = buf;
    if (!p->nworkers) {
        while (len) {
            size_t n = len < SERIAL_STEP ? len : SERIAL_STEP;
            int64_t r = stream_lz4_encoder_update(&p->enc, src, n, p->cbuf, p->cbuf_cap, err);
            if (r < 0 || emit_direct(p, p->cbuf, (size_t)r, err) < 0)
                return -1;
            p->stored += (uint64_t)r;
            p->done += n;
            src += n;
            len -= n;
        }
        return 0;
    }
    while (len) {
        if (!p->open && open_part(p, err) < 0)
            return -1;
        struct job *j = p->fill;
        if (!p->open->len) {
            /* start the segment's data where copying into it is fast (see aligned_to) */
            j->in_len += ((uintptr_t)src - (uintptr_t)(j->in + j->in_len)) & 63;
            p->open->off = j->in_len;
        }
        size_t n = len;
        if (!p->whole && n > p->part_target - p->open->len)
            n = p->part_target - p->open->len;
        memcpy(j->in + j->in_len, src, n);
        j->in_len += n;
        p->open->len += n;
        p->done += n;
        src += n;
        len -= n;
        if (!p->whole && p->open->len == p->part_target && close_part(p, err) < 0)
            return -1;
    }
    return 0;
}

int stream_lz4_pool_frame_end(struct stream_lz4_pool *p, struct vb_error *err)
{
    if (failed(p, err) < 0)
        return -1;
    if (!p->in_frame || p->done != p->content)
        return vb_error_set(err, "internal error: lz4 frame ended after %llu of its %llu bytes",
                            (unsigned long long)p->done, (unsigned long long)p->content);
    p->in_frame = false;
    if (!p->nworkers) {
        int64_t r = stream_lz4_encoder_end(&p->enc, p->cbuf, p->cbuf_cap, err);
        if (r < 0 || emit_direct(p, p->cbuf, (size_t)r, err) < 0)
            return -1;
        p->stored += (uint64_t)r;
        uint64_t stored = p->stored;
        p->stored = 0;
        return p->frame(p->opaque, stored, err) < 0 ? fail(p, err) : 0;
    }
    if (p->whole) {
        LZ4F_preferences_t fp = frame_prefs(p->open->len, p->level);
        p->fill->out_need += LZ4F_compressFrameBound(p->open->len, &fp);
        p->open->frame_last = true;
        p->open = NULL;
    } else {
        if (ensure_fill(p, 0, 1, err) < 0)
            return -1;
        struct seg *s = add_seg(p, SEG_TAIL, true);
        s->frame_last = true;
        p->fill->has_sum = true;
        p->fill->out_need += TAIL_LEN;
    }
    if (p->fill->in_len >= p->job_size)
        return submit(p, err);
    return 0;
}

struct stream_lz4_pool *stream_lz4_pool_new(int level, unsigned workers, size_t job_size,
                                            bool want_adler, stream_lz4_emit_fn emit,
                                            stream_lz4_frame_fn frame, void *opaque,
                                            struct vb_error *err)
{
    struct stream_lz4_pool *p = calloc(1, sizeof *p);
    if (!p) {
        vb_error_set(err, "out of memory");
        return NULL;
    }
    p->level = level;
    p->want_adler = want_adler;
    p->emit = emit;
    p->frame = frame;
    p->opaque = opaque;
    pthread_mutex_init(&p->lock, NULL);
    pthread_cond_init(&p->work, NULL);
    pthread_cond_init(&p->turn, NULL);
    pthread_cond_init(&p->finished, NULL);
    if (!workers) {
        if (stream_lz4_encoder_init(&p->enc, level, err) < 0)
            goto fail;
        return p;
    }
    p->job_size = job_size ? job_size / BLOCK * BLOCK : DEFAULT_JOB;
    if (p->job_size < 2 * BLOCK)
        p->job_size = 2 * BLOCK;
    p->in_cap = p->job_size + BLOCK + RAW_RESERVE;
    LZ4F_preferences_t sp = prefs(0, 0, false, true, true);
    p->scratch_cap = 4096 + LZ4F_compressBound(BLOCK, &sp);
    p->scratch = malloc(p->scratch_cap);
    p->njobs = 2 * (size_t)workers;
    p->jobs = calloc(p->njobs, sizeof *p->jobs);
    p->workers = calloc(workers, sizeof *p->workers);
    if (!p->scratch || !p->jobs || !p->workers ||
        LZ4F_isError(LZ4F_createCompressionContext(&p->hdr_ctx, LZ4F_VERSION)) ||
        LZ4F_isError(LZ4F_createCompressionContext(&p->sum_ctx, LZ4F_VERSION))) {
        vb_error_set(err, "out of memory for the lz4 encoders");
        goto fail;
    }
    for (size_t i = 0; i < p->njobs; i++)
        if (!(p->jobs[i].in = malloc(p->in_cap))) {
            vb_error_set(err, "out of memory for the lz4 encoders");
            goto fail;
        }
    for (unsigned i = 0; i < workers; i++) {
        struct worker *wk = &p->workers[i];
        wk->pool = p;
        if (LZ4F_isError(LZ4F_createCompressionContext(&wk->cctx, LZ4F_VERSION))) {
            vb_error_set(err, "out of memory for the lz4 encoders");
            goto fail;
        }
        if (pthread_create(&wk->thread, NULL, worker_main, wk) != 0) {
            LZ4F_freeCompressionContext(wk->cctx);
            wk->cctx = NULL;
            vb_error_set(err, "cannot start the lz4 compression threads");
            goto fail;
        }
        p->nthreads++;
    }
    p->nworkers = workers;
    return p;
fail:
    stream_lz4_pool_free(p);
    return NULL;
}

void stream_lz4_pool_free(struct stream_lz4_pool *p)
{
    if (!p)
        return;
    pthread_mutex_lock(&p->lock);
    p->stop = true;
    pthread_cond_broadcast(&p->work);
    pthread_cond_broadcast(&p->turn);
    pthread_mutex_unlock(&p->lock);
    for (unsigned i = 0; i < p->nthreads; i++)
        pthread_join(p->workers[i].thread, NULL);
    for (unsigned i = 0; p->workers && i < p->nthreads; i++)
        LZ4F_freeCompressionContext(p->workers[i].cctx);
    for (size_t i = 0; p->jobs && i < p->njobs; i++) {
        free(p->jobs[i].in);
        free(p->jobs[i].out);
    }
    free(p->jobs);
    free(p->workers);
    free(p->scratch);
    if (p->hdr_ctx)
        LZ4F_freeCompressionContext(p->hdr_ctx);
    if (p->sum_ctx)
        LZ4F_freeCompressionContext(p->sum_ctx);
    stream_lz4_encoder_free(&p->enc);
    free(p->cbuf);
    pthread_mutex_destroy(&p->lock);
    pthread_cond_destroy(&p->work);
    pthread_cond_destroy(&p->turn);
    pthread_cond_destroy(&p->finished);
    free(p);
}
