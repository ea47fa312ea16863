#include "stream_writer.h"

#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "checksum.h"
#include "frame.h"
#include "stream_lz4_pool.h"
#include "vector.h"

/* One element of the compression trailer per DATA frame (virtbackup-stream(5), COMPRESSION). */
struct trailer_entry {
    size_t first; /* index into sizes */
    size_t count;
    bool chunked; /* {"total": [..]} form, for extents of 32 MiB or more */
};

struct stream_writer {
    struct stream_sink *sink;
    struct stream_meta meta;
    bool compressed;
    uint32_t adler;
    uint64_t bytes;
    uint64_t next_start; /* frames must ascend and not overlap */
    uint64_t data_total; /* uncompressed DATA bytes written */
    /* the DATA frame in progress */
    bool in_data;
    uint64_t data_length, data_done;
    /* trailer */
    uint64_t *sizes;
    size_t nsizes, sizes_cap;
    struct trailer_entry *entries;
    size_t nentries, entries_cap;
    /* compression: the LZ4 frame of each slice is built as data arrives, on worker threads
     * (stream_lz4_pool); once the pool exists, every byte goes through it, in order */
    struct stream_lz4_pool *pool;
    int lz4_workers; /* -1: stream_lz4_default_workers() */
    size_t frames_begun;
    bool slice_open;
    uint64_t slice_raw, slice_done;
    bool finished, failed;
};

static int emit(struct stream_writer *w, const void *buf, size_t len, struct vb_error *err)
{
    if (stream_sink_write(w->sink, buf, len, err) < 0) {
        w->failed = true;
        return -1;
    }
    if (!w->sink->computes_checksum)
        w->adler = stream_adler32(w->adler, buf, len);
    w->bytes += len;
    return 0;
}

/* emit() for a buffer whose adler32 is already known. */
static int emit_summed(struct stream_writer *w, const void *buf, size_t len, uint32_t adler,
                       struct vb_error *err)
{
    if (stream_sink_write(w->sink, buf, len, err) < 0) {
        w->failed = true;
        return -1;
    }
    if (!w->sink->computes_checksum)
        w->adler = stream_adler32_combine(w->adler, adler, len);
    w->bytes += len;
    return 0;
}

/* An error of the pool: the sink's errors already name the file. */
static int pool_failed(struct stream_writer *w, struct vb_error *err)
{
    if (!strstr(err->msg, w->sink->name))
        vb_error_prefix(err, "%s", w->sink->name);
    w->failed = true;
    return -1;
}

/* Stream bytes outside DATA payloads: behind the compressed data still in the pool. */
static int out(struct stream_writer *w, const void *buf, size_t len, struct vb_error *err)
{
    if (!w->pool)
        return emit(w, buf, len, err);
    return stream_lz4_pool_raw(w->pool, buf, len, err) < 0 ? pool_failed(w, err) : 0;
}

static int emit_frame(struct stream_writer *w, enum stream_frame_kind kind, uint64_t start,
                      uint64_t length, struct vb_error *err)
{
    char hdr[STREAM_FRAME_LEN];
    stream_frame_format(hdr, kind, start, length);
    return out(w, hdr, sizeof hdr, err);
}

struct stream_writer *stream_writer_new(struct stream_sink *sink, const struct stream_meta *meta,
                                        struct vb_error *err)
{
    struct stream_writer *w = calloc(1, sizeof *w);
    if (!w) {
        vb_error_set(err, "out of memory");
        stream_sink_free(sink);
        return NULL;
    }
    w->sink = sink;
    w->meta = *meta;
    w->compressed = meta->compressed != STREAM_META_COMPRESSED_FALSE;
    w->lz4_workers = -1;
    w->adler = STREAM_ADLER32_INIT;
    size_t jlen;
    char *json = stream_meta_to_json(meta, &jlen, err);
    if (!json)
        goto fail;
    int rc = emit_frame(w, STREAM_FRAME_META, 0, jlen, err);
    if (rc == 0)
        rc = emit(w, json, jlen, err);
    if (rc == 0)
        rc = emit(w, STREAM_TERM, STREAM_TERM_LEN, err);
    free(json);
    if (rc < 0)
        goto fail;
    return w;
fail:
    vb_error_prefix(err, "%s", sink->name);
    stream_writer_free(w);
    return NULL;
}

static int check_range(struct stream_writer *w, const char *what, uint64_t start, uint64_t length,
                       struct vb_error *err)
{
    if (w->finished || w->failed)
        return vb_error_set(err, "%s: stream already finished or failed", w->sink->name);
    if (w->in_data)
        return vb_error_set(err, "%s: %s frame inside an unfinished DATA frame", w->sink->name,
                            what);
    if (length == 0)
        return vb_error_set(err, "%s: empty %s frame at %" PRIu64, w->sink->name, what, start);
    if (start < w->next_start || start + length < start || start + length > w->meta.virtual_size)
        return vb_error_set(err,
                            "%s: %s frame %" PRIu64 "+%" PRIu64
                            " is out of order or beyond the disk size %" PRIu64,
                            w->sink->name, what, start, length, w->meta.virtual_size);
    return 0;
}

