/* virtrepo stats REPO [--json]: per VM and in total, the logical bytes of the snapshots, what
 * the store holds, the deduplication and compression ratios and the bytes only one VM's
 * snapshots use (virtrepo(1), STATS). Every index is read; no chunk is, their sizes come
 * from the store's listing. */
#include <getopt.h>
#include <inttypes.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "index.h"
#include "log.h"
#include "options.h"
#include "progress.h"
#include "repo_session.h"
#include "stats.h"
#include "virtrepo.h"

#define OUT_OF_MEMORY (-2)

/* The chunks an index names, counted for VM vm. 0; -1 when the index cannot be read (err
 * says why); OUT_OF_MEMORY. */
static int count_index(struct repo *r, struct stats *s, long vm, const repo_digest *index,
                       struct vb_error *err)
{
    struct repo_index idx = {0};
    if (repo_get_index(r, index, &idx, err) < 0)
        return -1;
    int rc = 0;
    for (size_t i = 0; i < idx.n && rc == 0; i++)
        if (!repo_digest_is_zero(&idx.digests[i]) &&
            stats_chunk_ref(s, vm, &idx.digests[i], repo_index_chunk_len(&idx, i)) < 0)
            rc = OUT_OF_MEMORY;
    repo_index_free(&idx);
    return rc;
}

/* One snapshot: its logical bytes and the chunks of its disks and blobs. 0; -1 when an index
 * cannot be read (the others are still counted); OUT_OF_MEMORY. */
static int count_snapshot(struct repo *r, struct stats *s, const struct repo_manifest *m)
{
    long vm = stats_vm(s, m->uuid, m->vm ? m->vm : "?");
    if (vm < 0)
        return OUT_OF_MEMORY;
    uint64_t logical = 0;
    for (size_t i = 0; i < m->n_disks; i++)
        logical += m->disks[i].virtual_size;
    for (size_t i = 0; i < m->n_blobs; i++)
        logical += m->blobs[i].size;
    stats_snapshot(s, vm, logical);
    int rc = 0;
    for (size_t i = 0; i < m->n_disks + m->n_blobs && rc != OUT_OF_MEMORY; i++) {
        bool disk = i < m->n_disks;
        const struct repo_manifest_blob *b = disk ? NULL : &m->blobs[i - m->n_disks];
        struct vb_error ierr = {0};
        int c = count_index(r, s, vm, disk ? &m->disks[i].index : &b->index, &ierr);
        if (c == -1) {
            vb_error_log("snapshot %s of %s: %s%s: %s: not counted", m->id, m->vm,
                         disk ? "disk " : repo_blob_kind_name(b->kind),
                         disk ? m->disks[i].target : " blob", ierr.msg);
            rc = -1;
        } else if (c == OUT_OF_MEMORY) {
            rc = OUT_OF_MEMORY;
        }
    }
    return rc;
}

struct listing {
    struct stats *s;
    char last[REPO_KEY_MAX + 64];
    char prefix[16];
};

static int list_one(void *ctx, const char *key, const struct repo_stat *st, struct vb_error *err)
{
    uint64_t size = st->size;
    struct listing *l = ctx;
    (void)err;
    snprintf(l->last, sizeof l->last, "%s", key);
    if (strcmp(l->prefix, "chunks/") == 0) {
        /* chunks/<hh>/<64 hex>; anything else there is no chunk */
        const char *slash = strrchr(key, '/');
        repo_digest d;
        if (slash && repo_digest_parse(slash + 1, &d) == 0)
            stats_chunk_object(l->s, &d, size);
    } else if (strcmp(l->prefix, "indexes/") == 0) {
        stats_index_object(l->s, size);
    } else {
        stats_manifest_object(l->s, size);
    }
    return 0;
}

