#include "stream_reader.h"

#include <inttypes.h>
#include <lz4frame.h>
#include <stdlib.h>
#include <string.h>

/* Skipped bytes go here when the caller's buffer is smaller. */
#define SCRATCH (64 * 1024)

int stream_reader_init(struct stream_reader *r, size_t in_chunk, struct vb_error *err)
{
    memset(r, 0, sizeof *r);
    r->in_chunk = in_chunk ? in_chunk : STREAM_READER_IN_CHUNK;
    if (r->in_chunk < 64) /* the first read holds the whole frame header */
        r->in_chunk = 64;
    LZ4F_dctx *dctx;
    if (LZ4F_isError(LZ4F_createDecompressionContext(&dctx, LZ4F_VERSION)))
        return vb_error_set(err, "out of memory for the lz4 decoder");
    r->dctx = dctx;
    return 0;
}

void stream_reader_free(struct stream_reader *r)
{
    if (r->dctx)
        LZ4F_freeDecompressionContext(r->dctx);
    free(r->in);
    free(r->scratch);
    memset(r, 0, sizeof *r);
}

size_t stream_reader_footprint(size_t in_chunk, size_t block_max)
{
    /* LZ4F keeps one block of input and one of output plus 128 KiB of history. */
    return (in_chunk ? in_chunk : STREAM_READER_IN_CHUNK) + SCRATCH + 2 * block_max + 128 * 1024 +
           4096;
}

static void forget(struct stream_reader *r)
{
    r->idx = NULL;
    r->slice = NULL;
    r->in_len = r->in_pos = 0;
    r->started = false;
}

/* Reads the frame's next compressed chunk. Returns 1, 0 at the end of the frame, or -1. */
static int fill(struct stream_reader *r, struct vb_error *err)
{
    const struct stream_slice *sl = r->slice;
    uint64_t left = sl->stored - r->in_read;
    if (left == 0)
        return 0;
    size_t n = left < r->in_chunk ? (size_t)left : r->in_chunk;
    if (stream_source_read_exact(r->idx->source, r->in, n, sl->file_offset + r->in_read, err) < 0)
        return -1;
    r->in_read += n;
    r->in_len = n;
    r->in_pos = 0;
    return 1;
}

/* Offset within the frame of the next compressed byte to decode. */
static uint64_t frame_pos(const struct stream_reader *r)
{
    return r->in_read - (r->in_len - r->in_pos);
}

static int start_frame(struct stream_reader *r, const struct stream_index *idx,
                       const struct stream_slice *sl, struct vb_error *err)
{
    forget(r);
    if (!r->in && !(r->in = malloc(r->in_chunk)))
        return vb_error_set(err, "out of memory");
    LZ4F_resetDecompressionContext(r->dctx);
    r->idx = idx;
    r->slice = sl;
    r->in_read = 0;
    r->pos = sl->raw_offset;
    int f = fill(r, err);
    if (f <= 0)
        return f < 0 ? -1 : vb_error_set(err, "empty lz4 frame");
    LZ4F_frameInfo_t info;
    size_t hlen = r->in_len;
    size_t rc = LZ4F_getFrameInfo(r->dctx, &info, r->in, &hlen);
    if (LZ4F_isError(rc))
        return vb_error_set(err, "bad lz4 frame header: %s", LZ4F_getErrorName(rc));
    if (info.contentSize && info.contentSize != sl->raw_length)
        return vb_error_set(err, "lz4 frame holds %llu bytes, expected %" PRIu64,
                            (unsigned long long)info.contentSize, sl->raw_length);
    r->in_pos = hlen;
    r->started = true;
    return 0;
}

/* The frame's xxh32 checksums are skipped when the index says the caller checks the whole
 * file otherwise (stream_index.h, lz4_checksums). */
static const LZ4F_decompressOptions_t *decode_options(const struct stream_reader *r)
{
    static const LZ4F_decompressOptions_t skip = {.skipChecksums = 1};
    return r->idx && !r->idx->lz4_checksums ? &skip : NULL;
}

/* Refills the input when it is used up: the frame's stored bytes must not end first. */
static int need_input(struct stream_reader *r, struct vb_error *err)
{
    if (r->in_pos < r->in_len)
        return 0;
    int f = fill(r, err);
    if (f < 0)
        return -1;
    if (f == 0)
        return vb_error_set(err, "lz4 frame truncated after %" PRIu64 " bytes", r->slice->stored);
    return 0;
}

