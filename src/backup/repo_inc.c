#include "repo_inc.h"

#include <stdlib.h>
#include <string.h>

#include "vector.h"

static void touch(struct repo_inc_plan *p, uint64_t first, uint64_t last)
{
    for (uint64_t k = first; k <= last && k < p->nchunks; k++) {
        if (!p->touched[k])
            p->ntouched++;
        p->touched[k] = 1;
    }
}

int repo_inc_plan_make(const struct extent_list *dirty, const struct extent_list *alloc,
                       uint64_t size, uint32_t cs, uint64_t base_size,
                       const unsigned char *base_missing, struct repo_inc_plan *p,
                       struct vb_error *err)
{
    memset(p, 0, sizeof *p);
    p->nchunks = (size + cs - 1) / cs;
    p->touched = calloc(p->nchunks ? p->nchunks : 1, 1);
    if (!p->touched)
        return vb_error_set(err, "out of memory for a disk of %llu chunks",
                            (unsigned long long)p->nchunks);
    for (size_t i = 0; i < dirty->n; i++) {
        const struct extent *x = &dirty->v[i];
        if (x->length)
            touch(p, x->start / cs, (x->start + x->length - 1) / cs);
    }
    /* a base chunk gone from the repository: read again, stored again */
    uint64_t base_chunks = (base_size + cs - 1) / cs;
    for (uint64_t k = 0; base_missing && k < base_chunks; k++)
        if (base_missing[k])
            touch(p, k, k);
    /* past the base's end the base has no digest; its short last chunk grew */
    uint64_t base_full = base_size / cs;
    if (size > base_size)
        touch(p, base_full, p->nchunks);
    /* a short last chunk is another chunk than the base's one of that number */
    if (size < base_size && size % cs)
        touch(p, size / cs, size / cs);
    for (size_t i = 0; i < alloc->n; i++) {
        const struct extent *x = &alloc->v[i];
        if (x->zero || !x->length)
            continue;
        uint64_t pos = x->start, end = x->start + x->length < size ? x->start + x->length : size;
        while (pos < end) {
            uint64_t k = pos / cs, stop = (k + 1) * cs < end ? (k + 1) * cs : end;
            if (!p->touched[k]) {
                pos = stop;
                continue;
            }
            /* runs of touched chunks make one extent (push merges what touches) */
            struct extent *last = p->read.n ? &p->read.v[p->read.n - 1] : NULL;
            if (last && last->start + last->length == pos && !last->synth)
                last->length += stop - pos;
            else if (vb_vector_push(&p->read, ((struct extent){pos, stop - pos, false, false})) < 0)
                return vb_error_set(err, "out of memory for the extent map");
            pos = stop;
        }
    }
    return 0;
}

void repo_inc_plan_free(struct repo_inc_plan *p)
{
    free(p->touched);
    extent_list_free(&p->read);
    memset(p, 0, sizeof *p);
}
