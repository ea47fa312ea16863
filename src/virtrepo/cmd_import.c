/* virtrepo import DIR REPO [--json]: every point of a stream chain (virtbackup-stream(5): a
 * directory, a zip or a comma list of zips, ours or the reference's, plain or compressed)
 * becomes a snapshot, oldest first, each inc's parent the one before (virtrepo(1), IMPORT).
 * Each disk of a point is its stream file replayed onto the previous point's chunk list
 * (import_replay.c); the manifest, put last, records the point it came from ("source"), so
 * that a second run skips what is in already and carries on after it. */
#include <getopt.h>
#include <inttypes.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "backup_set.h"
#include "chksum.h"
#include "debug_stall.h"
#include "domxml.h"
#include "import_replay.h"
#include "log.h"
#include "options.h"
#include "plan.h"
#include "repo_session.h"
#include "snapshot_writer.h"
#include "source_tap.h"
#include "timefmt.h"
#include "virtrepo.h"
#include "vmconfig.h"

/* What a point's config and boot files become (bset_read refuses a larger file). */
#define IMPORT_MAX_CONFIG (16u << 20)
#define IMPORT_MAX_BOOT   (256u << 20)

struct import_disk {
    struct repo_index prev; /* the disk at the point before (n == 0 and no digests: none) */
    bool has_prev, check_prev;
    char *qcow_json; /* the newest saved image info up to the point */
};

struct import_run {
    const struct virtrepo_global *g;
    struct bset *set;
    struct repo *repo;
    struct bset_chain *chains;
    size_t nchains;
    struct import_disk *disks;
    struct virtrepo_snapshots existing; /* the VM's snapshots in the repository */
    char *domain_xml;                   /* the newest vmconfig up to the point */
    char *vm;
    char uuid[REPO_UUID_LEN + 1];
    char parent[32];
    json_t *points; /* --json */
    size_t imported, skipped;
};

static const struct chain_file *point_file(const struct bset_chain *dc, size_t k)
{
    return &dc->files[dc->plan.order[k]];
}

static const char *point_name(const struct bset_chain *dc, size_t k)
{
    return dc->names[dc->plan.order[k]];
}

/* The ident of point k (the checkpoint name, "copy", or a diff's time), as plan.h names it. */
static void point_ident(const struct bset_chain *dc, size_t k, char *buf, size_t len)
{
    const struct chain_file *f = point_file(dc, k);
    if (f->kind == CHAIN_FILE_COPY)
        snprintf(buf, len, "copy");
    else if (f->kind == CHAIN_FILE_DIFF)
        snprintf(buf, len, "%" PRIu64, f->diff_time);
    else
        snprintf(buf, len, "%s", f->meta.checkpoint_name);
}

/* Every disk must have a file at every point: a snapshot holds all the VM's disks. */
static int check_points(const struct import_run *ir, struct vb_error *err)
{
    const struct bset_chain *first = &ir->chains[0];
    for (size_t i = 0; i < ir->nchains; i++) {
        const struct bset_chain *dc = &ir->chains[i];
        if (dc->raw_image)
            return vb_error_set(err, "disk %s: %s is a raw image, not a stream: not imported",
                                dc->dev, point_name(dc, 0));
        if (dc->plan.n != first->plan.n)
            return vb_error_set(err,
                                "disk %s has %zu points, disk %s %zu: every disk must be in "
                                "every backup of the chain",
                                dc->dev, dc->plan.n, first->dev, first->plan.n);
        for (size_t k = 0; k < dc->plan.n; k++) {
            char a[300], b[300];
            point_ident(first, k, a, sizeof a);
            point_ident(dc, k, b, sizeof b);
            if (strcmp(a, b) != 0)
                return vb_error_set(err, "point %zu is %s for disk %s, %s for disk %s", k + 1, a,
                                    first->dev, b, dc->dev);
        }
    }
    return 0;
}

/* The META date (local time, no zone, as Python's isoformat) as an instant. */
static int point_time(const struct chain_file *f, const char *name, time_t *t, struct vb_error *err)
{
    struct tm tm = {0};
    const char *end = strptime(f->meta.date, "%Y-%m-%dT%H:%M:%S", &tm);
    if (!end)
        return vb_error_set(err, "%s: metadata date \"%s\" is not a time", name, f->meta.date);
    tm.tm_isdst = -1;
    *t = mktime(&tm);
    return 0;
}

