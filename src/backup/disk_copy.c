/* Copies one disk: extent map, then reads in flight over several NBD connections (libnbd's
 * asynchronous API), handed in stream order to a writer thread that gives them to the disk's
 * sink: a stream file (framed), a raw image, or a repository's chunks. The
 * main thread only drives NBD (and checksums plain chunks as they arrive); with -z the
 * writer hands 64 KiB blocks to a pool of compression threads (stream_lz4_pool.h), so both
 * cores are busy and reads overlap compression and writes.
 *
 * Buffers form a ring of slots; chunk k always uses slot k % NSLOTS, so memory is bounded
 * (NSLOTS x request size) and the writer finds chunks in order without a queue. */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <libnbd.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "backup.h"
#include "checksum.h"
#include "debug_stall.h"
#include "frame.h"
#include "log.h"
#include "nbd_driver.h"
#include "nbd_target.h"
#include "progress.h"
#include "repo_inc.h"
#include "sink.h"
#include "snapshot_writer.h"
#include "stream_writer.h"
#include "util.h"

#define MAX_CONNS 4
/* qemu's NBD server handles at most 16 requests per connection */
#define MAX_PER_CONN 16

enum slot_state { SLOT_FREE, SLOT_READING, SLOT_DONE, SLOT_FAILED };

struct slot {
    uint8_t *buf;
    uint64_t offset;
    size_t length;
    int conn;
    enum slot_state state;
    int error;
    uint32_t adler; /* of the data, when the reader side computes it */
    bool merged;    /* holds several extents (and the holes between them) */
    struct copy *copy;
};

/* Walks the DATA chunks of the extent map in stream order. */
struct chunk_iter {
    const struct extent_list *ext;
    size_t e;
    uint64_t pos;
};

struct copy {
    struct disk_job *job;
    const struct backup_opts *opts;
    struct extent_list ext;
    const volatile sig_atomic_t *stop; /* set by the tool's signal handler */
    struct nbd_driver nbd;             /* the connections, the loop, the wake-up eventfd */
    bool df[MAX_CONNS];                /* the server takes NBD_CMD_FLAG_DF on this connection */
    size_t request;
    size_t nslots;
    struct slot *slots;
    pthread_mutex_t lock;
    pthread_cond_t cond;
    atomic_bool failed;   /* either side gave up */
    struct vb_error werr; /* the writer thread's error */
    struct progress *progress;
    bool sum_on_read; /* the NBD thread computes each chunk's adler32 (plain streams) */
    /* -t raw: adler32 of the image up to raw_pos (holes count as the zeroes they read as) */
    uint32_t raw_adler;
    uint64_t raw_pos;
    struct chunk_iter it; /* the NBD thread's next read: */
    bool have;            /* there is one, */
    uint64_t next_off;    /* here, */
    size_t next_len;      /* this long, */
    bool next_merged;     /* over several extents, */
    uint64_t seq;         /* into chunk seq's slot */
    uint64_t bytes_read;
    atomic_uint_least64_t bytes_written;
    /* the writer thread's sink (sink_ops below) and its state */
    const struct sink_ops *sink;
    struct stream_writer *sw;    /* stream file or zip entry */
    int raw_fd;                  /* -t raw: the .partial image, */
    char partial[4200];          /* its name, */
    bool raw_committed;          /* renamed into place */
    struct repo_disk_writer *rw; /* repository: the disk's chunk writer, */
    uint32_t cs;                 /* its chunk size, */
    uint8_t *cbuf;               /* the chunk being assembled (a buffer of the writer's), */
    uint64_t cur_chunk;          /* its number (when cur_valid), */
    size_t cur_read;             /* its bytes read from the disk, */
    size_t cur_defined;          /* and how many of its first bytes are set */
    bool cur_valid;
    uint64_t next_chunk; /* the first chunk not given to the writer yet */
    /* repository inc: which chunks are read; the others' digests come from job->base */
    const unsigned char *touched;
};

/* Holes up to this size between DATA extents are read along, so that a fragmented disk
 * (100,000 small extents) costs a few large requests instead of one request per extent. */
#define MERGE_GAP (64 * 1024)

/* The next read: from the current DATA position up to `request` bytes, taking following
 * DATA extents along across small holes. *merged: the chunk spans more than one extent (its
 * bytes are not one contiguous piece of the stream). */
