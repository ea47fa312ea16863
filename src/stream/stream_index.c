#include "stream_index.h"

#include <inttypes.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "stream_lz4.h"
#include "vector.h"

/* Read-ahead over the frame headers: consecutive ZERO frames and small DATA frames are
 * served from one read instead of one pread each. */
#define HEADER_READAHEAD 4096

struct header_reader {
    struct stream_source *src;
    uint64_t buf_off;
    size_t buf_len;
    char buf[HEADER_READAHEAD];
};

static int read_at(struct header_reader *hr, uint64_t off, void *out, size_t n,
                   struct vb_error *err)
{
    if (off >= hr->buf_off && off + n <= hr->buf_off + hr->buf_len) {
        memcpy(out, hr->buf + (off - hr->buf_off), n);
        return 0;
    }
    if (n > HEADER_READAHEAD)
        return stream_source_read_exact(hr->src, out, n, off, err);
    ssize_t got = hr->src->ops->pread(hr->src, hr->buf, HEADER_READAHEAD, off, err);
    if (got < 0)
        return -1;
    hr->buf_off = off;
    hr->buf_len = (size_t)got;
    if ((size_t)got < n)
        return vb_error_set(err, "%s: offset %" PRIu64 ": truncated (file ends at %" PRIu64 ")",
                            hr->src->name, off, hr->src->size);
    memcpy(out, hr->buf, n);
    return 0;
}

static int read_header(struct header_reader *hr, uint64_t off, struct stream_frame *frame,
                       struct vb_error *err)
{
    char hdr[STREAM_FRAME_LEN];
    if (read_at(hr, off, hdr, sizeof hdr, err) < 0)
        return -1;
    if (stream_frame_parse(hdr, frame, err) < 0)
        return vb_error_prefix(err, "%s: offset %" PRIu64, hr->src->name, off);
    return 0;
}

static int expect_term(struct header_reader *hr, uint64_t off, const char *after,
                       struct vb_error *err)
{
    char term[STREAM_TERM_LEN];
    if (read_at(hr, off, term, sizeof term, err) < 0)
        return -1;
    if (memcmp(term, STREAM_TERM, STREAM_TERM_LEN) != 0)
        return vb_error_set(err, "%s: offset %" PRIu64 ": missing CRLF terminator after %s",
                            hr->src->name, off, after);
    return 0;
}

static int read_meta_at(struct header_reader *hr, struct stream_meta *meta, uint64_t *meta_end,
                        struct vb_error *err)
{
    struct stream_frame f;
    if (read_header(hr, 0, &f, err) < 0)
        return -1;
    if (f.kind != STREAM_FRAME_META || f.start != 0)
        return vb_error_set(err, "%s: offset 0: stream does not start with a META frame",
                            hr->src->name);
    if (f.length == 0 || f.length > STREAM_META_MAX_JSON)
        return vb_error_set(err, "%s: offset 0: implausible META length %" PRIu64, hr->src->name,
                            f.length);
    char *json = malloc(f.length);
    if (!json)
        return vb_error_set(err, "out of memory");
    int rc = read_at(hr, STREAM_FRAME_LEN, json, f.length, err);
    if (rc == 0 && (rc = stream_meta_parse(json, f.length, meta, err)) < 0)
        vb_error_prefix(err, "%s: offset %d", hr->src->name, STREAM_FRAME_LEN);
    free(json);
    if (rc < 0)
        return -1;
    if (expect_term(hr, STREAM_FRAME_LEN + f.length, "META", err) < 0)
        return -1;
    *meta_end = STREAM_FRAME_LEN + f.length + STREAM_TERM_LEN;
    return 0;
}

int stream_read_meta(struct stream_source *src, struct stream_meta *meta, uint64_t *meta_end,
                     struct vb_error *err)
{
    struct header_reader *hr = calloc(1, sizeof *hr);
    if (!hr)
        return vb_error_set(err, "out of memory");
    hr->src = src;
    uint64_t end;
    int rc = read_meta_at(hr, meta, &end, err);
    if (rc == 0 && meta_end)
        *meta_end = end;
    free(hr);
    return rc;
}

/* The compression trailer (virtbackup-stream(5), COMPRESSION): one entry per DATA frame, an integer
 * (one LZ4 frame) or {"<total>": [sizes...]} (one LZ4 frame per 32 MiB slice). */
struct trailer {
    size_t nentries;
    size_t *first; /* per entry: index into sizes */
    size_t *count;
    uint64_t *sizes;
    size_t nsizes;
};