/* The VM's name and uuid from a saved domain XML. */
static int vm_identity(const char *xml, const char *file, char **name, char *uuid, size_t uuidlen,
                       struct vb_error *err)
{
    *name = NULL;
    struct domxml *d = domxml_parse(xml, strlen(xml), err);
    if (!d)
        return vb_error_prefix(err, "%s", file);
    *name = domxml_name(d);
    xmlNodePtr u = domxml_child(xmlDocGetRootElement(domxml_doc(d)), "uuid");
    xmlChar *text = u ? xmlNodeGetContent(u) : NULL;
    snprintf(uuid, uuidlen, "%s", text ? (const char *)text : "");
    xmlFree(text);
    domxml_free(d);
    for (char *p = uuid; *p; p++)
        if (*p >= 'A' && *p <= 'F')
            *p = (char)(*p - 'A' + 'a');
    if (!*name || !repo_uuid_valid(uuid))
        return vb_error_set(err, "%s: no domain name or uuid", file);
    return 0;
}

/* The point's vmconfig.<ident>.xml, or the one of an earlier point; the VM must stay one. */
static int load_config(struct import_run *ir, const char *ident, struct vb_error *err)
{
    char name[320];
    snprintf(name, sizeof name, "vmconfig.%s.xml", ident);
    if (!bset_has(ir->set, name)) {
        if (!ir->domain_xml)
            return vb_error_set(err, "%s: no %s: the VM's name and uuid are unknown",
                                bset_describe(ir->set), name);
        vb_warn("%s: no %s, the domain XML of the point before is kept", bset_describe(ir->set),
                name);
        return 0;
    }
    char *xml, *vm;
    size_t len;
    char uuid[REPO_UUID_LEN + 1];
    if (bset_read(ir->set, name, IMPORT_MAX_CONFIG, &xml, &len, err) < 0)
        return -1;
    if (vm_identity(xml, name, &vm, uuid, sizeof uuid, err) < 0) {
        free(vm);
        free(xml);
        return -1;
    }
    if (ir->uuid[0] && strcmp(uuid, ir->uuid) != 0) {
        vb_error_set(err, "%s names VM %s, the chain's first point VM %s", name, uuid, ir->uuid);
        free(xml);
        free(vm);
        return -1;
    }
    free(ir->domain_xml);
    free(ir->vm);
    ir->domain_xml = xml;
    ir->vm = vm;
    snprintf(ir->uuid, sizeof ir->uuid, "%s", uuid);
    return 0;
}

/* The boot files the domain XML names and the set holds a copy of, for point ident. */
static int put_blobs(struct import_run *ir, const char *ident, struct repo_manifest *m,
                     struct vb_error *err)
{
    struct domxml *d = domxml_parse(ir->domain_xml, strlen(ir->domain_xml), err);
    if (!d)
        return -1;
    int rc = 0;
    for (int k = 0; rc == 0 && k < DOMXML_BOOT_KINDS; k++) {
        char *orig = domxml_boot_file(d, (enum domxml_boot_kind)k);
        char name[512];
        if (!orig || bset_boot_file(ir->set, orig, ident, name, sizeof name) != 1) {
            if (orig)
                vb_warn("point %s: no copy of %s %s in the backup, not imported", ident,
                        domxml_boot_kind_name((enum domxml_boot_kind)k), orig);
            free(orig);
            continue;
        }
        char *data;
        size_t len;
        struct repo_manifest_blob *b = &m->blobs[m->n_blobs];
        rc = bset_read(ir->set, name, IMPORT_MAX_BOOT, &data, &len, err);
        if (rc == 0) {
            rc = repo_put_blob(ir->repo, data, len, &b->index, err);
            free(data);
        }
        if (rc < 0) {
            vb_error_prefix(err, "%s", name);
            free(orig);
            break;
        }
        b->kind = (enum repo_blob_kind)k; /* the same order as domxml's kinds */
        b->path = orig;
        b->size = len;
        m->n_blobs++;
    }
    domxml_free(d);
    return rc;
}

/* The point's stream file of disk dc, indexed through a checksumming tap, as
 * bset_plan_index does: a file with a .chksum skips LZ4's own checksums, checked whole
 * by check_file after its use. */
static struct stream_index *open_file(struct import_run *ir, const struct bset_chain *dc, size_t k,
                                      bool *has_sum, struct vb_error *err)
{
    const char *name = point_name(dc, k);
    struct stream_source *src = bset_source(ir->set, name, err);
    if (!src || !(src = stream_source_tap_new(src, err)))
        return NULL;
    struct stream_index *si = stream_index_build(src, err);
    if (!si)
        return NULL;
    uint32_t want;
    int found = bset_read_chksum(ir->set, name, &want, err);
    if (found < 0) {
        stream_index_free(si);
        return NULL;
    }
    *has_sum = found > 0;
    si->lz4_checksums = !*has_sum;
    return si;
}