static bool next_chunk(struct chunk_iter *it, size_t request, uint64_t *off, size_t *len,
                       bool *merged)
{
    const struct extent_list *l = it->ext;
    while (it->e < l->n) {
        const struct extent *x = &l->v[it->e];
        if (x->zero || x->synth || it->pos >= x->start + x->length) {
            it->e++;
            continue;
        }
        if (it->pos < x->start)
            it->pos = x->start;
        uint64_t start = it->pos, limit = start + request;
        uint64_t stop = x->start + x->length < limit ? x->start + x->length : limit;
        *merged = false;
        while (stop == x->start + x->length && stop < limit) {
            size_t k = it->e + 1;
            while (k < l->n && l->v[k].zero)
                k++;
            if (k == l->n || l->v[k].synth || l->v[k].start - stop > MERGE_GAP ||
                l->v[k].start >= limit)
                break;
            it->e = k;
            x = &l->v[k];
            stop = x->start + x->length < limit ? x->start + x->length : limit;
            *merged = true;
        }
        *off = start;
        *len = (size_t)(stop - start);
        it->pos = stop;
        return true;
    }
    return false;
}

/* ---- writer thread ---------------------------------------------------------------- */

/* Where a disk's data goes: a stream file or zip entry, a raw image, or a repository's
 * chunks. The writer thread walks the extent map once and calls the sink for each piece;
 * pieces come in ascending order of offset. */
struct sink_ops {
    int (*open)(struct copy *c, struct vb_error *err);
    /* a ZERO extent (NULL: nothing to do) */
    int (*zero)(struct copy *c, const struct extent *x, struct vb_error *err);
    /* around the pieces of a DATA extent (NULL: nothing to do) */
    int (*data_begin)(struct copy *c, const struct extent *x, struct vb_error *err);
    int (*data_end)(struct copy *c, const struct extent *x, struct vb_error *err);
    /* n bytes at pos, out of slot s (its adler32 is valid when sum_on_read and not merged) */
    int (*data)(struct copy *c, const struct slot *s, uint64_t pos, const uint8_t *data, size_t n,
                struct vb_error *err);
    /* a DATA extent of zeroes that was not read (NULL: nothing to do) */
    int (*synth)(struct copy *c, const struct extent *x, struct vb_error *err);
    /* after the last extent: commit */
    int (*finish)(struct copy *c, struct vb_error *err);
    /* frees the sink's state; what was not committed is removed */
    void (*close)(struct copy *c);
};

/* The raw image's checksum over the hole before pos: n zero bytes leave adler32's sum A
 * unchanged and add n * A to B, which is what adler32_combine computes for a block whose
 * own checksum is (A = 1, B = n mod 65521). */
static void raw_sum_zeroes(struct copy *c, uint64_t pos)
{
    if (pos <= c->raw_pos)
        return;
    uint64_t n = pos - c->raw_pos;
    uint32_t zeros = ((uint32_t)(n % 65521u) << 16) | 1u;
    c->raw_adler = stream_adler32_combine(c->raw_adler, zeros, n);
    c->raw_pos = pos;
}

/* Gives the sink DATA extent x from the chunks that hold it (a chunk may hold several
 * extents). */
static int writer_data_chunks(struct copy *c, const struct extent *x, uint64_t *seq,
                              struct vb_error *err)
{
    uint64_t pos = x->start, end = x->start + x->length;
    while (pos < end) {
        struct slot *s = &c->slots[*seq % c->nslots];
        pthread_mutex_lock(&c->lock);
        while (s->state == SLOT_READING || s->state == SLOT_FREE) {
            if (atomic_load(&c->failed)) {
                pthread_mutex_unlock(&c->lock);
                return vb_error_set(err, "copy aborted");
            }
            pthread_cond_wait(&c->cond, &c->lock);
        }
        pthread_mutex_unlock(&c->lock);
        if (s->state == SLOT_FAILED)
            return vb_error_set(err, "NBD read at offset %" PRIu64 " failed: %s", s->offset,
                                strerror(s->error));
        uint64_t chunk_end = s->offset + s->length;
        if (pos < s->offset || pos >= chunk_end)
            return vb_error_set(err, "internal error: chunk %" PRIu64 "+%zu does not hold %" PRIu64,
                                s->offset, s->length, pos);
        size_t n = (size_t)((end < chunk_end ? end : chunk_end) - pos);
        if (c->sink->data(c, s, pos, s->buf + (pos - s->offset), n, err) < 0)
            return -1;
        pos += n;
        atomic_fetch_add(&c->bytes_written, n);
        progress_add(c->progress, n);
        if (pos == chunk_end) {
            pthread_mutex_lock(&c->lock);
            s->state = SLOT_FREE;
            pthread_mutex_unlock(&c->lock);
            nbd_driver_wake(&c->nbd);
            (*seq)++;
        }
    }
    return 0;
}

