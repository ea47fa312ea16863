/* The base of an incremental into a repository (virtbackup(1), REPOSITORY OUTPUT): the
 * domain's newest snapshot that records a checkpoint of this repository. Its digests are
 * copied for the chunks the checkpoint's bitmap says did not change, so it is used only when
 * that bitmap covers every change since the snapshot (libvirt has the checkpoint and accepts
 * its bitmaps when the job begins, or takes it back from the manifest's XML, validated), when
 * the full read its chain started from is younger than --full-every, and, per disk, when its
 * index is sound; a chunk it names that is missing or damaged is read again. Anything else
 * reads the disk (or every disk) in full, saying why. */
#include <inttypes.h>
#include <jansson.h>
#include <libxml/parser.h>
#include <libxml/xpath.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "checkpoint_xml.h"
#include "checkpoints.h"
#include "log.h"
#include "repo.h"
#include "repo_checkpoint.h"
#include "run_internal.h"
#include "timefmt.h"
#include "vector.h"

struct id_list {
    char **ids;
    size_t n, cap;
};

static int collect_id(void *ctx, const char *uuid, const char *id, struct vb_error *err)
{
    (void)uuid;
    struct id_list *l = ctx;
    if (vb_vector_grow(&l->ids, &l->cap, l->n + 1, sizeof *l->ids) < 0 ||
        !(l->ids[l->n] = strdup(id)))
        return vb_error_set(err, "out of memory");
    l->n++;
    return 0;
}

int repo_base_newest(struct backup_run *r, struct repo_manifest *base, struct vb_error *err)
{
    struct id_list l = {0};
    const size_t second = sizeof "YYYYmmddTHHMMSSZ" - 1;
    long best = -1;
    int rc = repo_list_snapshots(r->repo, r->info.uuid, collect_id, &l, err);
    for (size_t i = l.n; rc == 0 && i-- > 0;) {
        if (best >= 0 && strncmp(base->id, l.ids[i], second) != 0)
            break;
        struct repo_manifest m = {0};
        struct vb_error merr = {0};
        long k = -1;
        if (repo_get_manifest(r->repo, r->info.uuid, l.ids[i], &m, &merr) < 0)
            /* no base; its checkpoint goes as an orphan */
            vb_warn("%s: not a base", merr.msg);
        else if (m.has_checkpoint)
            k = repo_checkpoint_number(m.checkpoint.name, r->repo->config.id);
        if (k > best) {
            best = k;
            repo_manifest_free(base);
            *base = m;
        } else {
            repo_manifest_free(&m);
        }
    }
    for (size_t i = 0; i < l.n; i++)
        free(l.ids[i]);
    free(l.ids);
    return rc;
}

int repo_base_find(struct backup_run *r, struct vb_error *err)
{
    struct repo_manifest *m = calloc(1, sizeof *m);
    if (!m)
        return vb_error_set(err, "out of memory");
    if (repo_base_newest(r, m, err) < 0) {
        repo_manifest_free(m);
        free(m);
        return -1;
    }
    if (m->id[0]) {
        r->base = m;
        vb_info("base: snapshot %s (checkpoint %s)", m->id, m->checkpoint.name);
        return 0;
    }
    free(m);
    if (r->o->level == LEVEL_INC)
        return vb_error_set(err,
                            "-l inc: repository %s holds no base for domain %s (no snapshot "
                            "records a checkpoint of this repository: copies and imported "
                            "snapshots record none); take one with -l full or -l auto",
                            r->o->output, r->info.name);
    vb_info("auto level: full (repository %s holds no base for domain %s: no snapshot records "
            "a checkpoint of this repository)",
            r->o->output, r->info.name);
    r->level = LEVEL_FULL;
    return 0;
}