/* The file against its .chksum, from the bytes the replay read plus the rest. */
static int check_file(struct import_run *ir, const struct bset_chain *dc, size_t k,
                      struct stream_index *si, struct vb_error *err)
{
    uint32_t sum;
    uint64_t reread;
    bool checked;
    if (stream_source_tap_adler32(si->source, &sum, &reread, err) < 0)
        return -1;
    return bset_match_chksum(ir->set, point_name(dc, k), sum, &checked, err);
}

/* Disk i of point k into the repository: m->disks[i] filled, ir->disks[i].prev moved on. */
static int import_disk(struct import_run *ir, size_t i, size_t k, const char *ident,
                       struct repo_manifest_disk *md, struct vb_error *err)
{
    const struct bset_chain *dc = &ir->chains[i];
    struct import_disk *d = &ir->disks[i];
    bool has_sum = false;
    struct stream_index *si = open_file(ir, dc, k, &has_sum, err);
    if (!si)
        return -1;
    struct repo_disk_stats st;
    int rc = import_replay_disk(ir->repo, d->has_prev ? &d->prev : NULL, d->check_prev, si,
                                &md->index, &st, err);
    /* stream errors name the file already; the repository's do not name the disk */
    if (rc < 0)
        vb_error_prefix(err, "disk %s", dc->dev);
    else if (has_sum)
        rc = check_file(ir, dc, k, si, err);
    uint64_t size = si->meta.virtual_size;
    char format[32];
    snprintf(format, sizeof format, "%s", si->meta.disk_format[0] ? si->meta.disk_format : "raw");
    stream_index_free(si);
    if (rc < 0)
        return -1;
    /* the saved image info of the point, or the newest before it */
    char qname[400], *qjson;
    size_t qlen;
    snprintf(qname, sizeof qname, "%s.%s.qcow.json", dc->dev, ident);
    if (bset_has(ir->set, qname)) {
        if (bset_read(ir->set, qname, IMPORT_MAX_CONFIG, &qjson, &qlen, err) < 0)
            return -1;
        free(d->qcow_json);
        d->qcow_json = qjson;
    }
    repo_digest index = md->index;
    *md = (struct repo_manifest_disk){
        .target = (char *)dc->dev,
        .virtual_size = size,
        .chunk_size = repo_chunk_size(ir->repo),
        .index = index,
        .format = strdup(format),
        .qcow_json = d->qcow_json,
        .bytes_read = st.bytes_read,
        .bytes_new = st.bytes_new,
        .bytes_stored = st.bytes_stored,
    };
    if (!md->format)
        return vb_error_set(err, "out of memory");
    repo_index_free(&d->prev);
    d->has_prev = false;
    if (repo_get_index(ir->repo, &md->index, &d->prev, err) < 0)
        return -1;
    d->has_prev = true;
    d->check_prev = false;
    return 0;
}

/* The snapshot of the VM imported from point source, or NULL. */
static const struct repo_manifest *imported_as(const struct import_run *ir, const char *source)
{
    for (size_t i = 0; i < ir->existing.n; i++) {
        const struct virtrepo_snapshot *s = &ir->existing.v[i];
        if (s->parsed && s->m.source && strcmp(s->m.source, source) == 0 &&
            strcmp(s->uuid, ir->uuid) == 0)
            return &s->m;
    }
    return NULL;
}

/* Point k is in already as m: the next point continues from its disks. */
static int adopt(struct import_run *ir, const struct repo_manifest *m, struct vb_error *err)
{
    for (size_t i = 0; i < ir->nchains; i++) {
        struct import_disk *d = &ir->disks[i];
        const struct repo_manifest_disk *md = NULL;
        for (size_t j = 0; j < m->n_disks; j++)
            if (strcmp(m->disks[j].target, ir->chains[i].dev) == 0)
                md = &m->disks[j];
        if (!md)
            return vb_error_set(err, "snapshot %s has no disk %s", m->id, ir->chains[i].dev);
        repo_index_free(&d->prev);
        d->has_prev = false;
        if (repo_get_index(ir->repo, &md->index, &d->prev, err) < 0)
            return vb_error_prefix(err, "snapshot %s, disk %s", m->id, md->target);
        d->has_prev = true;
        d->check_prev = true;
        free(d->qcow_json);
        d->qcow_json = md->qcow_json ? strdup(md->qcow_json) : NULL;
    }
    free(ir->domain_xml);
    ir->domain_xml = strdup(m->domain_xml);
    snprintf(ir->parent, sizeof ir->parent, "%s", m->id);
    return ir->domain_xml ? 0 : vb_error_set(err, "out of memory");
}