/* -- stream file or zip entry (virtbackup-stream(5)) -- */

static int stream_open(struct copy *c, struct vb_error *err)
{
    struct disk_job *job = c->job;
    const char *base = vb_base_name(job->file);
    struct stream_sink *sink =
        job->zip ? vb_zip_entry_sink(job->zip, base, err) : stream_sink_file_open(job->file, err);
    if (!sink)
        return -1;
    c->sw = stream_writer_new(sink, &job->meta, err);
    if (!c->sw)
        return -1;
    if (c->opts->compress_threads >= 0)
        stream_writer_set_compress_threads(c->sw, (unsigned)c->opts->compress_threads);
    /* tests: the .partial file exists, the NBD connections are open (debug builds only) */
    VB_DEBUG_STALL(c->opts->debug_stall, c->stop);
    return 0;
}

static int stream_zero(struct copy *c, const struct extent *x, struct vb_error *err)
{
    return stream_writer_zero(c->sw, x->start, x->length, err);
}

static int stream_data_begin(struct copy *c, const struct extent *x, struct vb_error *err)
{
    return stream_writer_data_begin(c->sw, x->start, x->length, err);
}

static int stream_data_end(struct copy *c, const struct extent *x, struct vb_error *err)
{
    (void)x;
    return stream_writer_data_end(c->sw, err);
}

static int stream_data(struct copy *c, const struct slot *s, uint64_t pos, const uint8_t *data,
                       size_t n, struct vb_error *err)
{
    (void)pos;
    if (c->sum_on_read && !s->merged)
        return stream_writer_data_append_summed(c->sw, data, n, s->adler, err);
    return stream_writer_data_append(c->sw, data, n, err);
}

static int stream_synth(struct copy *c, const struct extent *x, struct vb_error *err)
{
    static const uint8_t zeroes[1 << 20];
    for (uint64_t done = 0; done < x->length;) {
        size_t n = x->length - done < sizeof zeroes ? (size_t)(x->length - done) : sizeof zeroes;
        if (stream_writer_data_append(c->sw, zeroes, n, err) < 0)
            return -1;
        done += n;
    }
    progress_add(c->progress, x->length);
    return 0;
}

static int stream_finish(struct copy *c, struct vb_error *err)
{
    if (stream_writer_finish(c->sw, &c->job->checksum, err) < 0)
        return -1;
    c->job->bytes_written = stream_writer_bytes(c->sw);
    return 0;
}

static void stream_close(struct copy *c)
{
    stream_writer_free(c->sw); /* removes the .partial file unless committed */
    c->sw = NULL;
}

static const struct sink_ops stream_sink_ops = {
    .open = stream_open,
    .zero = stream_zero,
    .data_begin = stream_data_begin,
    .data_end = stream_data_end,
    .data = stream_data,
    .synth = stream_synth,
    .finish = stream_finish,
    .close = stream_close,
};

/* -- -t raw: a plain sparse image of the disk, no stream headers (virtbackup-stream(5), RAW
 * OUTPUT) -- */

static int raw_open(struct copy *c, struct vb_error *err)
{
    struct disk_job *job = c->job;
    snprintf(c->partial, sizeof c->partial, "%s.partial", job->file);
    if (access(job->file, F_OK) == 0)
        return vb_error_set(err, "%s: already exists, refusing to overwrite", job->file);
    c->raw_fd = open(c->partial, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0640);
    if (c->raw_fd < 0)
        return vb_error_errno(err, "%s: create", c->partial);
    c->raw_adler = STREAM_ADLER32_INIT;
    c->raw_pos = 0;
    if (ftruncate(c->raw_fd, (off_t)job->meta.virtual_size) < 0)
        return vb_error_errno(err, "%s: truncate", c->partial);
    return 0;
}