void repo_base_free(struct backup_run *r)
{
    if (r->base_index) {
        for (size_t i = 0; i < r->njobs; i++)
            repo_index_free(&r->base_index[i]);
        free(r->base_index);
        r->base_index = NULL;
    }
    for (size_t i = 0; i < r->njobs; i++) {
        r->jobs[i].base = NULL;
        free(r->jobs[i].base_missing);
        r->jobs[i].base_missing = NULL;
    }
    if (r->base) {
        repo_manifest_free(r->base);
        free(r->base);
        r->base = NULL;
    }
}

void repo_base_drop(struct backup_run *r, const char *why)
{
    vb_warn("not using snapshot %s as the base: %s; reading every disk in full", r->base->id, why);
    repo_base_free(r);
    r->level = LEVEL_FULL;
    r->parent[0] = '\0';
}

/* When the full read the base's chain started from was: recorded in the base's manifest
 * (full_time), else found by following its parents while they are incrementals, where a
 * chain whose full read is no longer in the repository has none (-1). */
static time_t chain_full_time(struct backup_run *r)
{
    struct repo_manifest m = {0};
    struct vb_error e = {0};
    time_t t = -1;
    if (r->base->full_time[0])
        return repo_time_parse(r->base->full_time, &t) < 0 ? -1 : t;
    if (repo_get_manifest(r->repo, r->info.uuid, r->base->id, &m, &e) < 0) {
        repo_manifest_free(&m);
        return -1;
    }
    for (int hops = 0; hops < 100000; hops++) {
        if (m.level != REPO_LEVEL_INC) {
            if (repo_time_parse(m.time, &t) < 0)
                t = -1;
            break;
        }
        char parent[sizeof m.parent];
        snprintf(parent, sizeof parent, "%s", m.parent);
        repo_manifest_free(&m);
        if (!parent[0] || repo_get_manifest(r->repo, r->info.uuid, parent, &m, &e) < 0)
            break;
    }
    repo_manifest_free(&m);
    return t;
}

/* Libvirt's checkpoint of the base, the one the manifest records; taken back from the
 * manifest (validated) when libvirt lost it (its <parent> dropped: that checkpoint is gone). */
static int base_checkpoint_usable(struct backup_run *r, char *why, size_t len)
{
    const char *name = r->base->checkpoint.name;
    struct vb_error e = {0};
    virDomainCheckpointPtr cp = virDomainCheckpointLookupByName(r->dom, name, 0);
    if (cp) {
        /* the one the manifest records, not another of the same name */
        char *have = virDomainCheckpointGetXMLDesc(cp, 0);
        int64_t t = -1;
        virDomainCheckpointFree(cp);
        if (!have || repo_checkpoint_creation_time(have, &t, &e) < 0 ||
            t != r->base->checkpoint.creation_time) {
            snprintf(why, len,
                     "libvirt's checkpoint %s was created at %lld, the manifest's at %lld", name,
                     (long long)t, (long long)r->base->checkpoint.creation_time);
            free(have);
            return -1;
        }
        free(have);
        /* Its bitmaps are checked where that costs nothing extra: online, libvirt refuses a
         * missing or inconsistent bitmap when the job begins, and the run then reads every
         * disk in full (pull_job.c; a validating redefinition here took ~50 ms of libvirtd's
         * time per run); offline, qemu-nbd refuses it when it starts (run.c). */
        return 0;
    }
    char *xml = checkpoint_xml_set_parent(r->base->checkpoint.xml, NULL, &e);
    if (!xml) {
        snprintf(why, len,
                 "libvirt has no checkpoint %s and the manifest's XML of it is "
                 "not usable: %s",
                 name, e.msg);
        return -1;
    }
    cp = virDomainCheckpointCreateXML(
        r->dom, xml,
        VIR_DOMAIN_CHECKPOINT_CREATE_REDEFINE |
            (r->offline ? 0 : VIR_DOMAIN_CHECKPOINT_CREATE_REDEFINE_VALIDATE));
    free(xml);
    if (!cp) {
        snprintf(why, len,
                 "libvirt has no checkpoint %s and cannot take it back from the "
                 "manifest: %s",
                 name, vb_virt_last_error());
        return -1;
    }
    virDomainCheckpointFree(cp);
    vb_info("redefined checkpoint %s from the manifest of snapshot %s", name, r->base->id);
    return 0;
}