static void trailer_free(struct trailer *t)
{
    free(t->first);
    free(t->count);
    free(t->sizes);
}

static int parse_trailer_json(const char *text, size_t len, struct trailer *t, const char *name,
                              uint64_t off, struct vb_error *err)
{
    json_error_t jerr;
    json_t *root = json_loadb(text, len, 0, &jerr);
    if (!root)
        return vb_error_set(err, "%s: offset %" PRIu64 ": compression trailer is not JSON: %s",
                            name, off, jerr.text);
    int rc = -1;
    if (!json_is_array(root)) {
        vb_error_set(err, "%s: offset %" PRIu64 ": compression trailer is not a JSON array", name,
                     off);
        goto out;
    }
    size_t n = json_array_size(root), total = 0;
    for (size_t i = 0; i < n; i++) {
        json_t *e = json_array_get(root, i);
        if (json_is_object(e) && json_object_size(e) == 1) {
            json_t *list = json_object_iter_value(json_object_iter(e));
            total += json_is_array(list) ? json_array_size(list) : 0;
        } else {
            total++;
        }
    }
    t->nentries = n;
    t->first = calloc(n ? n : 1, sizeof *t->first);
    t->count = calloc(n ? n : 1, sizeof *t->count);
    t->sizes = calloc(total ? total : 1, sizeof *t->sizes);
    if (!t->first || !t->count || !t->sizes) {
        vb_error_set(err, "out of memory");
        goto out;
    }
    for (size_t i = 0; i < n; i++) {
        json_t *e = json_array_get(root, i);
        t->first[i] = t->nsizes;
        if (json_is_integer(e) && json_integer_value(e) > 0) {
            t->sizes[t->nsizes++] = (uint64_t)json_integer_value(e);
            t->count[i] = 1;
            continue;
        }
        json_t *list = NULL;
        const char *key = NULL;
        if (json_is_object(e) && json_object_size(e) == 1) {
            void *it = json_object_iter(e);
            key = json_object_iter_key(it);
            list = json_object_iter_value(it);
        }
        if (!list || !json_is_array(list) || json_array_size(list) == 0) {
            vb_error_set(err, "%s: offset %" PRIu64 ": compression trailer entry %zu is malformed",
                         name, off, i);
            goto out;
        }
        char *endp;
        unsigned long long declared = strtoull(key, &endp, 10);
        uint64_t sum = 0;
        for (size_t j = 0; j < json_array_size(list); j++) {
            json_t *v = json_array_get(list, j);
            if (!json_is_integer(v) || json_integer_value(v) <= 0) {
                vb_error_set(err, "%s: offset %" PRIu64 ": compression trailer entry %zu: bad size",
                             name, off, i);
                goto out;
            }
            t->sizes[t->nsizes++] = (uint64_t)json_integer_value(v);
            sum += (uint64_t)json_integer_value(v);
        }
        t->count[i] = json_array_size(list);
        if (*key == '\0' || *endp != '\0' || declared != sum) {
            vb_error_set(err,
                         "%s: offset %" PRIu64 ": compression trailer entry %zu: total \"%s\" is "
                         "not the sum of its sizes (%" PRIu64 ")",
                         name, off, i, key, sum);
            goto out;
        }
    }
    rc = 0;
out:
    json_decref(root);
    return rc;
}

/* Finds the trailer at the end of a compressed stream; returns where the STOP frame ends. */
static int read_trailer(struct header_reader *hr, uint64_t meta_end, struct trailer *t,
                        uint64_t *frames_end, struct vb_error *err)
{
    struct stream_source *src = hr->src;
    const uint64_t minimum = meta_end + STREAM_FRAME_LEN + 2 + STREAM_TERM_LEN + STREAM_FRAME_LEN;
    if (src->size < minimum)
        return vb_error_set(err,
                            "%s: offset %" PRIu64 ": truncated: too short for a compressed "
                            "stream",
                            src->name, src->size);
    uint64_t comp_off = src->size - STREAM_FRAME_LEN;
    struct stream_frame f;
    if (read_header(hr, comp_off, &f, err) < 0)
        return vb_error_prefix(err, "compressed stream has no valid COMP frame at its end");
    if (f.kind != STREAM_FRAME_COMP || f.start != 0)
        return vb_error_set(err,
                            "%s: offset %" PRIu64 ": compressed stream does not end with a "
                            "COMP frame (truncated?)",
                            src->name, comp_off);
    if (f.length > comp_off - STREAM_TERM_LEN - meta_end - STREAM_FRAME_LEN)
        return vb_error_set(
            err, "%s: offset %" PRIu64 ": COMP frame length %" PRIu64 " exceeds the file",
            src->name, comp_off, f.length);
    uint64_t json_off = comp_off - STREAM_TERM_LEN - f.length;
    if (expect_term(hr, comp_off - STREAM_TERM_LEN, "the compression trailer", err) < 0)
        return -1;
    char *json = malloc(f.length ? f.length : 1);
    if (!json)
        return vb_error_set(err, "out of memory");
    int rc = stream_source_read_exact(src, json, f.length, json_off, err);
    if (rc == 0)
        rc = parse_trailer_json(json, f.length, t, src->name, json_off, err);
    free(json);
    *frames_end = json_off;
    return rc;
}

