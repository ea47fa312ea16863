#include "lz4_reader.h"

#include <inttypes.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "stream_lz4.h"
#include "vector.h"

/* Window for walking block headers: a slice's headers are found with few large reads. */
#define HEADER_WINDOW (1024 * 1024)
/* A linked-block slice is decoded whole; refuse absurd sizes instead of allocating them. */
#define MAX_WHOLE_SLICE (256ull * 1024 * 1024)
#define WHOLE_SLICE     UINT32_MAX /* cache key of a whole decoded slice */

struct slice_layout {
    struct stream_lz4_layout lay; /* header flags and block size (blocks unused) */
    bool linked;                  /* decode the slice whole */
    size_t nblocks;
    uint64_t *data_off; /* file offset of each block's stored data */
    uint32_t *word;     /* each block's header: size | uncompressed << 31 */
};

struct lz4_reader {
    const struct stream_index *idx;
    struct block_cache *cache;
    _Atomic(struct slice_layout *) *layouts; /* per slice, built on first use */
};

void lz4_scratch_free(struct lz4_scratch *s)
{
    stream_reader_free(&s->rd);
    free(s->buf);
    s->buf = NULL;
    s->cap = 0;
}

static void *scratch(struct lz4_scratch *s, size_t need, struct vb_error *err)
{
    if (s->cap < need) {
        free(s->buf);
        s->buf = malloc(need);
        s->cap = s->buf ? need : 0;
        if (!s->buf)
            vb_error_set(err, "out of memory (%zu bytes)", need);
    }
    return s->buf;
}

struct lz4_reader *lz4_reader_new(const struct stream_index *idx, struct block_cache *cache,
                                  struct vb_error *err)
{
    struct lz4_reader *r = calloc(1, sizeof *r);
    if (r)
        r->layouts = calloc(idx->nslices ? idx->nslices : 1, sizeof *r->layouts);
    if (!r || !r->layouts) {
        free(r);
        vb_error_set(err, "out of memory");
        return NULL;
    }
    r->idx = idx;
    r->cache = cache;
    return r;
}

static void layout_free(struct slice_layout *l)
{
    if (!l)
        return;
    free(l->data_off);
    free(l->word);
    free(l);
}

void lz4_reader_free(struct lz4_reader *r)
{
    if (!r)
        return;
    for (size_t i = 0; i < r->idx->nslices; i++)
        layout_free(atomic_load(&r->layouts[i]));
    free(r->layouts);
    free(r);
}

static uint32_t le32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

/* Reads bytes [p, p+n) of the slice through the window, refilling it when needed. */
static const uint8_t *window_at(struct stream_source *src, const struct stream_slice *sl,
                                uint8_t *win, uint64_t *win_off, size_t *win_len, uint64_t p,
                                size_t n, struct vb_error *err)
{
    if (p + n > sl->stored) {
        vb_error_set(err, "lz4 frame truncated at byte %" PRIu64, p);
        return NULL;
    }
    if (p < *win_off || p + n > *win_off + *win_len) {
        size_t want = sl->stored - p < HEADER_WINDOW ? (size_t)(sl->stored - p) : HEADER_WINDOW;
        if (stream_source_read_exact(src, win, want, sl->file_offset + p, err) < 0)
            return NULL;
        *win_off = p;
        *win_len = want;
    }
    return win + (p - *win_off);
}