/* Whether the base's checkpoint gave disk target a bitmap. */
static bool checkpoint_has_bitmap(const char *xml, const char *target)
{
    xmlDocPtr doc = xmlReadMemory(xml, (int)strlen(xml), "checkpoint.xml", NULL,
                                  XML_PARSE_NONET | XML_PARSE_NOERROR | XML_PARSE_NOWARNING);
    xmlXPathContextPtr ctx = doc ? xmlXPathNewContext(doc) : NULL;
    xmlXPathObjectPtr o =
        ctx ? xmlXPathEvalExpression(
                  (const xmlChar *)"/domaincheckpoint/disks/disk[@checkpoint='bitmap']/@name", ctx)
            : NULL;
    bool found = false;
    for (int i = 0; o && o->nodesetval && i < o->nodesetval->nodeNr && !found; i++) {
        xmlChar *v = xmlNodeGetContent(o->nodesetval->nodeTab[i]);
        found = v && strcmp((const char *)v, target) == 0;
        xmlFree(v);
    }
    xmlXPathFreeObject(o);
    xmlXPathFreeContext(ctx);
    xmlFreeDoc(doc);
    return found;
}

/* Offline, whether the image of job i holds the base checkpoint's bitmap, consistent (not
 * "in-use": qemu left it so when it was not stored at its end), as qemu-img info says; libvirt
 * cannot validate a shut-off domain's checkpoint, and qemu-nbd would refuse it only after
 * its socket listens. */
static bool offline_bitmap_usable(struct backup_run *r, size_t i, char *why, size_t len)
{
    const char *text;
    size_t tlen;
    struct vb_error e = {0};
    if (image_info_get(r->images, i, &r->host, &text, &tlen, &e) < 0) {
        snprintf(why, len, "%s", e.msg);
        return false;
    }
    json_t *root = json_loadb(text, tlen, 0, NULL);
    json_t *bitmaps = json_object_get(
        json_object_get(json_object_get(root, "format-specific"), "data"), "bitmaps");
    const char *name = r->base->checkpoint.name;
    bool found = false, in_use = false;
    size_t k;
    json_t *b;
    json_array_foreach(bitmaps, k, b)
    {
        if (!json_is_string(json_object_get(b, "name")) ||
            strcmp(json_string_value(json_object_get(b, "name")), name) != 0)
            continue;
        found = true;
        size_t f;
        json_t *flag;
        json_array_foreach(json_object_get(b, "flags"), f, flag)
        {
            in_use |= json_is_string(flag) && strcmp(json_string_value(flag), "in-use") == 0;
        }
    }
    json_decref(root);
    if (!found)
        snprintf(why, len, "its image has no bitmap %s", name);
    else if (in_use)
        snprintf(why, len, "its image's bitmap %s is inconsistent (in use)", name);
    return found && !in_use;
}

/* Job i's base index into r->base_index[i] when its disk can copy digests from it; else
 * why not (a warning when the base is not sound, info for a disk that is new). */