static int push_extent(struct stream_index *idx, size_t *cap, const struct stream_extent *e,
                       struct vb_error *err)
{
    if (vb_vector_grow(&idx->extents, cap, idx->nextents + 1, sizeof *idx->extents) < 0)
        return vb_error_set(err, "out of memory");
    idx->extents[idx->nextents++] = *e;
    return 0;
}

/* Slices of a compressed DATA frame from its trailer entry. */
static int add_slices(struct stream_index *idx, const struct trailer *t, size_t entry,
                      struct stream_extent *e, const char *name, uint64_t off, struct vb_error *err)
{
    size_t count = t->count[entry];
    uint64_t want = (e->length + STREAM_SLICE_SIZE - 1) / STREAM_SLICE_SIZE;
    if (count != 1 && count != want)
        return vb_error_set(err,
                            "%s: offset %" PRIu64 ": DATA frame of %" PRIu64
                            " bytes has %zu LZ4 frames in the trailer, expected %" PRIu64,
                            name, off, e->length, count, want);
    if (count == 1 && want != 1 && e->length > UINT32_MAX)
        return vb_error_set(err, "%s: offset %" PRIu64 ": DATA frame too large for one LZ4 frame",
                            name, off);
    e->slice_first = (uint32_t)idx->nslices;
    e->slice_count = (uint32_t)count;
    e->stored = 0;
    uint64_t raw = 0;
    for (size_t j = 0; j < count; j++) {
        uint64_t rlen = count == 1 ? e->length
                                   : (e->length - raw < STREAM_SLICE_SIZE ? e->length - raw
                                                                          : STREAM_SLICE_SIZE);
        idx->slices[idx->nslices++] = (struct stream_slice){
            .file_offset = e->file_offset + e->stored,
            .stored = t->sizes[t->first[entry] + j],
            .raw_offset = raw,
            .raw_length = rlen,
        };
        e->stored += t->sizes[t->first[entry] + j];
        raw += rlen;
    }
    return 0;
}

struct stream_index *stream_index_build(struct stream_source *src, struct vb_error *err)
{
    struct stream_index *idx = calloc(1, sizeof *idx);
    struct header_reader *hr = calloc(1, sizeof *hr);
    struct trailer t = {0};
    size_t cap = 0;
    if (!idx || !hr) {
        vb_error_set(err, "out of memory");
        goto fail;
    }
    idx->lz4_checksums = true;
    idx->source = src;
    hr->src = src;
    const char *name = src->name;
    uint64_t pos;
    if (read_meta_at(hr, &idx->meta, &pos, err) < 0)
        goto fail;
    idx->compressed = stream_meta_is_compressed(&idx->meta);
    uint64_t frames_end = src->size;
    if (idx->compressed) {
        if (read_trailer(hr, pos, &t, &frames_end, err) < 0)
            goto fail;
        idx->slices = calloc(t.nsizes ? t.nsizes : 1, sizeof *idx->slices);
        if (!idx->slices) {
            vb_error_set(err, "out of memory");
            goto fail;
        }
    }