static struct slice_layout *build_layout(const struct lz4_reader *r, const struct stream_slice *sl,
                                         struct vb_error *err)
{
    struct stream_source *src = r->idx->source;
    struct slice_layout *l = calloc(1, sizeof *l);
    uint8_t *win = malloc(HEADER_WINDOW);
    uint64_t win_off = 0;
    size_t win_len = 0, cap = 0, word_cap = 0;
    if (!l || !win) {
        vb_error_set(err, "out of memory");
        goto fail;
    }
    size_t hdr_avail = sl->stored < 19 ? (size_t)sl->stored : 19;
    const uint8_t *h = window_at(src, sl, win, &win_off, &win_len, 0, hdr_avail, err);
    int hlen = h ? stream_lz4_parse_header(h, hdr_avail, &l->lay, err) : -1;
    if (hlen < 0)
        goto fail;
    if (l->lay.content_size != UINT64_MAX && l->lay.content_size != sl->raw_length) {
        vb_error_set(err, "lz4 frame says %" PRIu64 " bytes, the index expects %" PRIu64,
                     l->lay.content_size, sl->raw_length);
        goto fail;
    }
    if (!l->lay.independent) {
        if (sl->raw_length > MAX_WHOLE_SLICE) {
            vb_error_set(err, "lz4 frame of %" PRIu64 " bytes with linked blocks: too large",
                         sl->raw_length);
            goto fail;
        }
        l->linked = true;
        free(win);
        return l;
    }
    uint64_t p = (uint64_t)hlen, raw = 0;
    for (;;) {
        const uint8_t *w = window_at(src, sl, win, &win_off, &win_len, p, 4, err);
        if (!w)
            goto fail;
        uint32_t word = le32(w);
        if (word == 0) /* end mark */
            break;
        uint32_t size = word & 0x7fffffffu;
        if (size > l->lay.block_max || raw >= sl->raw_length) {
            vb_error_set(err, "lz4 block at byte %" PRIu64 " is corrupt or beyond the content", p);
            goto fail;
        }
        if (vb_vector_grow(&l->data_off, &cap, l->nblocks + 1, sizeof *l->data_off) < 0 ||
            vb_vector_grow(&l->word, &word_cap, l->nblocks + 1, sizeof *l->word) < 0) {
            vb_error_set(err, "out of memory");
            goto fail;
        }
        l->data_off[l->nblocks] = sl->file_offset + p + 4;
        l->word[l->nblocks++] = word;
        p += 4 + (uint64_t)size + (l->lay.block_checksum ? 4 : 0);
        raw += l->lay.block_max;
    }
    if (raw < sl->raw_length || raw - sl->raw_length >= l->lay.block_max) {
        vb_error_set(err, "lz4 frame has %zu blocks of %" PRIu32 " bytes for %" PRIu64 " bytes",
                     l->nblocks, l->lay.block_max, sl->raw_length);
        goto fail;
    }
    free(win);
    return l;
fail:
    free(win);
    layout_free(l);
    return NULL;
}

static struct slice_layout *get_layout(struct lz4_reader *r, size_t slice, struct vb_error *err)
{
    struct slice_layout *l = atomic_load(&r->layouts[slice]);
    if (l)
        return l;
    const struct stream_slice *sl = &r->idx->slices[slice];
    l = build_layout(r, sl, err);
    if (!l)
        return NULL;
    struct slice_layout *expected = NULL;
    /* two threads may build the same layout: the first one wins, the other is dropped */
    if (!atomic_compare_exchange_strong(&r->layouts[slice], &expected, l)) {
        layout_free(l);
        l = expected;
    }
    return l;
}

/* A slice with linked blocks, decoded whole into out by the thread's streaming reader: it
 * reads the compressed bytes a chunk at a time, so a connection never holds the compressed
 * slice (up to 32 MiB) besides the decoded one. */
static int decode_linked(struct lz4_reader *r, size_t extent, const struct stream_slice *sl,
                         void *out, struct lz4_scratch *s, struct vb_error *err)
{
    if (!s->rd.dctx && stream_reader_init(&s->rd, 0, err) < 0)
        return -1;
    return stream_reader_read(&s->rd, r->idx, extent, sl->raw_offset, (size_t)sl->raw_length, out,
                              err);
}