static int raw_data(struct copy *c, const struct slot *s, uint64_t pos, const uint8_t *data,
                    size_t n, struct vb_error *err)
{
    (void)s;
    ssize_t wr = pwrite(c->raw_fd, data, n, (off_t)pos);
    if (wr != (ssize_t)n)
        return vb_error_errno(err, "%s: write", c->job->file);
    raw_sum_zeroes(c, pos);
    c->raw_adler = stream_adler32(c->raw_adler, data, n);
    c->raw_pos = pos + n;
    return 0;
}

static int raw_finish(struct copy *c, struct vb_error *err)
{
    struct disk_job *job = c->job;
    raw_sum_zeroes(c, job->meta.virtual_size);
    job->checksum = c->raw_adler;
    job->bytes_written = job->meta.data_size;
    /* a .data never exists without its .chksum (virtbackup-stream(5), COMMITTING A FILE) */
    if (stream_commit_file(c->raw_fd, job->file, true, job->checksum, err) < 0)
        return -1;
    c->raw_committed = true;
    return 0;
}

static void raw_close(struct copy *c)
{
    if (c->raw_fd >= 0)
        close(c->raw_fd);
    c->raw_fd = -1;
    if (!c->raw_committed && c->partial[0])
        unlink(c->partial);
}

static const struct sink_ops raw_sink_ops = {
    .open = raw_open,
    .data = raw_data,
    .finish = raw_finish,
    .close = raw_close,
};

/* -- a repository: the disk cut into chunks of the repository's chunk size
 * (virtbackup-repository(5)); bytes no extent covers are zeroes, and a chunk no extent
 * touches is marked all-zero without being read -- */

/* Bytes of chunk k (the last one is short when the size is not a multiple). */
static size_t repo_chunk_len(const struct copy *c, uint64_t k)
{
    uint64_t off = k * c->cs, size = c->job->meta.virtual_size;
    return size - off < c->cs ? (size_t)(size - off) : c->cs;
}

/* The chunks up to (not including) chunk `upto`: the one being assembled given whole, the
 * ones after it marked all-zero. */
static int repo_emit_until(struct copy *c, uint64_t upto, struct vb_error *err)
{
    while (c->next_chunk < upto) {
        uint64_t k = c->next_chunk;
        int rc;
        if (k == c->cur_chunk && c->cur_valid && c->cbuf) {
            size_t len = repo_chunk_len(c, k);
            if (c->cur_defined < len)
                memset(c->cbuf + c->cur_defined, 0, len - c->cur_defined);
            /* the writer owns the buffer from here, failed or not */
            rc = repo_disk_writer_submit(c->rw, k * c->cs, c->cbuf, len, c->cur_read, err);
            c->cbuf = NULL;
        } else if (c->touched && !c->touched[k]) {
            rc = repo_disk_writer_put_digest(c->rw, k * c->cs, &c->job->base->digests[k], err);
        } else {
            rc = repo_disk_writer_put_zero(c->rw, k * c->cs, err);
        }
        if (rc < 0)
            return vb_error_prefix(err, "%s", c->job->disk->target);
        c->next_chunk++;
    }
    return 0;
}

/* Worker threads of a disk's chunk writer: hashing and compressing are the repository's
 * bottleneck, so one per core (VIRTBACKUP_COMPRESS_THREADS overrides it). */
static unsigned repo_threads(const struct backup_opts *opts)
{
    if (opts->compress_threads > 0)
        return (unsigned)opts->compress_threads;
    long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
    return ncpu < 1 ? 1 : ncpu > 16 ? 16 : (unsigned)ncpu;
}

static int repo_open_sink(struct copy *c, struct vb_error *err)
{
    struct disk_job *job = c->job;
    c->rw = repo_disk_writer_new(job->repo, job->meta.virtual_size, repo_threads(c->opts), err);
    if (!c->rw)
        return vb_error_prefix(err, "%s", job->disk->target);
    c->cs = repo_disk_writer_chunk_size(c->rw);
    c->cbuf = NULL;
    c->next_chunk = 0;
    c->cur_valid = false;
    /* tests: the chunk writer runs, the NBD connections are open (debug builds only) */
    VB_DEBUG_STALL(c->opts->debug_stall, c->stop);
    return 0;
}

