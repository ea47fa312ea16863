/* The extent map of one export, computed completely before the stream starts: the META frame
 * comes first and its dataSize is the sum of all DATA lengths (virtbackup-stream(5),
 * METADATA). */
#include <errno.h>
#include <inttypes.h>
#include <libnbd.h>
#include <stdlib.h>
#include <string.h>

#include "backup.h"
#include "vector.h"

/* NBD block status requests are 32-bit; ask for 2 GiB at a time. */
#define STATUS_REQUEST (1ull << 31)

struct status_reply {
    const char *bitmap;
    struct ctx_entries alloc, dirty;
    struct vb_error *err;
};

static int push_entries(struct ctx_entries *c, const uint32_t *entries, size_t nr)
{
    /* two parallel arrays of one capacity: grown from the same count they grow alike */
    size_t len_cap = c->cap, flags_cap = c->cap;
    if (vb_vector_grow(&c->len, &len_cap, c->n + nr / 2, sizeof *c->len) < 0 ||
        vb_vector_grow(&c->flags, &flags_cap, c->n + nr / 2, sizeof *c->flags) < 0)
        return -1;
    c->cap = len_cap;
    for (size_t i = 0; i + 1 < nr; i += 2) {
        c->len[c->n] = entries[i];
        c->flags[c->n] = entries[i + 1];
        c->n++;
    }
    return 0;
}

static int status_cb(void *user_data, const char *metacontext, uint64_t offset, uint32_t *entries,
                     size_t nr_entries, int *error)
{
    (void)offset;
    struct status_reply *r = user_data;
    struct ctx_entries *c = NULL;
    if (strcmp(metacontext, LIBNBD_CONTEXT_BASE_ALLOCATION) == 0)
        c = &r->alloc;
    else if (r->bitmap && strcmp(metacontext, r->bitmap) == 0)
        c = &r->dirty;
    if (c && push_entries(c, entries, nr_entries) < 0) {
        *error = ENOMEM;
        return -1;
    }
    return 0;
}

static int push_extent(struct extent_list *l, uint64_t start, uint64_t length, bool zero,
                       bool synth)
{
    if (l->n) {
        struct extent *last = &l->v[l->n - 1];
        if (last->start + last->length == start && last->zero == zero && last->synth == synth) {
            last->length += length;
            return 0;
        }
    }
    return vb_vector_push(l, ((struct extent){start, length, zero, synth}));
}

static uint64_t covered(const struct ctx_entries *c)
{
    uint64_t s = 0;
    for (size_t i = 0; i < c->n; i++)
        s += c->len[i];
    return s;
}

/* Only NBD_STATE_ZERO guarantees zeroes on read; a hole without it is read as data. */
static bool is_zero(uint32_t flags)
{
    return flags & LIBNBD_STATE_ZERO;
}

int extents_add_window(struct extent_list *out, uint64_t offset, uint64_t end,
                       const struct ctx_entries *alloc, const struct ctx_entries *dirty,
                       bool compat_zeroes)
{
    size_t ia = 0, id = 0;
    uint64_t pa = offset, pd = offset; /* end of the current entry of each context */
    if (alloc)
        pa += alloc->len[0];
    if (dirty)
        pd += dirty->len[0];
    for (uint64_t pos = offset; pos < end;) {
        uint64_t stop = end;
        if (alloc && pa < stop)
            stop = pa;
        if (dirty && pd < stop)
            stop = pd;
        bool zero = alloc && is_zero(alloc->flags[ia]);
        bool in = !dirty || (dirty->flags[id] & 1);
        int prc = 0;
        if (in) {
            if (!zero)
                prc = push_extent(out, pos, stop - pos, false, false);
            else if (dirty && compat_zeroes)
                prc = push_extent(out, pos, stop - pos, false, true);
            else
                prc = push_extent(out, pos, stop - pos, true, false);
        }
        if (prc < 0)
            return -1;
        pos = stop;
        if (alloc && pos == pa && ++ia < alloc->n)
            pa += alloc->len[ia];
        if (dirty && pos == pd && ++id < dirty->n)
            pd += dirty->len[id];
    }
    return 0;
}

int extents_query(struct nbd_handle *nbd, uint64_t size, const char *bitmap, bool no_sparse,
                  bool compat_zeroes, struct extent_list *out, struct vb_error *err)
{
    memset(out, 0, sizeof *out);
    struct status_reply r = {.bitmap = bitmap, .err = err};
    bool want_alloc = !bitmap || !no_sparse;
    uint64_t offset = 0;
    int rc = -1;
    while (offset < size) {
        uint64_t count = size - offset < STATUS_REQUEST ? size - offset : STATUS_REQUEST;
        r.alloc.n = r.dirty.n = 0;
        if (nbd_block_status(nbd, count, offset,
                             (nbd_extent_callback){.callback = status_cb, .user_data = &r},
                             0) == -1) {
            vb_error_set(err, "NBD block status at offset %" PRIu64 ": %s", offset,
                         nbd_get_error());
            goto out;
        }
        /* advance by what every context we need has described */
        uint64_t end = offset + count;
        if (want_alloc) {
            uint64_t c = offset + covered(&r.alloc);
            end = c < end ? c : end;
        }
        if (bitmap) {
            uint64_t c = offset + covered(&r.dirty);
            end = c < end ? c : end;
        }
        if (end <= offset || (want_alloc && r.alloc.n == 0) || (bitmap && r.dirty.n == 0)) {
            vb_error_set(err, "NBD server described no extents at offset %" PRIu64 " (context %s)",
                         offset,
                         bitmap && r.dirty.n == 0 ? bitmap : LIBNBD_CONTEXT_BASE_ALLOCATION);
            goto out;
        }
        if (extents_add_window(out, offset, end, want_alloc ? &r.alloc : NULL,
                               bitmap ? &r.dirty : NULL, compat_zeroes) < 0) {
            vb_error_set(err, "out of memory for the extent map");
            goto out;
        }
        offset = end;
    }
    rc = 0;
out:
    free(r.alloc.len);
    free(r.alloc.flags);
    free(r.dirty.len);
    free(r.dirty.flags);
    if (rc < 0)
        extent_list_free(out);
    return rc;
}

void extent_list_free(struct extent_list *l)
{
    free(l->v);
    memset(l, 0, sizeof *l);
}