/* After the frame's last content byte: its end mark and content checksum, nothing more. */
static int finish_frame(struct stream_reader *r, bool ended, struct vb_error *err)
{
    const struct stream_slice *sl = r->slice;
    while (!ended) {
        if (need_input(r, err) < 0)
            return -1;
        uint8_t extra;
        size_t out_len = 1, in_len = r->in_len - r->in_pos;
        size_t rc = LZ4F_decompress(r->dctx, &extra, &out_len, r->in + r->in_pos, &in_len,
                                    decode_options(r));
        if (LZ4F_isError(rc))
            return vb_error_set(err, "lz4 data corrupt near byte %" PRIu64 " of the frame: %s",
                                frame_pos(r), LZ4F_getErrorName(rc));
        r->in_pos += in_len;
        if (out_len)
            return vb_error_set(err, "lz4 frame holds more than the expected %" PRIu64 " bytes",
                                sl->raw_length);
        ended = rc == 0;
    }
    if (r->in_pos != r->in_len || r->in_read != sl->stored)
        return vb_error_set(err, "%" PRIu64 " stray bytes after the lz4 frame",
                            sl->stored - frame_pos(r));
    r->started = false; /* done: a later read of this frame starts it again */
    return 0;
}

/* Decodes the frame's next n bytes into dst. */
static int decode(struct stream_reader *r, uint8_t *dst, size_t n, struct vb_error *err)
{
    const struct stream_slice *sl = r->slice;
    size_t done = 0;
    bool ended = false;
    while (done < n) {
        if (need_input(r, err) < 0)
            return -1;
        size_t out_len = n - done, in_len = r->in_len - r->in_pos;
        size_t rc = LZ4F_decompress(r->dctx, dst + done, &out_len, r->in + r->in_pos, &in_len,
                                    decode_options(r));
        if (LZ4F_isError(rc))
            return vb_error_set(err, "lz4 data corrupt near byte %" PRIu64 " of the frame: %s",
                                frame_pos(r), LZ4F_getErrorName(rc));
        r->in_pos += in_len;
        done += out_len;
        if (rc == 0) {
            ended = true;
            if (done < n)
                return vb_error_set(err,
                                    "lz4 frame decoded to %" PRIu64 " bytes, expected %" PRIu64,
                                    r->pos - sl->raw_offset + done, sl->raw_length);
        }
    }
    r->pos += n;
    if (r->pos == sl->raw_offset + sl->raw_length)
        return finish_frame(r, ended, err);
    if (ended)
        return vb_error_set(err, "lz4 frame decoded to %" PRIu64 " bytes, expected %" PRIu64,
                            r->pos - sl->raw_offset, sl->raw_length);
    return 0;
}

/* The slice of compressed extent x that holds raw offset off (slices ascend). */
static const struct stream_slice *slice_at(const struct stream_index *idx,
                                           const struct stream_extent *x, uint64_t off)
{
    size_t lo = 0, hi = x->slice_count;
    if (hi == 0)
        return NULL;
    while (hi - lo > 1) {
        size_t mid = (lo + hi) / 2;
        if (idx->slices[x->slice_first + mid].raw_offset <= off)
            lo = mid;
        else
            hi = mid;
    }
    return &idx->slices[x->slice_first + lo];
}

int stream_reader_read(struct stream_reader *r, const struct stream_index *idx, size_t e,
                       uint64_t off, size_t len, void *dst, struct vb_error *err)
{
    const struct stream_extent *x = &idx->extents[e];
    const char *name = idx->source->name;
    /* bounds, ZERO and plain extents: exactly what the index reader does (no scratch used) */
    if (off > x->length || len > x->length - off || x->zero || !idx->compressed)
        return stream_index_read(idx, e, off, len, dst, NULL, err);

    uint8_t *out = dst;
    while (len) {
        const struct stream_slice *sl = slice_at(idx, x, off);
        if (!sl || off < sl->raw_offset || off >= sl->raw_offset + sl->raw_length) {
            forget(r);
            return vb_error_set(err, "%s: extent at %" PRIu64 " has no LZ4 frame for byte %" PRIu64,
                                name, x->start, off);
        }
        int rc = 0;
        if (!(r->started && r->idx == idx && r->slice == sl && off >= r->pos))
            rc = start_frame(r, idx, sl, err);
        while (rc == 0 && r->pos < off) { /* skipped bytes: decoded and dropped */
            uint64_t skip = off - r->pos;
            uint8_t *to = out;
            size_t cap = len;
            if (cap < SCRATCH) {
                if (!r->scratch && !(r->scratch = malloc(SCRATCH))) {
                    rc = vb_error_set(err, "out of memory");
                    break;
                }
                to = r->scratch;
                cap = SCRATCH;
            }
            rc = decode(r, to, skip < cap ? (size_t)skip : cap, err);
        }
        uint64_t n = sl->raw_offset + sl->raw_length - off;
        if (n > len)
            n = len;
        if (rc == 0)
            rc = decode(r, out, (size_t)n, err);
        if (rc < 0) {
            forget(r);
            return vb_error_prefix(err, "%s: offset %" PRIu64, name, sl->file_offset);
        }
        out += n;
        off += n;
        len -= (size_t)n;
    }
    return 0;
}