static int repo_data(struct copy *c, const struct slot *s, uint64_t pos, const uint8_t *data,
                     size_t n, struct vb_error *err)
{
    (void)s;
    while (n > 0) {
        uint64_t k = pos / c->cs;
        if (!c->cur_valid || k != c->cur_chunk) {
            if (repo_emit_until(c, k, err) < 0)
                return -1;
            /* assembled in place in a buffer of the writer's: no copy between */
            c->cbuf = repo_disk_writer_buffer(c->rw, err);
            if (!c->cbuf)
                return vb_error_prefix(err, "%s", c->job->disk->target);
            c->cur_read = 0;
            c->cur_defined = 0;
            c->cur_chunk = k;
            c->cur_valid = true;
        }
        size_t in = (size_t)(pos - k * c->cs);
        size_t take = c->cs - in < n ? c->cs - in : n;
        /* the holes between extents read as zeroes; bytes below cur_defined are set */
        if (in > c->cur_defined)
            memset(c->cbuf + c->cur_defined, 0, in - c->cur_defined);
        memcpy(c->cbuf + in, data, take);
        if (in + take > c->cur_defined)
            c->cur_defined = in + take;
        c->cur_read += take;
        pos += take;
        data += take;
        n -= take;
    }
    return 0;
}

static int repo_finish(struct copy *c, struct vb_error *err)
{
    struct disk_job *job = c->job;
    uint64_t nchunks = (job->meta.virtual_size + c->cs - 1) / c->cs;
    if (repo_emit_until(c, nchunks, err) < 0)
        return -1;
    struct repo_disk_stats st;
    int rc = repo_disk_writer_finish(c->rw, &job->index, &st, err); /* close frees it */
    if (rc < 0)
        return vb_error_prefix(err, "%s", job->disk->target);
    job->bytes_new = st.bytes_new;
    job->bytes_stored = st.bytes_stored;
    job->bytes_written = st.bytes_stored;
    job->chunks_copied = st.chunks_copied;
    vb_info("%s: %" PRIu64 " chunks, %" PRIu64 " all-zero, %" PRIu64
            " copied from the base, %" PRIu64 " new (%" PRIu64 " bytes, %" PRIu64 " stored)",
            job->disk->target, st.chunks, st.chunks_zero, st.chunks_copied, st.chunks_new,
            st.bytes_new, st.bytes_stored);
    return 0;
}

static void repo_close_sink(struct copy *c)
{
    if (c->rw)
        repo_disk_writer_release(c->rw, c->cbuf);
    c->cbuf = NULL;
    repo_disk_writer_free(c->rw); /* chunks put stay: unreferenced until a snapshot names them */
    c->rw = NULL;
}

static const struct sink_ops repo_sink_ops = {
    .open = repo_open_sink,
    .data = repo_data,
    .finish = repo_finish,
    .close = repo_close_sink,
};

/* The one loop: every extent in order through the disk's sink. */
static int writer_run(struct copy *c, struct vb_error *err)
{
    const struct sink_ops *ops = c->sink;
    int rc = ops->open(c, err);
    uint64_t seq = 0;
    for (size_t i = 0; rc == 0 && i < c->ext.n; i++) {
        const struct extent *x = &c->ext.v[i];
        if (x->zero) {
            rc = ops->zero ? ops->zero(c, x, err) : 0;
            continue;
        }
        if (ops->data_begin)
            rc = ops->data_begin(c, x, err);
        if (rc == 0 && x->synth)
            rc = ops->synth ? ops->synth(c, x, err) : 0;
        else if (rc == 0)
            rc = writer_data_chunks(c, x, &seq, err);
        if (rc == 0 && ops->data_end)
            rc = ops->data_end(c, x, err);
    }
    if (rc == 0 && *c->stop)
        rc = vb_error_set(err, "interrupted");
    if (rc == 0)
        rc = ops->finish(c, err);
    ops->close(c);
    return rc;
}