static void record(struct import_run *ir, const char *ident, const struct repo_manifest *m,
                   const char *status)
{
    if (!ir->points)
        return;
    json_t *disks = json_array();
    for (size_t i = 0; i < m->n_disks; i++) {
        const struct repo_manifest_disk *d = &m->disks[i];
        json_array_append_new(disks, json_pack("{s:s, s:I, s:I, s:I, s:I}", "target", d->target,
                                               "virtual_size", (json_int_t)d->virtual_size,
                                               "bytes_read", (json_int_t)d->bytes_read, "bytes_new",
                                               (json_int_t)d->bytes_new, "bytes_stored",
                                               (json_int_t)d->bytes_stored));
    }
    json_array_append_new(
        ir->points,
        json_pack("{s:s, s:s, s:s, s:s, s:s, s:o, s:o}", "point", ident, "status", status,
                  "snapshot", m->id, "time", m->time, "level", repo_level_name(m->level), "parent",
                  m->parent[0] ? json_string(m->parent) : json_null(), "disks", disks));
}

static void free_point(struct repo_manifest *m)
{
    for (size_t i = 0; m->disks && i < m->n_disks; i++)
        free(m->disks[i].format);
    for (size_t i = 0; i < m->n_blobs; i++)
        free(m->blobs[i].path);
    free(m->disks);
    free(m->source);
}

/* Point k: skipped when in already, else every disk, the blobs, then the manifest. */
static int import_point(struct import_run *ir, size_t k, char *last_id, struct vb_error *err)
{
    const struct bset_chain *first = &ir->chains[0];
    const struct chain_file *f = point_file(first, k);
    char ident[300];
    point_ident(first, k, ident, sizeof ident);
    if (load_config(ir, ident, err) < 0)
        return -1;
    struct repo_manifest m = {0};
    struct repo_manifest_blob blobs[DOMXML_BOOT_KINDS];
    time_t t = 0;
    if (point_time(f, point_name(first, k), &t, err) < 0)
        return -1;
    if (asprintf(&m.source, "%s@%s", ident, f->meta.date) < 0) {
        m.source = NULL;
        return vb_error_set(err, "out of memory");
    }
    const struct repo_manifest *done = imported_as(ir, m.source);
    if (done) {
        int rc = adopt(ir, done, err);
        if (rc == 0) {
            vb_info("point %zu/%zu %s: imported already as snapshot %s, skipped", k + 1,
                    first->plan.n, ident, done->id);
            record(ir, ident, done, "skipped");
            ir->skipped++;
            snprintf(last_id, 32, "%s", done->id);
        }
        free(m.source);
        return rc;
    }
    /* ids sort by time: a point within the same second as the one before still sorts after */
    for (int tries = 0; tries < 1000; tries++) {
        repo_snapshot_id_new(t, m.id);
        if (strcmp(m.id, last_id) > 0)
            break;
    }
    m.vm = ir->vm;
    snprintf(m.uuid, sizeof m.uuid, "%s", ir->uuid);
    repo_time_format(t, false, m.time);
    m.level = !ir->parent[0] ? (f->kind == CHAIN_FILE_COPY ? REPO_LEVEL_COPY : REPO_LEVEL_FULL)
              : f->kind == CHAIN_FILE_NEW_BASE ? REPO_LEVEL_FULL
                                               : REPO_LEVEL_INC;
    if (m.level == REPO_LEVEL_INC)
        snprintf(m.parent, sizeof m.parent, "%s", ir->parent);
    /* an imported snapshot adopts no libvirt checkpoint (virtrepo(1), IMPORT) */
    m.has_checkpoint = false;
    m.domain_xml = ir->domain_xml;
    m.blobs = blobs;
    int rc = 0;
    if (!(m.disks = calloc(ir->nchains, sizeof *m.disks)))
        rc = vb_error_set(err, "out of memory");
    for (size_t i = 0; rc == 0 && i < ir->nchains; i++) {
        rc = import_disk(ir, i, k, ident, &m.disks[i], err);
        if (rc == 0)
            m.n_disks++;
    }
    if (rc == 0)
        rc = put_blobs(ir, ident, &m, err);
    /* tests: every chunk, index and blob of the point is in, the manifest is not */
    static const volatile sig_atomic_t no_stop = 0;
    if (rc == 0)
        VB_DEBUG_STALL_AT(ir->g->debug_stall, "commit", &no_stop);
    if (rc == 0)
        rc = repo_snapshot_commit(ir->repo, &m, err);
    if (rc == 0) {
        uint64_t read = 0, added = 0;
        for (size_t i = 0; i < m.n_disks; i++) {
            read += m.disks[i].bytes_read;
            added += m.disks[i].bytes_new;
        }
        vb_info("point %zu/%zu %s: snapshot %s (%s), %" PRIu64 " bytes read, %" PRIu64 " new",
                k + 1, first->plan.n, ident, m.id, repo_level_name(m.level), read, added);
        record(ir, ident, &m, "imported");
        ir->imported++;
        snprintf(ir->parent, sizeof ir->parent, "%s", m.id);
        snprintf(last_id, 32, "%s", m.id);
    } else {
        vb_error_prefix(err, "point %s", ident);
    }
    free_point(&m);
    return rc;
}

