#include <stdlib.h>
#include <string.h>

#include "stats.h"
#include "vector.h"

long stats_vm(struct stats *s, const char *uuid, const char *name)
{
    for (size_t i = 0; i < s->nvms; i++)
        if (strcmp(s->vms[i].uuid, uuid) == 0) {
            /* the newest snapshot's name wins: snapshots come oldest first */
            char *n = strdup(name);
            if (!n)
                return -1;
            free(s->vms[i].name);
            s->vms[i].name = n;
            return (long)i;
        }
    if (vb_vector_grow(&s->vms, &s->vms_cap, s->nvms + 1, sizeof *s->vms) < 0)
        return -1;
    struct stats_vm *v = &s->vms[s->nvms];
    memset(v, 0, sizeof *v);
    strncpy(v->uuid, uuid, REPO_UUID_LEN);
    if (!(v->name = strdup(name)))
        return -1;
    return (long)s->nvms++;
}

void stats_snapshot(struct stats *s, long vm, uint64_t logical)
{
    s->vms[vm].snapshots++;
    s->vms[vm].logical += logical;
}

static size_t slot_of(const struct stats *s, const repo_digest *d)
{
    size_t h;
    memcpy(&h, d->b, sizeof h);
    return h & (s->table_size - 1);
}

static int grow_table(struct stats *s)
{
    size_t size = s->table_size ? 2 * s->table_size : 1024;
    size_t *t = calloc(size, sizeof *t);
    if (!t)
        return -1;
    free(s->table);
    s->table = t;
    s->table_size = size;
    for (size_t i = 0; i < s->nchunks; i++) {
        size_t k = slot_of(s, &s->chunks[i].digest);
        while (s->table[k])
            k = (k + 1) & (size - 1);
        s->table[k] = i + 1;
    }
    return 0;
}

/* The chunk's slot in the table: the one holding it, or the empty one where it goes. */
static size_t find_slot(const struct stats *s, const repo_digest *d)
{
    size_t k = slot_of(s, d);
    while (s->table[k] && !repo_digest_equal(&s->chunks[s->table[k] - 1].digest, d))
        k = (k + 1) & (s->table_size - 1);
    return k;
}

int stats_chunk_ref(struct stats *s, long vm, const repo_digest *d, uint32_t len)
{
    if (2 * (s->nchunks + 1) > s->table_size && grow_table(s) < 0)
        return -1;
    struct stats_vm *v = &s->vms[vm];
    v->nonzero += len;
    size_t k = find_slot(s, d);
    if (!s->table[k]) {
        if (vb_vector_grow(&s->chunks, &s->chunks_cap, s->nchunks + 1, sizeof *s->chunks) < 0)
            return -1;
        s->chunks[s->nchunks] =
            (struct stats_chunk){.digest = *d, .len = len, .owner = vm, .last_vm = -1};
        s->table[k] = ++s->nchunks;
    }
    struct stats_chunk *c = &s->chunks[s->table[k] - 1];
    if (c->owner != vm)
        c->owner = STATS_SHARED;
    if (c->last_vm != vm) {
        c->last_vm = vm;
        v->chunks++;
    }
    return 0;
}

void stats_chunk_object(struct stats *s, const repo_digest *d, uint64_t size)
{
    s->t.chunk_objects++;
    s->t.chunk_bytes += size;
    size_t k = s->table_size ? find_slot(s, d) : 0;
    if (!s->table_size || !s->table[k]) {
        s->t.chunks_unused++;
        s->t.unused_bytes += size;
        return;
    }
    struct stats_chunk *c = &s->chunks[s->table[k] - 1];
    c->present = true;
    c->stored = size;
}

void stats_index_object(struct stats *s, uint64_t size)
{
    s->t.index_objects++;
    s->t.index_bytes += size;
}

void stats_manifest_object(struct stats *s, uint64_t size)
{
    s->t.manifest_objects++;
    s->t.manifest_bytes += size;
}

static double ratio(uint64_t a, uint64_t b)
{
    return b ? (double)a / (double)b : 0.0;
}

void stats_finish(struct stats *s)
{
    struct stats_totals *t = &s->t;
    t->snapshots = 0;
    t->logical = t->nonzero = 0;
    for (size_t i = 0; i < s->nvms; i++) {
        struct stats_vm *v = &s->vms[i];
        v->excl_chunks = 0;
        v->excl_raw = v->excl_stored = 0;
        t->snapshots += v->snapshots;
        t->logical += v->logical;
        t->nonzero += v->nonzero;
    }
    t->chunks_used = s->nchunks;
    t->used_raw = t->used_stored = 0;
    t->chunks_missing = 0;
    for (size_t i = 0; i < s->nchunks; i++) {
        const struct stats_chunk *c = &s->chunks[i];
        t->used_raw += c->len;
        t->used_stored += c->stored;
        if (!c->present)
            t->chunks_missing++;
        if (c->owner != STATS_SHARED) {
            struct stats_vm *v = &s->vms[c->owner];
            v->excl_chunks++;
            v->excl_raw += c->len;
            v->excl_stored += c->stored;
        }
    }
    t->stored = t->chunk_bytes + t->index_bytes + t->manifest_bytes;
    t->dedup_ratio = ratio(t->nonzero, t->used_raw);
    t->compression_ratio = ratio(t->used_raw, t->used_stored);
}

void stats_free(struct stats *s)
{
    for (size_t i = 0; i < s->nvms; i++)
        free(s->vms[i].name);
    free(s->vms);
    free(s->chunks);
    free(s->table);
    memset(s, 0, sizeof *s);
}