static void *writer_main(void *arg)
{
    struct copy *c = arg;
    int rc = writer_run(c, &c->werr);
    if (rc < 0) {
        atomic_store(&c->failed, true);
        pthread_mutex_lock(&c->lock);
        pthread_cond_broadcast(&c->cond);
        pthread_mutex_unlock(&c->lock);
        nbd_driver_wake(&c->nbd);
    }
    return (void *)(intptr_t)rc;
}

/* ---- NBD side --------------------------------------------------------------------- */

/* The data of a read with NBD_CMD_FLAG_DF arrives in one chunk, already in the buffer. */
static int read_chunk(void *user_data, const void *subbuf, size_t count, uint64_t offset,
                      unsigned status, int *error)
{
    (void)user_data, (void)subbuf, (void)count, (void)offset, (void)status, (void)error;
    return 0;
}

static int read_done(void *user_data, int *error)
{
    struct slot *s = user_data;
    struct copy *c = s->copy;
    /* checksum here, on the NBD thread: the writer thread is busy with the writes */
    if (!*error && c->sum_on_read && !s->merged)
        s->adler = stream_adler32(STREAM_ADLER32_INIT, s->buf, s->length);
    pthread_mutex_lock(&c->lock);
    if (*error) {
        s->error = *error;
        s->state = SLOT_FAILED;
    } else {
        s->state = SLOT_DONE;
    }
    pthread_cond_broadcast(&c->cond);
    pthread_mutex_unlock(&c->lock);
    return 1; /* retire the command */
}

/* A read of len bytes at off into s->buf; libnbd calls read_done when it completes. */
static int64_t start_read(struct copy *c, int conn, struct slot *s, size_t len, uint64_t off)
{
    nbd_completion_callback done = {.callback = read_done, .user_data = s};
    struct nbd_handle *h = c->nbd.conn[conn];
    if (!c->df[conn])
        return nbd_aio_pread(h, s->buf, len, off, done, 0);
    return nbd_aio_pread_structured(h, s->buf, len, off,
                                    (nbd_chunk_callback){.callback = read_chunk}, done,
                                    LIBNBD_CMD_FLAG_DF);
}

static int connect_all(struct copy *c, struct vb_error *err)
{
    struct disk_job *job = c->job;
    /* one connection per core, 2 to 4: on small hosts more connections only compete with
     * qemu's NBD server for the same cores (bench/README.md) */
    long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
    int conns = ncpu < 2 ? 2 : ncpu > MAX_CONNS ? MAX_CONNS : (int)ncpu;
    int want = c->opts->connections > 0 ? c->opts->connections : conns;
    if (want > MAX_CONNS)
        want = MAX_CONNS;
    const struct vb_nbd_target target = {.socket = job->socket,
                                         .host = job->nbd_host,
                                         .port = job->nbd_port,
                                         .tls_dir = job->tls_dir};
    for (int i = 0; i < want; i++) {
        struct nbd_handle *h = nbd_create();
        if (!h)
            return vb_error_set(err, "%s: nbd_create: %s", job->disk->target, nbd_get_error());
        if (nbd_driver_add(&c->nbd, h, err) < 0) {
            nbd_close(h);
            return -1;
        }
        /* every buffer is either filled by a successful read or the copy fails: libnbd need
         * not zero it first (0.35 s of CPU per 4 GB) */
        nbd_set_pread_initialize(h, false);
        if (nbd_set_export_name(h, job->export_name) == -1 ||
            (i == 0 && (!job->bitmap || !c->opts->no_sparse_detection || job->base) &&
             nbd_add_meta_context(h, LIBNBD_CONTEXT_BASE_ALLOCATION) == -1) ||
            (i == 0 && job->bitmap && nbd_add_meta_context(h, job->bitmap) == -1) ||
            vb_nbd_target_connect(h, &target) == -1) {
            char where[600];
            return vb_error_set(err, "%s: NBD connection to %s: %s%s", job->disk->target,
                                vb_nbd_target_describe(&target, where, sizeof where),
                                nbd_get_error(), vb_nbd_target_hint(&target, nbd_get_error()));
        }
        /* Don't fragment: without it qemu answers a read that spans holes with one reply
         * chunk per extent (a block status lookup each on its side, three recv() calls each
         * on ours); a merged read over 4 KiB extents cost 5 s per 100,000 extents. Holes
         * read along are zeroes either way. */
        c->df[i] = nbd_can_df(h) == 1;
        if (i == 0) {
            if (job->bitmap && nbd_can_meta_context(h, job->bitmap) != 1)
                return vb_error_set(err, "%s: the NBD export does not offer the dirty bitmap %s",
                                    job->disk->target, job->bitmap);
            if (nbd_can_multi_conn(h) != 1)
                break; /* one connection only: several would not be coherent */
        }
    }
    return 0;
}

