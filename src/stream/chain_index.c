#include "chain_index.h"

#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "vector.h"

/* A sweep over all extent boundaries: at each point the newest file with an extent there
 * wins. Each file's extents are disjoint, so a file has at most one active extent. */
struct sweep_event {
    uint64_t pos;
    uint32_t file;
    uint32_t extent;
    bool begin;
};

static int by_pos(const void *a, const void *b)
{
    const struct sweep_event *x = a, *y = b;
    return (x->pos > y->pos) - (x->pos < y->pos);
}

static long highest_bit_below(const uint64_t *bits, long limit)
{
    for (long w = limit / 64; w >= 0; w--) {
        uint64_t word = bits[w];
        if (w == limit / 64)
            word &= (limit % 64 == 63) ? ~0ull : ((1ull << (limit % 64 + 1)) - 1);
        if (word)
            return w * 64 + 63 - __builtin_clzll(word);
    }
    return -1;
}

static int push_segment(struct chain_index *ci, size_t *cap, const struct chain_segment *s,
                        struct vb_error *err)
{
    if (ci->nsegs) {
        struct chain_segment *last = &ci->segs[ci->nsegs - 1];
        bool adjacent = last->start + last->length == s->start;
        if (adjacent && ((last->zero && s->zero) ||
                         (!s->zero && last->file == s->file && last->extent == s->extent))) {
            last->length += s->length;
            return 0;
        }
    }
    if (vb_vector_grow(&ci->segs, cap, ci->nsegs + 1, sizeof *ci->segs) < 0)
        return vb_error_set(err, "out of memory");
    ci->segs[ci->nsegs++] = *s;
    return 0;
}

struct chain_index *chain_index_build(struct stream_index **files, size_t nfiles,
                                      struct vb_error *err)
{
    if (nfiles == 0 || nfiles > UINT32_MAX) {
        vb_error_set(err, "a chain needs at least one file");
        return NULL;
    }
    struct chain_index *ci = calloc(1, sizeof *ci);
    size_t nevents = 0;
    for (size_t f = 0; f < nfiles; f++)
        nevents += 2 * files[f]->nextents;
    struct sweep_event *ev = malloc((nevents ? nevents : 1) * sizeof *ev);
    long *active = malloc(nfiles * sizeof *active);
    uint64_t *bits = calloc((nfiles + 63) / 64, sizeof *bits);
    size_t cap = 0;
    if (!ci || !ev || !active || !bits) {
        vb_error_set(err, "out of memory");
        goto fail;
    }
    ci->files = files;
    ci->nfiles = nfiles;
    ci->virtual_size = files[nfiles - 1]->meta.virtual_size;

    size_t k = 0;
    for (size_t f = 0; f < nfiles; f++) {
        active[f] = -1;
        for (size_t e = 0; e < files[f]->nextents; e++) {
            const struct stream_extent *x = &files[f]->extents[e];
            ev[k++] = (struct sweep_event){x->start, (uint32_t)f, (uint32_t)e, true};
            ev[k++] = (struct sweep_event){x->start + x->length, (uint32_t)f, (uint32_t)e, false};
        }
    }
    qsort(ev, nevents, sizeof *ev, by_pos);

    long top = -1;
    for (size_t i = 0; i < nevents;) {
        uint64_t pos = ev[i].pos;
        for (; i < nevents && ev[i].pos == pos; i++) {
            uint32_t f = ev[i].file;
            if (ev[i].begin) {
                active[f] = ev[i].extent;
                bits[f / 64] |= 1ull << (f % 64);
                if ((long)f > top)
                    top = f;
            } else if (active[f] == (long)ev[i].extent) {
                active[f] = -1;
                bits[f / 64] &= ~(1ull << (f % 64));
                if ((long)f == top)
                    top = highest_bit_below(bits, top);
            }
        }
        if (top < 0 || i == nevents || pos >= ci->virtual_size)
            continue;
        uint64_t next = ev[i].pos < ci->virtual_size ? ev[i].pos : ci->virtual_size;
        const struct stream_extent *x = &files[top]->extents[active[top]];
        struct chain_segment s = {.start = pos,
                                  .length = next - pos,
                                  .file = (uint32_t)top,
                                  .extent = (uint32_t)active[top],
                                  .zero = x->zero};
        if (s.length && push_segment(ci, &cap, &s, err) < 0)
            goto fail;
    }
    for (size_t s = 0; s < ci->nsegs; s++)
        if (!ci->segs[s].zero)
            ci->data_bytes += ci->segs[s].length;
    free(ev);
    free(active);
    free(bits);
    return ci;
fail:
    free(ev);
    free(active);
    free(bits);
    chain_index_free(ci);
    return NULL;
}

void chain_index_free(struct chain_index *ci)
{
    if (!ci)
        return;
    free(ci->segs);
    free(ci);
}

size_t chain_index_lookup(const struct chain_index *ci, uint64_t voff)
{
    size_t lo = 0, hi = ci->nsegs;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (ci->segs[mid].start + ci->segs[mid].length <= voff)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

int chain_index_read(const struct chain_index *ci, uint64_t off, size_t len, void *dst,
                     struct stream_read_buf *buf, struct vb_error *err)
{
    if (off > ci->virtual_size || len > ci->virtual_size - off)
        return vb_error_set(err, "read %" PRIu64 "+%zu beyond the disk size %" PRIu64, off, len,
                            ci->virtual_size);
    uint8_t *out = dst;
    uint64_t pos = off, end = off + len;
    for (size_t s = chain_index_lookup(ci, off); pos < end; s++) {
        if (s == ci->nsegs || ci->segs[s].start >= end) {
            memset(out + (pos - off), 0, end - pos);
            break;
        }
        const struct chain_segment *seg = &ci->segs[s];
        if (seg->start > pos) { /* undescribed gap */
            memset(out + (pos - off), 0, seg->start - pos);
            pos = seg->start;
        }
        uint64_t stop = seg->start + seg->length < end ? seg->start + seg->length : end;
        if (seg->zero) {
            memset(out + (pos - off), 0, stop - pos);
        } else {
            const struct stream_index *idx = ci->files[seg->file];
            const struct stream_extent *x = &idx->extents[seg->extent];
            if (stream_index_read(idx, seg->extent, pos - x->start, stop - pos, out + (pos - off),
                                  buf, err) < 0)
                return -1;
        }
        pos = stop;
    }
    return 0;
}
