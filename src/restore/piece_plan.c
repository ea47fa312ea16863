#include "piece_plan.h"

#include <inttypes.h>
#include <stdlib.h>

#include "vector.h"

static int push(struct restore_work *w, size_t *cap, struct restore_piece p, struct vb_error *err)
{
    if (vb_vector_grow(&w->pieces, cap, w->n + 1, sizeof *w->pieces) < 0)
        return vb_error_set(err, "out of memory");
    w->pieces[w->n++] = p;
    w->bytes += p.len;
    return 0;
}

/* The slice of compressed extent x that holds relative offset rel (slices ascend). */
static const struct stream_slice *slice_at(const struct stream_index *idx,
                                           const struct stream_extent *x, uint64_t rel)
{
    size_t lo = 0, hi = x->slice_count;
    while (hi - lo > 1) {
        size_t mid = (lo + hi) / 2;
        if (idx->slices[x->slice_first + mid].raw_offset <= rel)
            lo = mid;
        else
            hi = mid;
    }
    return x->slice_count ? &idx->slices[x->slice_first + lo] : NULL;
}

int restore_work_build(const struct chain_index *ci, uint64_t max_piece, struct restore_work *w,
                       struct vb_error *err)
{
    *w = (struct restore_work){0};
    size_t cap = 0;
    if (max_piece == 0)
        max_piece = 1;
    /* Compressed slices already read for an earlier piece are not counted again. */
    const struct stream_slice *last_slice = NULL;
    for (size_t s = 0; s < ci->nsegs; s++) {
        const struct chain_segment *seg = &ci->segs[s];
        if (seg->zero)
            continue;
        const struct stream_index *idx = ci->files[seg->file];
        const struct stream_extent *x = &idx->extents[seg->extent];
        uint64_t end = seg->start + seg->length;
        for (uint64_t pos = seg->start; pos < end;) {
            uint64_t stop = end;
            uint32_t slice = RESTORE_NO_SLICE;
            if (idx->compressed) {
                const struct stream_slice *sl = slice_at(idx, x, pos - x->start);
                if (!sl)
                    return vb_error_set(err, "%s: extent at %" PRIu64 " has no LZ4 frames",
                                        idx->source->name, x->start);
                uint64_t slice_end = x->start + sl->raw_offset + sl->raw_length;
                if (slice_end < stop)
                    stop = slice_end;
                if (sl != last_slice)
                    w->stored += sl->stored;
                last_slice = sl;
                slice = (uint32_t)(sl - idx->slices);
            } else {
                if (stop - pos > max_piece)
                    stop = pos + max_piece;
                w->stored += stop - pos;
            }
            struct restore_piece p = {.voff = pos,
                                      .len = stop - pos,
                                      .file = seg->file,
                                      .extent = seg->extent,
                                      .slice = slice};
            if (push(w, &cap, p, err) < 0) {
                restore_work_free(w);
                return -1;
            }
            pos = stop;
        }
    }
    return 0;
}

void restore_work_free(struct restore_work *w)
{
    free(w->pieces);
    *w = (struct restore_work){0};
}
