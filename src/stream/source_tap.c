#include "source_tap.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "checksum.h"
#include "stream_verify.h"
#include "vector.h"

struct tap_range {
    uint64_t off, len;
    uint32_t adler;
};

struct tap_source {
    struct stream_source base;
    struct stream_source *inner;
    pthread_mutex_t lock;
    struct tap_range *ranges;
    size_t n, cap; /* a range that cannot be recorded (no memory) is read again at the end */
};

static ssize_t tap_pread(struct stream_source *src, void *buf, size_t len, uint64_t off,
                         struct vb_error *err)
{
    struct tap_source *t = (struct tap_source *)src;
    ssize_t n = t->inner->ops->pread(t->inner, buf, len, off, err);
    if (n <= 0)
        return n;
    /* the checksum is taken here, on the reader's thread, while the bytes are in its cache */
    struct tap_range r = {off, (uint64_t)n, stream_adler32(STREAM_ADLER32_INIT, buf, (size_t)n)};
    pthread_mutex_lock(&t->lock);
    if (vb_vector_grow(&t->ranges, &t->cap, t->n + 1, sizeof *t->ranges) == 0)
        t->ranges[t->n++] = r;
    pthread_mutex_unlock(&t->lock);
    return n;
}

static void tap_free(struct stream_source *src)
{
    struct tap_source *t = (struct tap_source *)src;
    stream_source_free(t->inner);
    pthread_mutex_destroy(&t->lock);
    free(t->ranges);
    free(t);
}

static const struct stream_source_ops tap_ops = {
    .pread = tap_pread,
    .free = tap_free,
};

struct stream_source *stream_source_tap_new(struct stream_source *inner, struct vb_error *err)
{
    struct tap_source *t = calloc(1, sizeof *t);
    if (!t) {
        stream_source_free(inner);
        vb_error_set(err, "out of memory");
        return NULL;
    }
    t->base.ops = &tap_ops;
    t->base.name = inner->name; /* borrowed: the inner source lives as long */
    t->base.size = inner->size;
    t->inner = inner;
    pthread_mutex_init(&t->lock, NULL);
    return &t->base;
}

static int by_offset(const void *a, const void *b)
{
    const struct tap_range *x = a, *y = b;
    if (x->off != y->off)
        return (x->off > y->off) - (x->off < y->off);
    return (x->len < y->len) - (x->len > y->len); /* the longer first */
}

/* Folds [from, to) of the file, read now, into *a. */
static int fold_gap(struct tap_source *t, uint64_t from, uint64_t to, uint32_t *a, uint64_t *reread,
                    struct vb_error *err)
{
    if (to <= from)
        return 0;
    uint32_t s;
    if (stream_source_adler32_range(t->inner, from, to - from, 0, &s, err) < 0)
        return -1;
    *a = stream_adler32_combine(*a, s, to - from);
    *reread += to - from;
    return 0;
}

int stream_source_tap_adler32(struct stream_source *src, uint32_t *sum, uint64_t *reread,
                              struct vb_error *err)
{
    struct tap_source *t = (struct tap_source *)src;
    *reread = 0;
    if (src->ops != &tap_ops)
        return vb_error_set(err, "%s: internal error: not a checksumming source", src->name);
    if (t->n)
        qsort(t->ranges, t->n, sizeof *t->ranges, by_offset);
    uint32_t a = STREAM_ADLER32_INIT;
    uint64_t pos = 0;
    for (size_t i = 0; i < t->n; i++) {
        const struct tap_range *r = &t->ranges[i];
        if (r->off < pos || r->off + r->len > src->size)
            continue; /* overlaps what is folded in already: the rest of it is a gap */
        if (fold_gap(t, pos, r->off, &a, reread, err) < 0)
            return -1;
        a = stream_adler32_combine(a, r->adler, r->len);
        pos = r->off + r->len;
    }
    if (fold_gap(t, pos, src->size, &a, reread, err) < 0)
        return -1;
    *sum = a;
    return 0;
}