    uint64_t prev_end = 0;
    size_t entry = 0;
    for (;;) {
        struct stream_frame f;
        if (pos + STREAM_FRAME_LEN > frames_end) {
            vb_error_set(err, "%s: offset %" PRIu64 ": truncated: stream ends without a STOP frame",
                         name, pos);
            goto fail;
        }
        if (read_header(hr, pos, &f, err) < 0)
            goto fail;
        if (f.kind == STREAM_FRAME_STOP) {
            if (f.start || f.length) {
                vb_error_set(err, "%s: offset %" PRIu64 ": STOP frame with nonzero fields", name,
                             pos);
                goto fail;
            }
            pos += STREAM_FRAME_LEN;
            break;
        }
        if (f.kind != STREAM_FRAME_DATA && f.kind != STREAM_FRAME_ZERO) {
            vb_error_set(err, "%s: offset %" PRIu64 ": unexpected %s frame", name, pos,
                         stream_frame_kind_name(f.kind));
            goto fail;
        }
        if (f.length == 0 || f.start < prev_end || f.start + f.length < f.start ||
            f.start + f.length > idx->meta.virtual_size) {
            vb_error_set(err,
                         "%s: offset %" PRIu64 ": %s frame %" PRIu64 "+%" PRIu64
                         " is empty, out of order or beyond the disk size %" PRIu64,
                         name, pos, stream_frame_kind_name(f.kind), f.start, f.length,
                         idx->meta.virtual_size);
            goto fail;
        }
        struct stream_extent e = {.start = f.start, .length = f.length};
        prev_end = f.start + f.length;
        if (f.kind == STREAM_FRAME_ZERO) {
            e.zero = true;
            idx->zero_frames++;
            idx->zero_bytes += f.length;
            pos += STREAM_FRAME_LEN;
        } else {
            e.file_offset = pos + STREAM_FRAME_LEN;
            if (idx->compressed) {
                if (entry >= t.nentries) {
                    vb_error_set(err,
                                 "%s: offset %" PRIu64 ": more DATA frames than the compression "
                                 "trailer lists (%zu)",
                                 name, pos, t.nentries);
                    goto fail;
                }
                if (add_slices(idx, &t, entry++, &e, name, pos, err) < 0)
                    goto fail;
            } else {
                e.stored = f.length;
            }
            uint64_t end = e.file_offset + e.stored;
            if (end < e.file_offset || end + STREAM_TERM_LEN + STREAM_FRAME_LEN > frames_end) {
                vb_error_set(err,
                             "%s: offset %" PRIu64 ": truncated: DATA payload of %" PRIu64
                             " bytes runs past the end of the stream",
                             name, e.file_offset, e.stored);
                goto fail;
            }
            if (expect_term(hr, end, "a DATA payload", err) < 0)
                goto fail;
            idx->data_frames++;
            idx->data_bytes += f.length;
            pos = end + STREAM_TERM_LEN;
        }
        if (push_extent(idx, &cap, &e, err) < 0)
            goto fail;
    }
    if (pos != frames_end) {
        vb_error_set(err,
                     "%s: offset %" PRIu64 ": %" PRIu64 " unexpected bytes after the STOP frame",
                     name, pos, frames_end - pos);
        goto fail;
    }
    if (idx->compressed && entry != t.nentries) {
        vb_error_set(err, "%s: compression trailer lists %zu DATA frames, the stream has %zu", name,
                     t.nentries, entry);
        goto fail;
    }
    if (idx->data_bytes != idx->meta.data_size) {
        vb_error_set(err, "%s: DATA frames hold %" PRIu64 " bytes, META dataSize says %" PRIu64,
                     name, idx->data_bytes, idx->meta.data_size);
        goto fail;
    }
    trailer_free(&t);
    free(hr);
    return idx;
fail:
    trailer_free(&t);
    free(hr);
    if (idx)
        stream_index_free(idx);
    else
        stream_source_free(src);
    return NULL;
}

struct stream_index *stream_index_open(const char *path, struct vb_error *err)
{
    struct stream_source *src = stream_source_file_open(path, err);
    if (!src)
        return NULL;
    return stream_index_build(src, err);
}

void stream_index_free(struct stream_index *idx)
{
    if (!idx)
        return;
    stream_source_free(idx->source);
    free(idx->extents);
    free(idx->slices);
    free(idx);
}