/* The length of block b of a slice (of the whole slice for linked blocks) once decoded. */
static size_t unit_len(const struct stream_slice *sl, const struct slice_layout *l, uint32_t b)
{
    if (l->linked)
        return (size_t)sl->raw_length;
    uint64_t first = (uint64_t)b * l->lay.block_max;
    return sl->raw_length - first < l->lay.block_max ? (size_t)(sl->raw_length - first)
                                                     : l->lay.block_max;
}

/* Decodes block b of a slice (or the whole slice) into out (unit_len bytes, and room for a
 * whole block). */
static int decode_unit(struct lz4_reader *r, size_t extent, const struct stream_slice *sl,
                       const struct slice_layout *l, uint32_t b, void *out, struct lz4_scratch *s,
                       struct vb_error *err)
{
    if (l->linked)
        return decode_linked(r, extent, sl, out, s, err);
    size_t out_len = unit_len(sl, l, b);
    struct stream_lz4_block blk = {.size = l->word[b] & 0x7fffffffu,
                                   .uncompressed = l->word[b] >> 31};
    void *c = scratch(s, blk.size ? blk.size : 1, err);
    int64_t got = -1;
    if (c && stream_source_read_exact(r->idx->source, c, blk.size, l->data_off[b], err) == 0)
        got = stream_lz4_decode_block(&l->lay, &blk, c, out, l->lay.block_max, err);
    if (got >= 0 && (size_t)got != out_len)
        got = vb_error_set(err, "lz4 block %" PRIu32 " decoded to %" PRId64 " bytes, not %zu", b,
                           got, out_len);
    if (got < 0)
        return vb_error_prefix(err, "offset %" PRIu64, l->data_off[b] - 4);
    return 0;
}

/* Decodes block b of a slice (or the whole slice) into a new cache entry, its room reserved
 * in the cache while it is decoded. */
static struct block_cache_entry *decode(struct lz4_reader *r, size_t extent, size_t slice,
                                        const struct slice_layout *l, uint32_t b,
                                        struct lz4_scratch *s, struct vb_error *err)
{
    const struct stream_slice *sl = &r->idx->slices[slice];
    size_t len = unit_len(sl, l, b);
    size_t room = l->linked ? len : l->lay.block_max;
    block_cache_reserve(r->cache, len);
    void *out = malloc(room ? room : 1);
    int rc =
        out ? decode_unit(r, extent, sl, l, b, out, s, err) : vb_error_set(err, "out of memory");
    block_cache_unreserve(r->cache, len);
    if (rc < 0) {
        free(out);
        return NULL;
    }
    struct block_cache_entry *e = block_cache_put(r->cache, r, (uint64_t)slice << 32 | b, out, len);
    if (!e)
        vb_error_set(err, "out of memory");
    return e;
}

#define DIRECT_RUN 128 /* whole blocks decoded from one read (8 MiB of content at most) */

/* Blocks b..e (inclusive) wanted whole: one read of their stored bytes (they are
 * contiguous in the file), decoded straight into dst. A sequential reader gains nothing
 * from caching blocks it will not read again, and this saves the copy and the churn. */
static int decode_direct(struct lz4_reader *r, const struct stream_slice *sl,
                         const struct slice_layout *l, uint32_t b, uint32_t e, uint8_t *dst,
                         struct lz4_scratch *s, struct vb_error *err)
{
    uint64_t start = l->data_off[b];
    uint64_t end = l->data_off[e] + (l->word[e] & 0x7fffffffu);
    uint8_t *c = scratch(s, (size_t)(end - start) ? (size_t)(end - start) : 1, err);
    if (!c || stream_source_read_exact(r->idx->source, c, (size_t)(end - start), start, err) < 0)
        return -1;
    for (uint32_t k = b; k <= e; k++) {
        struct stream_lz4_block blk = {.size = l->word[k] & 0x7fffffffu,
                                       .uncompressed = l->word[k] >> 31};
        uint64_t want = unit_len(sl, l, k);
        int64_t got = stream_lz4_decode_block(&l->lay, &blk, c + (l->data_off[k] - start), dst,
                                              (size_t)want, err);
        if (got >= 0 && (uint64_t)got != want)
            got = vb_error_set(err,
                               "lz4 block %" PRIu32 " decoded to %" PRId64 " bytes, not %" PRIu64,
                               k, got, want);
        if (got < 0)
            return vb_error_prefix(err, "offset %" PRIu64, l->data_off[k] - 4);
        dst += want;
    }
    return 0;
}