/* nbd_driver's submit: reads into free slots, in chunk order, while a connection has room. */
static int submit_reads(void *opaque, struct nbd_driver *d, struct vb_error *err)
{
    struct copy *c = opaque;
    if (atomic_load(&c->failed)) { /* the writer gave up: its error is the copy's */
        *err = c->werr;
        return -1;
    }
    int limit = (int)((c->nslots + (size_t)d->nconns - 1) / (size_t)d->nconns);
    if (limit > MAX_PER_CONN)
        limit = MAX_PER_CONN;
    while (c->have) {
        struct slot *s = &c->slots[c->seq % c->nslots];
        pthread_mutex_lock(&c->lock);
        int conn = s->state == SLOT_FREE ? nbd_driver_pick(d, limit) : -1;
        if (conn >= 0)
            s->state = SLOT_READING;
        pthread_mutex_unlock(&c->lock);
        if (conn < 0)
            break;
        s->offset = c->next_off;
        s->length = c->next_len;
        s->merged = c->next_merged;
        if (start_read(c, conn, s, s->length, s->offset) == -1) {
            pthread_mutex_lock(&c->lock);
            s->state = SLOT_FAILED;
            s->error = EIO;
            pthread_mutex_unlock(&c->lock);
            return vb_error_set(err, "%s: NBD read at offset %" PRIu64 ": %s", c->job->disk->target,
                                s->offset, nbd_get_error());
        }
        c->bytes_read += s->length;
        c->seq++;
        c->have = next_chunk(&c->it, c->request, &c->next_off, &c->next_len, &c->next_merged);
    }
    return c->have ? NBD_DRIVER_MORE : NBD_DRIVER_DONE;
}

/* A repository inc's extent map: the dirty ranges say which chunks are read, the allocation
 * which of their bytes (repo_inc.h); the map holds the DATA of the touched chunks. */
static int repo_inc_extents(struct copy *c, uint64_t size, struct repo_inc_plan *plan,
                            struct vb_error *err)
{
    struct disk_job *job = c->job;
    struct extent_list dirty = {0}, alloc = {0};
    int rc = extents_query(c->nbd.conn[0], size, job->bitmap, false, false, &dirty, err);
    if (rc == 0)
        rc = extents_query(c->nbd.conn[0], size, NULL, false, false, &alloc, err);
    if (rc == 0)
        rc = repo_inc_plan_make(&dirty, &alloc, size, repo_chunk_size(job->repo),
                                job->base->virtual_size, job->base_missing, plan, err);
    extent_list_free(&dirty);
    extent_list_free(&alloc);
    if (rc < 0)
        return vb_error_prefix(err, "%s", job->disk->target);
    c->ext = plan->read;
    plan->read = (struct extent_list){0}; /* c->ext owns it */
    vb_info("%s: %" PRIu64 " of %" PRIu64 " chunks changed since the base", job->disk->target,
            plan->ntouched, plan->nchunks);
    return 0;
}

/* Tells the writer thread that the copy failed, so that it stops waiting for chunks. */
static void abort_writer(struct copy *c)
{
    atomic_store(&c->failed, true);
    pthread_mutex_lock(&c->lock);
    pthread_cond_broadcast(&c->cond);
    pthread_mutex_unlock(&c->lock);
}