int stream_writer_zero(struct stream_writer *w, uint64_t start, uint64_t length,
                       struct vb_error *err)
{
    if (check_range(w, "ZERO", start, length, err) < 0)
        return -1;
    w->next_start = start + length;
    return emit_frame(w, STREAM_FRAME_ZERO, start, length, err);
}

int stream_writer_data_begin(struct stream_writer *w, uint64_t start, uint64_t length,
                             struct vb_error *err)
{
    if (check_range(w, "DATA", start, length, err) < 0)
        return -1;
    if (emit_frame(w, STREAM_FRAME_DATA, start, length, err) < 0)
        return -1;
    w->in_data = true;
    w->next_start = start + length;
    w->data_length = length;
    w->data_done = 0;
    if (w->compressed) {
        if (vb_vector_grow(&w->entries, &w->entries_cap, w->nentries + 1, sizeof *w->entries) < 0)
            return vb_error_set(err, "out of memory");
        w->entries[w->nentries++] = (struct trailer_entry){
            .first = w->frames_begun, .count = 0, .chunked = length >= STREAM_SLICE_SIZE};
    }
    return 0;
}

void stream_writer_set_compress_threads(struct stream_writer *w, unsigned n)
{
    w->lz4_workers = (int)n;
}

/* emit_summed() for the pool, which calls it on its worker threads (one at a time, and only
 * while the writer's own thread writes nothing): failures are reported through the pool. */
static int pool_emit(void *opaque, const void *buf, size_t len, uint32_t adler,
                     struct vb_error *err)
{
    struct stream_writer *w = opaque;
    if (stream_sink_write(w->sink, buf, len, err) < 0)
        return -1;
    if (!w->sink->computes_checksum)
        w->adler = stream_adler32_combine(w->adler, adler, len);
    w->bytes += len;
    return 0;
}

/* An LZ4 frame went out whole: its size, for the trailer (frames end in stream order). */
static int pool_frame(void *opaque, uint64_t stored, struct vb_error *err)
{
    struct stream_writer *w = opaque;
    if (vb_vector_grow(&w->sizes, &w->sizes_cap, w->nsizes + 1, sizeof *w->sizes) < 0)
        return vb_error_set(err, "out of memory");
    w->sizes[w->nsizes++] = stored;
    return 0;
}

/* Compressed DATA: each 32 MiB slice (or the whole frame below 32 MiB) is one LZ4 frame. */
static int append_compressed(struct stream_writer *w, const uint8_t *p, size_t len,
                             struct vb_error *err)
{
    if (!w->pool) {
        unsigned workers =
            w->lz4_workers < 0 ? stream_lz4_default_workers() : (unsigned)w->lz4_workers;
        w->pool = stream_lz4_pool_new(w->meta.compressed, workers, 0, !w->sink->computes_checksum,
                                      pool_emit, pool_frame, w, err);
        if (!w->pool)
            return pool_failed(w, err);
    }
    while (len) {
        if (!w->slice_open) {
            uint64_t left = w->data_length - w->data_done;
            w->slice_raw = left < STREAM_SLICE_SIZE ? left : STREAM_SLICE_SIZE;
            w->slice_done = 0;
            if (stream_lz4_pool_frame_begin(w->pool, w->slice_raw, err) < 0)
                return pool_failed(w, err);
            w->frames_begun++;
            w->entries[w->nentries - 1].count++;
            w->slice_open = true;
        }
        size_t n = len;
        if (n > w->slice_raw - w->slice_done)
            n = (size_t)(w->slice_raw - w->slice_done);
        if (stream_lz4_pool_frame_append(w->pool, p, n, err) < 0)
            return pool_failed(w, err);
        p += n;
        len -= n;
        w->slice_done += n;
        w->data_done += n;
        if (w->slice_done == w->slice_raw) {
            if (stream_lz4_pool_frame_end(w->pool, err) < 0)
                return pool_failed(w, err);
            w->slice_open = false;
        }
    }
    return 0;
}

int stream_writer_data_append(struct stream_writer *w, const void *buf, size_t len,
                              struct vb_error *err)
{
    if (!w->in_data)
        return vb_error_set(err, "%s: data outside a DATA frame", w->sink->name);
    if (len > w->data_length - w->data_done)
        return vb_error_set(err, "%s: more data than the DATA frame's length %" PRIu64,
                            w->sink->name, w->data_length);
    if (w->compressed)
        return append_compressed(w, buf, len, err);
    if (emit(w, buf, len, err) < 0)
        return -1;
    w->data_done += len;
    return 0;
}