static int read_slice(struct lz4_reader *r, size_t extent, size_t slice, uint64_t from, uint64_t to,
                      uint8_t *dst, struct lz4_scratch *s, struct vb_error *err)
{
    struct slice_layout *l = get_layout(r, slice, err);
    if (!l)
        return -1;
    uint64_t unit = l->linked ? r->idx->slices[slice].raw_length : l->lay.block_max;
    const struct stream_slice *sl = &r->idx->slices[slice];
    for (uint64_t pos = from; pos < to;) {
        uint32_t b = l->linked ? WHOLE_SLICE : (uint32_t)(pos / unit);
        uint64_t base = l->linked ? 0 : (uint64_t)b * unit;
        if (!l->linked && pos == base && base + unit_len(sl, l, b) <= to) {
            uint32_t e = b;
            while (e + 1 < l->nblocks && e + 1 - b < DIRECT_RUN &&
                   (uint64_t)(e + 1) * unit + unit_len(sl, l, e + 1) <= to)
                e++;
            if (decode_direct(r, sl, l, b, e, dst + (pos - from), s, err) < 0)
                return -1;
            pos = (uint64_t)e * unit + unit_len(sl, l, e);
            continue;
        }
        struct block_cache_entry *e = block_cache_get(r->cache, r, (uint64_t)slice << 32 | b);
        if (!e && !(e = decode(r, extent, slice, l, b, s, err)))
            return -1;
        uint64_t end = base + block_cache_len(e) < to ? base + block_cache_len(e) : to;
        if (end <= pos) { /* cannot happen with a checked layout; never loop forever */
            block_cache_release(r->cache, e);
            return vb_error_set(err, "lz4 block %" PRIu32 " is short", b);
        }
        memcpy(dst + (pos - from), (const uint8_t *)block_cache_data(e) + (pos - base), end - pos);
        block_cache_release(r->cache, e);
        pos = end;
    }
    return 0;
}

int lz4_reader_read(struct lz4_reader *r, size_t e, uint64_t off, size_t len, void *dst,
                    struct lz4_scratch *s, struct vb_error *err)
{
    const struct stream_extent *x = &r->idx->extents[e];
    if (off > x->length || len > x->length - off)
        return vb_error_set(err, "%s: read beyond extent %" PRIu64 "+%" PRIu64,
                            r->idx->source->name, x->start, x->length);
    if (x->zero) {
        memset(dst, 0, len);
        return 0;
    }
    uint8_t *out = dst;
    for (uint32_t k = 0; k < x->slice_count; k++) {
        size_t slice = x->slice_first + k;
        const struct stream_slice *sl = &r->idx->slices[slice];
        if (off >= sl->raw_offset + sl->raw_length || off + len <= sl->raw_offset)
            continue;
        uint64_t from = off > sl->raw_offset ? off - sl->raw_offset : 0;
        uint64_t to = off + len - sl->raw_offset;
        if (to > sl->raw_length)
            to = sl->raw_length;
        if (read_slice(r, e, slice, from, to, out + (sl->raw_offset + from - off), s, err) < 0) {
            /* the streaming reader of linked slices names the file and offset itself */
            const struct slice_layout *l = atomic_load(&r->layouts[slice]);
            return l && l->linked ? -1
                                  : vb_error_prefix(err, "%s: slice at offset %" PRIu64,
                                                    r->idx->source->name, sl->file_offset);
        }
    }
    return 0;
}