static int disk_base(struct backup_run *r, size_t i, struct vb_error *err)
{
    struct disk_job *j = &r->jobs[i];
    const char *t = j->disk->target;
    const struct repo_manifest_disk *d = NULL;
    for (size_t k = 0; k < r->base->n_disks && !d; k++)
        if (strcmp(r->base->disks[k].target, t) == 0)
            d = &r->base->disks[k];
    if (j->raw_output) {
        vb_info("%s: raw disk, read in full", t);
        return 0;
    }
    if (!d || !checkpoint_has_bitmap(r->base->checkpoint.xml, t)) {
        vb_info("%s: not in the base snapshot %s with a bitmap: read in full", t, r->base->id);
        return 0;
    }
    if (d->chunk_size != repo_chunk_size(r->repo)) {
        vb_warn("%s: the base's chunk size %u is not the repository's %u: read in full", t,
                (unsigned)d->chunk_size, (unsigned)repo_chunk_size(r->repo));
        return 0;
    }
    char why[1200];
    if (r->offline && image_info_wanted(j->disk) && !offline_bitmap_usable(r, i, why, sizeof why)) {
        vb_warn("%s: %s: read in full", t, why);
        return 0;
    }
    struct repo_index *idx = &r->base_index[i];
    struct vb_error e = {0};
    if (repo_get_index(r->repo, &d->index, idx, &e) < 0) {
        vb_warn("%s: the base's index cannot be used (%s): read in full", t, e.msg);
        return 0;
    }
    if (idx->virtual_size != d->virtual_size || idx->chunk_size != d->chunk_size) {
        vb_warn("%s: the base's index does not match its manifest: read in full", t);
        repo_index_free(idx);
        return 0;
    }
    /* a digest is copied only for a chunk that exists (virtbackup-repository(5)); a chunk
     * that is missing (virtrepo verify moved it to bad/) or damaged is read again, so the
     * run stores its content again */
    unsigned char *missing = NULL;
    uint64_t nmissing = 0;
    for (size_t k = 0; k < idx->n; k++) {
        if (repo_digest_is_zero(&idx->digests[k]))
            continue;
        vb_error_clear(&e);
        int rc = repo_chunk_check(r->repo, &idx->digests[k], NULL, &e);
        if (rc == 0)
            continue;
        if (!missing && !(missing = calloc(idx->n, 1))) {
            repo_index_free(idx);
            return vb_error_set(err, "out of memory");
        }
        missing[k] = 1;
        nmissing++;
        if (rc == 1) {
            char hex[REPO_DIGEST_HEX + 1];
            repo_digest_hex(&idx->digests[k], hex);
            snprintf(e.msg, sizeof e.msg, "chunk %s is missing", hex);
        }
        vb_warn("%s: chunk %zu of the base cannot be used (%s): read again", t, k, e.msg);
    }
    if (nmissing)
        vb_info("%s: %" PRIu64 " of the base's chunks are missing or damaged: read again", t,
                nmissing);
    if (backup_interrupted) {
        free(missing);
        return vb_error_set(err, "interrupted");
    }
    j->base = idx;
    j->base_missing = missing;
    return 0;
}

int repo_base_check(struct backup_run *r, struct vb_error *err)
{
    if (!r->base)
        return 0;
    char why[1200];
    int days = r->o->full_every_days;
    time_t full = chain_full_time(r);
    r->base_full_time = full;
    if (days > 0) {
        if (full < 0)
            vb_info("the full read that base snapshot %s's chain started from is no longer in "
                    "the repository (--full-every): reading every disk in full",
                    r->base->id);
        else if (r->start_time - full > (time_t)days * 86400)
            vb_info("the last full read of domain %s (the chain of base snapshot %s) is older "
                    "than --full-every %d days: reading every disk in full",
                    r->info.name, r->base->id, days);
        if (full < 0 || r->start_time - full > (time_t)days * 86400) {
            repo_base_free(r);
            r->level = LEVEL_FULL;
            return 0;
        }
    }
    if (base_checkpoint_usable(r, why, sizeof why) < 0) {
        repo_base_drop(r, why);
        return 0;
    }
    r->base_index = calloc(r->njobs, sizeof *r->base_index);
    if (!r->base_index)
        return vb_error_set(err, "out of memory");
    size_t used = 0;
    for (size_t i = 0; i < r->njobs; i++) {
        if (disk_base(r, i, err) < 0)
            return -1;
        used += r->jobs[i].base != NULL;
    }
    if (used == 0) {
        vb_info("no disk can use the base snapshot %s: reading every disk in full", r->base->id);
        repo_base_free(r);
        r->level = LEVEL_FULL;
        return 0;
    }
    snprintf(r->parent, sizeof r->parent, "%s", r->base->checkpoint.name);
    return 0;
}