int stream_writer_data_append_summed(struct stream_writer *w, const void *buf, size_t len,
                                     uint32_t adler, struct vb_error *err)
{
    if (w->compressed || !w->in_data || len > w->data_length - w->data_done)
        return stream_writer_data_append(w, buf, len, err);
    if (emit_summed(w, buf, len, adler, err) < 0)
        return -1;
    w->data_done += len;
    return 0;
}

int stream_writer_data_end(struct stream_writer *w, struct vb_error *err)
{
    if (!w->in_data)
        return vb_error_set(err, "%s: no DATA frame to end", w->sink->name);
    if (w->data_done != w->data_length)
        return vb_error_set(err, "%s: DATA frame got %" PRIu64 " of its %" PRIu64 " bytes",
                            w->sink->name, w->data_done, w->data_length);
    w->in_data = false;
    w->data_total += w->data_length;
    return out(w, STREAM_TERM, STREAM_TERM_LEN, err);
}

int stream_writer_data(struct stream_writer *w, uint64_t start, const void *buf, uint64_t length,
                       struct vb_error *err)
{
    if (stream_writer_data_begin(w, start, length, err) < 0)
        return -1;
    const uint8_t *p = buf;
    uint64_t done = 0;
    while (done < length) {
        uint64_t n = length - done;
        if (w->compressed && n > STREAM_SLICE_SIZE)
            n = STREAM_SLICE_SIZE;
        if (stream_writer_data_append(w, p + done, (size_t)n, err) < 0)
            return -1;
        done += n;
    }
    return stream_writer_data_end(w, err);
}

/* The trailer exactly as Python's json.dumps(list) writes it. */
static char *format_trailer(const struct stream_writer *w, size_t *len)
{
    char *out = NULL;
    size_t size = 0;
    FILE *f = open_memstream(&out, &size);
    if (!f)
        return NULL;
    fputc('[', f);
    for (size_t i = 0; i < w->nentries; i++) {
        const struct trailer_entry *e = &w->entries[i];
        if (i)
            fputs(", ", f);
        if (!e->chunked) {
            fprintf(f, "%" PRIu64, w->sizes[e->first]);
            continue;
        }
        uint64_t total = 0;
        for (size_t j = 0; j < e->count; j++)
            total += w->sizes[e->first + j];
        fprintf(f, "{\"%" PRIu64 "\": [", total);
        for (size_t j = 0; j < e->count; j++)
            fprintf(f, j ? ", %" PRIu64 : "%" PRIu64, w->sizes[e->first + j]);
        fputs("]}", f);
    }
    fputc(']', f);
    if (fclose(f) != 0) {
        free(out);
        return NULL;
    }
    *len = size;
    return out;
}

int stream_writer_finish(struct stream_writer *w, uint32_t *checksum, struct vb_error *err)
{
    if (w->finished || w->failed || w->in_data)
        return vb_error_set(err, "%s: cannot finish: stream %s", w->sink->name,
                            w->in_data ? "has an unfinished DATA frame" : "already ended");
    if (w->data_total != w->meta.data_size)
        return vb_error_set(err,
                            "%s: wrote %" PRIu64 " DATA bytes but META announced dataSize %" PRIu64,
                            w->sink->name, w->data_total, w->meta.data_size);
    if (w->pool && stream_lz4_pool_flush(w->pool, err) < 0)
        return pool_failed(w, err);
    if (w->compressed && w->nsizes != w->frames_begun)
        return vb_error_set(err, "%s: internal error: %zu of %zu lz4 frames written", w->sink->name,
                            w->nsizes, w->frames_begun);
    if (emit_frame(w, STREAM_FRAME_STOP, 0, 0, err) < 0)
        return -1;
    if (w->compressed) {
        size_t tlen;
        char *trailer = format_trailer(w, &tlen);
        if (!trailer)
            return vb_error_set(err, "out of memory");
        int rc = emit(w, trailer, tlen, err);
        free(trailer);
        if (rc < 0 || emit(w, STREAM_TERM, STREAM_TERM_LEN, err) < 0 ||
            emit_frame(w, STREAM_FRAME_COMP, 0, tlen, err) < 0)
            return -1;
    }
    if (w->sink->ops->commit(w->sink, true, w->adler, err) < 0) {
        w->failed = true;
        return -1;
    }
    w->finished = true;
    if (w->sink->computes_checksum && w->sink->ops->checksum)
        w->adler = w->sink->ops->checksum(w->sink);
    if (checksum)
        *checksum = w->adler;
    return 0;
}

uint64_t stream_writer_bytes(const struct stream_writer *w)
{
    return w->bytes;
}

void stream_writer_free(struct stream_writer *w)
{
    if (!w)
        return;
    stream_lz4_pool_free(w->pool); /* stops the workers before the sink goes */
    w->pool = NULL;
    stream_sink_free(w->sink);
    free(w->sizes);
    free(w->entries);
    free(w);
}
