#include "audit.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "index.h"
#include "vector.h"

void audit_chunk_bad(struct audit_chunk *c, const char *fmt, ...)
{
    if (c->bad)
        return;
    va_list ap;
    va_start(ap, fmt);
    char *s = NULL;
    if (vasprintf(&s, fmt, ap) < 0)
        s = NULL;
    va_end(ap);
    c->bad = true;
    c->why = s;
}

void audit_chunk_bad_error(struct audit_chunk *c, const struct vb_error *err)
{
    char hex[REPO_DIGEST_HEX + 1], prefix[REPO_DIGEST_HEX + 16];
    repo_digest_hex(&c->digest, hex);
    int n = snprintf(prefix, sizeof prefix, "chunk %s: ", hex);
    const char *msg = err->msg;
    if (strncmp(msg, prefix, (size_t)n) == 0)
        msg += n;
    audit_chunk_bad(c, "%s", msg);
}

static void set_problem(struct audit *a, size_t snap, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void set_problem(struct audit *a, size_t snap, const char *fmt, ...)
{
    if (a->snap_problem[snap])
        return;
    va_list ap;
    va_start(ap, fmt);
    if (vasprintf(&a->snap_problem[snap], fmt, ap) < 0)
        a->snap_problem[snap] = NULL;
    va_end(ap);
}

static size_t slot_of(const struct audit *a, const repo_digest *d)
{
    size_t h;
    memcpy(&h, d->b, sizeof h);
    return h & (a->table_size - 1);
}

static int grow_table(struct audit *a)
{
    size_t size = a->table_size ? 2 * a->table_size : 1024;
    size_t *t = calloc(size, sizeof *t);
    if (!t)
        return -1;
    free(a->table);
    a->table = t;
    a->table_size = size;
    for (size_t i = 0; i < a->nchunks; i++) {
        size_t s = slot_of(a, &a->chunks[i].digest);
        while (a->table[s])
            s = (s + 1) & (size - 1);
        a->table[s] = i + 1;
    }
    return 0;
}

/* The chunk's index in a->chunks, added if new. -1 when out of memory. */
static long chunk_id(struct audit *a, const repo_digest *d, uint32_t len)
{
    if (2 * (a->nchunks + 1) > a->table_size && grow_table(a) < 0)
        return -1;
    size_t s = slot_of(a, d);
    for (; a->table[s]; s = (s + 1) & (a->table_size - 1))
        if (repo_digest_equal(&a->chunks[a->table[s] - 1].digest, d))
            return (long)(a->table[s] - 1);
    if (vb_vector_grow(&a->chunks, &a->chunks_cap, a->nchunks + 1, sizeof *a->chunks) < 0)
        return -1;
    a->chunks[a->nchunks] = (struct audit_chunk){.digest = *d, .len = len};
    a->table[s] = a->nchunks + 1;
    a->bytes += len;
    return (long)a->nchunks++;
}

/* Reads one index of snapshot snap and adds the chunks it names. -1 when out of memory. */
static int add_index(struct audit *a, size_t snap, const repo_digest *index, const char *what)
{
    struct repo_index idx = {0};
    struct vb_error err = {0};
    char hex[REPO_DIGEST_HEX + 1];
    if (repo_get_index(a->repo, index, &idx, &err) < 0) {
        repo_digest_hex(index, hex);
        set_problem(a, snap, "%s: index %s: %s", what, hex, err.msg);
        return 0;
    }
    int rc = 0;
    for (size_t i = 0; i < idx.n && rc == 0; i++) {
        if (repo_digest_is_zero(&idx.digests[i]))
            continue;
        long id = chunk_id(a, &idx.digests[i], repo_index_chunk_len(&idx, i));
        if (id < 0) {
            rc = -1;
            break;
        }
        struct audit_chunk *c = &a->chunks[id];
        if (c->last_user == snap + 1)
            continue;
        c->last_user = snap + 1;
        if (vb_vector_push(&a->uses[snap], (size_t)id) < 0)
            rc = -1;
    }
    repo_index_free(&idx);
    return rc;
}

int audit_load(struct audit *a, struct repo *r, const char *only_id, struct vb_error *err)
{
    memset(a, 0, sizeof *a);
    a->repo = r;
    if (virtrepo_load_snapshots(r, &a->snaps, err) < 0)
        return -1;
    if (only_id) {
        /* keep only that snapshot */
        size_t keep = a->snaps.n;
        for (size_t i = 0; i < a->snaps.n; i++)
            if (strcmp(a->snaps.v[i].id, only_id) == 0)
                keep = i;
        if (keep == a->snaps.n)
            return vb_error_set(err, "no snapshot %s in the repository", only_id);
        for (size_t i = 0; i < a->snaps.n; i++)
            if (i != keep)
                repo_manifest_free(&a->snaps.v[i].m);
        a->snaps.v[0] = a->snaps.v[keep];
        a->snaps.n = 1;
    }
    size_t n = a->snaps.n ? a->snaps.n : 1;
    a->snap_problem = calloc(n, sizeof *a->snap_problem);
    a->uses = calloc(n, sizeof *a->uses);
    if (!a->snap_problem || !a->uses)
        return vb_error_set(err, "out of memory");
    for (size_t s = 0; s < a->snaps.n; s++) {
        const struct virtrepo_snapshot *x = &a->snaps.v[s];
        if (!x->parsed) {
            set_problem(a, s, "manifest: %s", x->error.msg);
            continue;
        }
        char what[96];
        for (size_t d = 0; d < x->m.n_disks; d++) {
            snprintf(what, sizeof what, "disk %s", x->m.disks[d].target);
            if (add_index(a, s, &x->m.disks[d].index, what) < 0)
                return vb_error_set(err, "out of memory");
        }
        for (size_t b = 0; b < x->m.n_blobs; b++) {
            snprintf(what, sizeof what, "%s blob", repo_blob_kind_name(x->m.blobs[b].kind));
            if (add_index(a, s, &x->m.blobs[b].index, what) < 0)
                return vb_error_set(err, "out of memory");
        }
    }
    return 0;
}

/* The chunk's index in a->chunks, or -1 when no index named it. */
static long find_chunk(const struct audit *a, const repo_digest *d)
{
    if (!a->table_size)
        return -1;
    for (size_t s = slot_of(a, d); a->table[s]; s = (s + 1) & (a->table_size - 1))
        if (repo_digest_equal(&a->chunks[a->table[s] - 1].digest, d))
            return (long)(a->table[s] - 1);
    return -1;
}

/* Appends name (a disk or blob of a snapshot, numbered part) to where[i], a malloc'ed list,
 * for each damaged chunk i that its index names, once per part (last[i]: the part that added
 * itself last, + 1). */
static void add_part(const struct audit *a, char **where, size_t *last, size_t part,
                     const repo_digest *index, const char *name)
{
    struct repo_index idx = {0};
    struct vb_error err = {0};
    if (repo_get_index(a->repo, index, &idx, &err) < 0)
        return; /* the snapshot's problem line says why */
    for (size_t k = 0; k < idx.n; k++) {
        long i = repo_digest_is_zero(&idx.digests[k]) ? -1 : find_chunk(a, &idx.digests[k]);
        if (i < 0 || !a->chunks[i].bad || last[i] == part + 1)
            continue;
        last[i] = part + 1;
        char *s = NULL;
        if (asprintf(&s, "%s%s%s", where[i] ? where[i] : "", where[i] ? ", " : "", name) < 0)
            continue;
        free(where[i]);
        where[i] = s;
    }
    repo_index_free(&idx);
}

/* where[i]: the disks and blobs of snapshot x that use damaged chunk i (NULL: unknown) */
static void find_parts(const struct audit *a, const struct virtrepo_snapshot *x, char **where,
                       size_t *last)
{
    if (!x->parsed)
        return;
    char name[96];
    for (size_t d = 0; d < x->m.n_disks; d++) {
        snprintf(name, sizeof name, "disk %s", x->m.disks[d].target);
        add_part(a, where, last, d, &x->m.disks[d].index, name);
    }
    for (size_t b = 0; b < x->m.n_blobs; b++) {
        snprintf(name, sizeof name, "%s blob", repo_blob_kind_name(x->m.blobs[b].kind));
        add_part(a, where, last, x->m.n_disks + b, &x->m.blobs[b].index, name);
    }
}

bool audit_snapshot_damaged(const struct audit *a, size_t s)
{
    if (a->snap_problem[s])
        return true;
    for (size_t i = 0; i < a->uses[s].n; i++)
        if (a->chunks[a->uses[s].v[i]].bad)
            return true;
    return false;
}

size_t audit_report(const struct audit *a, const char *what)
{
    size_t damaged = 0, bad_chunks = 0, examined = 0;
    for (size_t i = 0; i < a->nchunks; i++) {
        bad_chunks += a->chunks[i].bad;
        examined += !a->chunks[i].skip;
    }
    for (size_t s = 0; s < a->snaps.n; s++) {
        const struct virtrepo_snapshot *x = &a->snaps.v[s];
        size_t bad = 0;
        for (size_t i = 0; i < a->uses[s].n; i++)
            bad += a->chunks[a->uses[s].v[i]].bad;
        if (!bad && !a->snap_problem[s])
            continue;
        damaged++;
        printf("damaged snapshot %s (VM %s, uuid %s): %zu of its %zu chunks damaged\n", x->id,
               x->parsed ? x->m.vm : "?", x->uuid, bad, a->uses[s].n);
        if (a->snap_problem[s])
            printf("  %s\n", a->snap_problem[s]);
        char **where = bad ? calloc(a->nchunks, sizeof *where) : NULL;
        size_t *last = bad ? calloc(a->nchunks, sizeof *last) : NULL;
        if (where && last)
            find_parts(a, x, where, last);
        for (size_t i = 0; i < a->uses[s].n; i++) {
            size_t id = a->uses[s].v[i];
            const struct audit_chunk *c = &a->chunks[id];
            if (!c->bad)
                continue;
            char hex[REPO_DIGEST_HEX + 1];
            repo_digest_hex(&c->digest, hex);
            const char *in = where && last ? where[id] : NULL;
            printf("  chunk %s: %s%s%s%s\n", hex, c->why ? c->why : "damaged", in ? " (in " : "",
                   in ? in : "", in ? ")" : "");
        }
        if (where)
            for (size_t i = 0; i < a->nchunks; i++)
                free(where[i]);
        free(where);
        free(last);
    }
    printf("%s: %zu snapshots, %zu chunks: %s (%zu damaged snapshots, %zu damaged chunks)\n", what,
           a->snaps.n, examined, damaged ? "DAMAGED" : "ok", damaged, bad_chunks);
    fflush(stdout);
    return damaged;
}

void audit_free(struct audit *a)
{
    for (size_t s = 0; s < a->snaps.n; s++) {
        if (a->snap_problem)
            free(a->snap_problem[s]);
        if (a->uses)
            vb_vector_free(&a->uses[s]);
    }
    free(a->snap_problem);
    free(a->uses);
    for (size_t i = 0; i < a->nchunks; i++)
        free(a->chunks[i].why);
    free(a->chunks);
    free(a->table);
    virtrepo_snapshots_free(&a->snaps);
    memset(a, 0, sizeof *a);
}