static int run_import(struct import_run *ir, const char *input, const char *repo_path,
                      struct vb_error *err)
{
    if (!(ir->set = bset_open(input, err)) ||
        bset_plan_chains(ir->set, NULL, NULL, &ir->chains, &ir->nchains, err) < 0 ||
        check_points(ir, err) < 0)
        return -1;
    if (!(ir->repo = virtrepo_open_session(ir->g, repo_path, "import", err)) ||
        repo_need_key(ir->repo, err) < 0)
        return -1;
    if (!(ir->disks = calloc(ir->nchains, sizeof *ir->disks)))
        return vb_error_set(err, "out of memory");
    size_t n = ir->chains[0].plan.n;
    char ident[300];
    point_ident(&ir->chains[0], 0, ident, sizeof ident);
    if (load_config(ir, ident, err) < 0 ||
        virtrepo_load_snapshots(ir->repo, &ir->existing, err) < 0)
        return -1;
    vb_info("importing %zu point(s) of VM %s (%zu disk(s)) from %s into %s", n, ir->vm, ir->nchains,
            bset_describe(ir->set), repo_path);
    char last_id[32] = "";
    for (size_t k = 0; k < n; k++)
        if (import_point(ir, k, last_id, err) < 0)
            return -1;
    return 0;
}

static void free_run(struct import_run *ir)
{
    for (size_t i = 0; ir->disks && i < ir->nchains; i++) {
        repo_index_free(&ir->disks[i].prev);
        free(ir->disks[i].qcow_json);
    }
    free(ir->disks);
    virtrepo_snapshots_free(&ir->existing);
    bset_chains_free(ir->chains, ir->nchains);
    repo_close(ir->repo);
    bset_free(ir->set);
    free(ir->domain_xml);
    free(ir->vm);
    json_decref(ir->points);
}

int cmd_import(const struct virtrepo_global *g, int argc, char **argv)
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
            return vb_opt_usage_error(g->prog, g->usage, "import: unknown option '%s'",
                                      argv[optind - 1]);
        }
    }
    if (optind != argc - 2)
        return vb_opt_usage_error(g->prog, g->usage, "import: DIR and REPO are needed");
    struct import_run ir = {.g = g};
    if (as_json)
        ir.points = json_array();
    struct vb_error err = {0};
    int rc = run_import(&ir, argv[optind], argv[optind + 1], &err);
    if (rc < 0)
        vb_error_log("import stopped, %zu point(s) imported before: %s", ir.imported, err.msg);
    else if (ir.imported || ir.skipped)
        vb_info("%zu point(s) imported, %zu skipped (imported already); imported snapshots "
                "record no libvirt checkpoint: the next backup of %s into the repository reads "
                "every disk in full",
                ir.imported, ir.skipped, ir.vm);
    if (as_json) {
        json_t *o = json_pack("{s:s, s:s, s:s, s:I, s:I, s:o, s:b}", "repository", argv[optind + 1],
                              "vm", ir.vm ? ir.vm : "", "uuid", ir.uuid, "imported",
                              (json_int_t)ir.imported, "skipped", (json_int_t)ir.skipped, "points",
                              json_incref(ir.points), "ok", rc == 0);
        char *text = o ? json_dumps(o, JSON_INDENT(2)) : NULL;
        if (text)
            printf("%s\n", text);
        free(text);
        json_decref(o);
    }
    free_run(&ir);
    return rc < 0 ? 1 : 0;
}