/* Every object under prefix, page by page, with its size. 0, or -1. */
static int list_prefix(struct repo *r, struct stats *s, const char *prefix, struct vb_error *err)
{
    struct listing l = {.s = s};
    snprintf(l.prefix, sizeof l.prefix, "%s", prefix);
    bool more = true;
    while (more) {
        bool first = l.last[0] == '\0';
        char after[sizeof l.last];
        snprintf(after, sizeof after, "%s", l.last);
        more = false;
        if (r->store->ops->list(r->store, prefix, first ? NULL : after, 0, list_one, &l, &more,
                                err) < 0)
            return vb_error_prefix(err, "listing %s", prefix);
    }
    return 0;
}

static json_t *vm_json(const struct stats_vm *v)
{
    return json_pack("{s:s, s:s, s:I, s:I, s:I, s:I, s:I, s:I, s:I}", "name", v->name, "uuid",
                     v->uuid, "snapshots", (json_int_t)v->snapshots, "logical_bytes",
                     (json_int_t)v->logical, "nonzero_bytes", (json_int_t)v->nonzero, "chunks",
                     (json_int_t)v->chunks, "exclusive_chunks", (json_int_t)v->excl_chunks,
                     "exclusive_raw_bytes", (json_int_t)v->excl_raw, "exclusive_stored_bytes",
                     (json_int_t)v->excl_stored);
}

static void print_json(const struct stats *s)
{
    const struct stats_totals *t = &s->t;
    json_t *vms = json_array();
    for (size_t i = 0; i < s->nvms; i++)
        json_array_append_new(vms, vm_json(&s->vms[i]));
    json_t *total = json_pack(
        "{s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, "
        "s:f, s:f}",
        "vms", (json_int_t)s->nvms, "snapshots", (json_int_t)t->snapshots, "logical_bytes",
        (json_int_t)t->logical, "nonzero_bytes", (json_int_t)t->nonzero, "stored_bytes",
        (json_int_t)t->stored, "chunks", (json_int_t)t->chunk_objects, "chunk_bytes",
        (json_int_t)t->chunk_bytes, "chunks_used", (json_int_t)t->chunks_used, "used_raw_bytes",
        (json_int_t)t->used_raw, "used_stored_bytes", (json_int_t)t->used_stored, "chunks_missing",
        (json_int_t)t->chunks_missing, "chunks_unused", (json_int_t)t->chunks_unused,
        "unused_bytes", (json_int_t)t->unused_bytes, "indexes", (json_int_t)t->index_objects,
        "index_bytes", (json_int_t)t->index_bytes, "manifests", (json_int_t)t->manifest_objects,
        "manifest_bytes", (json_int_t)t->manifest_bytes, "dedup_ratio", t->dedup_ratio,
        "compression_ratio", t->compression_ratio);
    json_t *o = json_pack("{s:o, s:o}", "vms", vms, "total", total);
    char *text = o ? json_dumps(o, JSON_INDENT(2) | JSON_PRESERVE_ORDER) : NULL;
    if (text)
        printf("%s\n", text);
    free(text);
    json_decref(o);
}

static int by_name(const void *a, const void *b)
{
    const struct stats_vm *x = a, *y = b;
    int c = strcmp(x->name, y->name);
    return c ? c : strcmp(x->uuid, y->uuid);
}

#define B(x, buf) progress_format_bytes((x), (buf), sizeof(buf))