int disk_copy_run(struct disk_job *job, const struct backup_opts *opts,
                  const volatile sig_atomic_t *stop, struct vb_error *err)
{
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    struct copy *c = job->file ? calloc(1, sizeof *c) : NULL;
    if (!c)
        return vb_error_set(err, "out of memory");
    c->job = job;
    c->opts = opts;
    c->raw_fd = -1;
    c->sink = job->repo ? &repo_sink_ops : job->raw_output ? &raw_sink_ops : &stream_sink_ops;
    c->stop = stop;
    pthread_mutex_init(&c->lock, NULL);
    pthread_cond_init(&c->cond, NULL);
    /* 16 x 512 KiB in flight: as fast as nbdcopy on these machines (bench/), and memory
     * stays small (8 MiB of buffers) */
    c->request = opts->request_size ? opts->request_size : 512 * 1024;
    c->nslots = opts->requests ? opts->requests : 16;
    int rc = -1;
    pthread_t writer;
    bool writer_started = false;
    struct repo_inc_plan plan = {0};

    if (nbd_driver_init(&c->nbd, job->disk->target, stop, err) < 0)
        goto out;
    if (connect_all(c, err) < 0)
        goto out;
    int64_t size = nbd_get_size(c->nbd.conn[0]);
    if (size < 0) {
        vb_error_set(err, "%s: NBD size: %s", job->disk->target, nbd_get_error());
        goto out;
    }
    if (job->repo && job->base) {
        if (repo_inc_extents(c, (uint64_t)size, &plan, err) < 0)
            goto out;
        c->touched = plan.touched;
    } else if (extents_query(c->nbd.conn[0], (uint64_t)size, job->bitmap,
                             opts->no_sparse_detection && job->bitmap, opts->compat_zeroes, &c->ext,
                             err) < 0) {
        vb_error_prefix(err, "%s", job->disk->target);
        goto out;
    }
    job->meta.virtual_size = (uint64_t)size;
    job->meta.data_size = 0;
    for (size_t i = 0; i < c->ext.n; i++)
        if (!c->ext.v[i].zero)
            job->meta.data_size += c->ext.v[i].length;
    job->extents = c->ext.n;
    vb_info("%s: %zu extents, %" PRIu64 " bytes of data to save of %" PRIu64, job->disk->target,
            c->ext.n, job->meta.data_size, (uint64_t)size);

    c->sum_on_read =
        !job->raw_output && !job->repo && job->meta.compressed == STREAM_META_COMPRESSED_FALSE;
    c->progress = progress_new(job->disk->target, job->meta.data_size,
                               progress_mode_for_stderr(opts->noprogress || opts->quiet));
    c->slots = calloc(c->nslots, sizeof *c->slots);
    if (!c->slots) {
        vb_error_set(err, "out of memory");
        goto out;
    }
    for (size_t i = 0; i < c->nslots; i++) {
        c->slots[i].copy = c;
        if (posix_memalign((void **)&c->slots[i].buf, 4096, c->request) != 0) {
            vb_error_set(err, "out of memory for read buffers");
            goto out;
        }
    }
    c->it = (struct chunk_iter){.ext = &c->ext};
    c->have = next_chunk(&c->it, c->request, &c->next_off, &c->next_len, &c->next_merged);
    if (pthread_create(&writer, NULL, writer_main, c) != 0) {
        vb_error_set(err, "cannot start the writer thread");
        goto out;
    }
    writer_started = true;
    static const struct nbd_driver_ops read_ops = {.submit = submit_reads};
    int prc = nbd_driver_run(&c->nbd, &read_ops, c, err);
    if (prc < 0)
        abort_writer(c);
    void *wret;
    pthread_join(writer, &wret);
    writer_started = false;
    if ((intptr_t)wret != 0) {
        if (prc == 0 || strcmp(err->msg, "interrupted") == 0)
            *err = c->werr;
        goto out;
    }
    if (prc < 0)
        goto out;
    job->bytes_read = c->bytes_read;
    rc = 0;
out:
    if (writer_started) {
        abort_writer(c);
        pthread_join(writer, NULL);
    }
    /* closing a connection retires its reads: only then may their buffers go */
    nbd_driver_close(&c->nbd, rc == 0);
    if (c->slots)
        for (size_t i = 0; i < c->nslots; i++)
            free(c->slots[i].buf);
    free(c->slots);
    extent_list_free(&c->ext);
    repo_inc_plan_free(&plan);
    if (c->progress) {
        progress_finish(c->progress, rc == 0);
        progress_free(c->progress);
    }
    pthread_mutex_destroy(&c->lock);
    pthread_cond_destroy(&c->cond);
    free(c);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    job->seconds = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
    return rc;
}