size_t stream_index_lookup(const struct stream_index *idx, uint64_t voff)
{
    size_t lo = 0, hi = idx->nextents;
    while (lo < hi) { /* first extent whose end is beyond voff */
        size_t mid = lo + (hi - lo) / 2;
        const struct stream_extent *e = &idx->extents[mid];
        if (e->start + e->length <= voff)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

void stream_read_buf_free(struct stream_read_buf *buf)
{
    free(buf->cbuf);
    free(buf->ubuf);
    memset(buf, 0, sizeof *buf);
}

static void *ensure(void **p, size_t *cap, size_t need, struct vb_error *err)
{
    if (*cap < need) {
        free(*p);
        *p = malloc(need);
        *cap = *p ? need : 0;
        if (!*p)
            vb_error_set(err, "out of memory (%zu bytes)", need);
    }
    return *p;
}

static uint32_t le32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

/* Decodes only the 64 KiB blocks of an independent-block LZ4 frame that overlap
 * [off, off+len) of its content. Returns 1 if done, 0 if the frame does not allow it. */
static int read_blocks(const uint8_t *frame, size_t n, uint64_t off, size_t len, uint8_t *dst,
                       struct stream_read_buf *buf, struct vb_error *err)
{
    struct stream_lz4_layout lay;
    int hlen = stream_lz4_parse_header(frame, n, &lay, err);
    if (hlen < 0)
        return -1;
    if (!lay.independent)
        return 0;
    if (!ensure(&buf->ubuf, &buf->ucap, lay.block_max, err))
        return -1;
    size_t p = (size_t)hlen;
    uint64_t raw = 0;
    while (raw < off + len) {
        if (p + 4 > n)
            return vb_error_set(err, "lz4 frame truncated at byte %zu", p);
        uint32_t word = le32(frame + p);
        if (word == 0)
            return vb_error_set(err, "lz4 frame ends before byte %" PRIu64 " of its content",
                                off + len);
        struct stream_lz4_block blk = {
            .offset = (uint32_t)(p + 4), .size = word & 0x7fffffffu, .uncompressed = word >> 31};
        size_t next = p + 4 + blk.size + (lay.block_checksum ? 4 : 0);
        if (blk.size > lay.block_max || next > n)
            return vb_error_set(err, "lz4 block at byte %zu is corrupt", p);
        if (raw + lay.block_max > off) {
            int64_t got = stream_lz4_decode_block(&lay, &blk, frame + blk.offset, buf->ubuf,
                                                  lay.block_max, err);
            if (got < 0)
                return vb_error_prefix(err, "lz4 block at byte %zu", p);
            uint64_t from = off > raw ? off - raw : 0;
            uint64_t to = off + len - raw < (uint64_t)got ? off + len - raw : (uint64_t)got;
            if (from < to)
                memcpy(dst + (raw + from - off), (uint8_t *)buf->ubuf + from, to - from);
            if ((uint64_t)got != lay.block_max && raw + (uint64_t)got < off + len)
                return vb_error_set(err, "lz4 block at byte %zu is short", p);
            raw += (uint64_t)got;
        } else {
            raw += lay.block_max;
        }
        p = next;
    }
    return 1;
}

int stream_index_read(const struct stream_index *idx, size_t e, uint64_t off, size_t len, void *dst,
                      struct stream_read_buf *buf, struct vb_error *err)
{
    const struct stream_extent *x = &idx->extents[e];
    const char *name = idx->source->name;
    if (off > x->length || len > x->length - off)
        return vb_error_set(err, "%s: read beyond extent %" PRIu64 "+%" PRIu64, name, x->start,
                            x->length);
    if (x->zero) {
        memset(dst, 0, len);
        return 0;
    }
    if (!idx->compressed)
        return stream_source_read_exact(idx->source, dst, len, x->file_offset + off, err);

    uint8_t *out = dst;
    for (uint32_t s = 0; s < x->slice_count && len; s++) {
        const struct stream_slice *sl = &idx->slices[x->slice_first + s];
        if (off >= sl->raw_offset + sl->raw_length || off + len <= sl->raw_offset)
            continue;
        if (sl->stored > SIZE_MAX / 2 || !ensure(&buf->cbuf, &buf->ccap, sl->stored, err))
            return -1;
        if (stream_source_read_exact(idx->source, buf->cbuf, sl->stored, sl->file_offset, err) < 0)
            return -1;
        uint64_t from = off > sl->raw_offset ? off - sl->raw_offset : 0;
        uint64_t to = off + len - sl->raw_offset;
        if (to > sl->raw_length)
            to = sl->raw_length;
        uint8_t *where = out + (sl->raw_offset + from - off);
        int rc;
        if (from == 0 && to == sl->raw_length) {
            rc = stream_lz4_decompress_opts(buf->cbuf, sl->stored, where, sl->raw_length,
                                            idx->lz4_checksums, err);
        } else {
            rc = read_blocks(buf->cbuf, sl->stored, from, to - from, where, buf, err);
            if (rc == 0) { /* linked blocks: decode the whole frame */
                if (!ensure(&buf->ubuf, &buf->ucap, sl->raw_length, err))
                    return -1;
                rc = stream_lz4_decompress_opts(buf->cbuf, sl->stored, buf->ubuf, sl->raw_length,
                                                idx->lz4_checksums, err);
                if (rc == 0)
                    memcpy(where, (uint8_t *)buf->ubuf + from, to - from);
            }
        }
        if (rc < 0)
            return vb_error_prefix(err, "%s: offset %" PRIu64, name, sl->file_offset);
    }
    return 0;
}