static void print_table(const struct stats *s)
{
    const struct stats_totals *t = &s->t;
    char a[32], b[32], c[32], d[32];
    printf("%-20s  %-36s  %9s  %10s  %10s  %8s  %s\n", "VM", "UUID", "SNAPSHOTS", "LOGICAL",
           "NON-ZERO", "CHUNKS", "ONLY ITS: CHUNKS (STORED)");
    for (size_t i = 0; i < s->nvms; i++) {
        const struct stats_vm *v = &s->vms[i];
        printf("%-20s  %-36s  %9zu  %10s  %10s  %8zu  %zu (%s)\n", v->name, v->uuid, v->snapshots,
               B(v->logical, a), B(v->nonzero, b), v->chunks, v->excl_chunks, B(v->excl_stored, c));
    }
    printf("\n");
    printf("VMs, snapshots:  %zu, %zu\n", s->nvms, t->snapshots);
    printf("logical:         %s (%s in chunks that are not all-zero)\n", B(t->logical, a),
           B(t->nonzero, b));
    printf("stored:          %s (chunks %s, indexes %s, manifests %s)\n", B(t->stored, a),
           B(t->chunk_bytes, b), B(t->index_bytes, c), B(t->manifest_bytes, d));
    printf("chunks:          %zu stored; %zu used (%s of content, %s stored)", t->chunk_objects,
           t->chunks_used, B(t->used_raw, a), B(t->used_stored, b));
    printf("; %zu unused (%s)", t->chunks_unused, B(t->unused_bytes, c));
    if (t->chunks_missing)
        printf("; %zu MISSING", t->chunks_missing);
    printf("\n");
    printf("deduplication:   %.2fx   compression: %.2fx\n", t->dedup_ratio, t->compression_ratio);
}

int cmd_stats(const struct virtrepo_global *g, int argc, char **argv)
{
    static const struct option opts[] = {
        {"json", no_argument, NULL, 'j'},
        {0},
    };
    bool as_json = false;
    int c;
    while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (c) {
        case 'j':
            as_json = true;
            break;
        default:
            return vb_opt_usage_error(g->prog, g->usage, "stats: unknown option '%s'",
                                      argv[optind - 1]);
        }
    }
    if (optind != argc - 1)
        return vb_opt_usage_error(g->prog, g->usage, "stats: one REPO is needed");

    struct vb_error err = {0};
    struct repo *r = virtrepo_open_session(g, argv[optind], "stats", &err);
    struct virtrepo_snapshots all = {0};
    if (!r || virtrepo_load_snapshots(r, &all, &err) < 0) {
        vb_error_log("%s", err.msg);
        repo_close(r);
        return 1;
    }
    int rc = 0;
    struct stats s = {0};
    /* VM by VM (each counts a chunk once), each VM's snapshots oldest first */
    for (size_t first = 0; first < all.n && rc >= 0; first++) {
        bool seen = false;
        for (size_t k = 0; k < first && !seen; k++)
            seen = strcmp(all.v[k].uuid, all.v[first].uuid) == 0;
        for (size_t i = first; !seen && i < all.n && rc >= 0; i++) {
            const struct virtrepo_snapshot *x = &all.v[i];
            if (strcmp(x->uuid, all.v[first].uuid) != 0)
                continue;
            if (!x->parsed) {
                vb_error_log("snapshot %s of VM %s: %s: not counted", x->id, x->uuid, x->error.msg);
                rc = 1;
                continue;
            }
            int counted = count_snapshot(r, &s, &x->m);
            if (counted == OUT_OF_MEMORY) {
                vb_error_log("out of memory");
                rc = -1;
            } else if (counted < 0) {
                rc = 1;
            }
        }
    }
    if (rc >= 0 &&
        (list_prefix(r, &s, "chunks/", &err) < 0 || list_prefix(r, &s, "indexes/", &err) < 0 ||
         list_prefix(r, &s, "snapshots/", &err) < 0)) {
        vb_error_log("%s", err.msg);
        rc = -1;
    }
    if (rc >= 0) {
        stats_finish(&s);
        qsort(s.vms, s.nvms, sizeof *s.vms, by_name);
        if (as_json)
            print_json(&s);
        else
            print_table(&s);
        if (s.t.chunks_missing) {
            vb_error_log("%zu chunks the snapshots use are missing (virtrepo check names them)",
                         s.t.chunks_missing);
            rc = 1;
        }
    }
    stats_free(&s);
    virtrepo_snapshots_free(&all);
    repo_close(r);
    return rc == 0 ? 0 : 1;
}
