/* The libvirt checkpoint of a run into a repository (virtbackup(1), REPOSITORY OUTPUT): each
 * repository keeps one checkpoint per domain, "virtnbdbackup.<repo id>.<n>", the one its
 * newest snapshot records. Before the job: the next n, and the checkpoints of runs that died
 * before their commit removed; with the snapshot: the checkpoint's name, creation time and
 * XML for its manifest; after the commit: the repository's older checkpoints removed. A
 * stream chain's checkpoints and other repositories' are never touched. */
#include <libxml/parser.h>
#include <libxml/xpath.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bitmaps.h"
#include "checkpoints.h"
#include "log.h"
#include "repo.h"
#include "repo_checkpoint.h"
#include "run_internal.h"

/* n of the checkpoint the domain's newest snapshot records of this repository, or -1 when
 * none does. */
static int newest_recorded(struct backup_run *r, long *n, struct vb_error *err)
{
    struct repo_manifest m = {0};
    *n = -1;
    if (repo_base_newest(r, &m, err) < 0)
        return -1;
    if (m.id[0])
        *n = repo_checkpoint_number(m.checkpoint.name, r->repo->config.id);
    repo_manifest_free(&m);
    return 0;
}

/* Bitmaps named for this repository with an n above `above` that no checkpoint owns (their
 * checkpoint's metadata was lost): they would block a new checkpoint of the same name, or
 * are a bitmap per disk more for qemu to keep up to date. */
static int remove_stray_bitmaps(struct backup_run *r, long above, struct vb_error *err)
{
    char **names;
    size_t n;
    if (checkpoints_list(r->dom, &names, &n, err) < 0)
        return -1;
    char prefix[REPO_CHECKPOINT_NAME_MAX];
    snprintf(prefix, sizeof prefix, "%s%s.", REPO_CHECKPOINT_PREFIX, r->repo->config.id);
    struct stray_bitmap *stray;
    size_t ns;
    int rc = stray_bitmaps_find(r->dom, prefix, names, n, &stray, &ns, err);
    checkpoints_free(names, n);
    if (rc < 0)
        return -1;
    size_t keep = 0;
    for (size_t i = 0; i < ns; i++) {
        if (repo_checkpoint_number(stray[i].name, r->repo->config.id) > above) {
            vb_info("removing bitmap %s in %s: libvirt has no checkpoint of it", stray[i].name,
                    stray[i].node);
            struct stray_bitmap t = stray[keep];
            stray[keep++] = stray[i];
            stray[i] = t;
        }
    }
    rc = stray_bitmaps_remove(r->dom, stray, keep, err);
    stray_bitmaps_free(stray, ns);
    return rc;
}

int repo_checkpoint_prepare(struct backup_run *r, struct vb_error *err)
{
    if ((r->level != LEVEL_FULL && r->level != LEVEL_INC) || r->offline)
        return 0;
    long last;
    if (newest_recorded(r, &last, err) < 0)
        return -1;
    char **names;
    size_t n;
    if (checkpoints_list(r->dom, &names, &n, err) < 0)
        return -1;
    int rc = 0;
    for (size_t i = 0; rc == 0 && i < n; i++) {
        if (repo_checkpoint_number(names[i], r->repo->config.id) <= last)
            continue;
        /* newer than the newest snapshot's: made by a run that died before its commit */
        vb_info("removing checkpoint %s: no snapshot of the repository records it (left by an "
                "interrupted run)",
                names[i]);
        rc = checkpoint_delete(r->dom, names[i], false, err);
    }
    checkpoints_free(names, n);
    if (rc < 0 || remove_stray_bitmaps(r, last, err) < 0)
        return -1;
    if (repo_checkpoint_name(r->repo->config.id, last + 1, r->checkpoint, sizeof r->checkpoint) < 0)
        return vb_error_set(err, "repository id %s: cannot name a checkpoint with it",
                            r->repo->config.id);
    return 0;
}

int repo_checkpoint_creation_time(const char *xml, int64_t *t, struct vb_error *err)
{
    xmlDocPtr doc = xmlReadMemory(xml, (int)strlen(xml), "checkpoint.xml", NULL,
                                  XML_PARSE_NONET | XML_PARSE_NOERROR | XML_PARSE_NOWARNING);
    xmlXPathContextPtr ctx = doc ? xmlXPathNewContext(doc) : NULL;
    xmlXPathObjectPtr o =
        ctx ? xmlXPathEvalExpression((const xmlChar *)"/domaincheckpoint/creationTime", ctx) : NULL;
    xmlChar *v = o && o->nodesetval && o->nodesetval->nodeNr == 1
                     ? xmlNodeGetContent(o->nodesetval->nodeTab[0])
                     : NULL;
    char *end = NULL;
    long long value = v ? strtoll((const char *)v, &end, 10) : 0;
    int rc = v && end != (const char *)v && *end == '\0' && value >= 0
                 ? 0
                 : vb_error_set(err, "no creationTime in the checkpoint's XML");
    *t = value;
    xmlFree(v);
    xmlXPathFreeObject(o);
    xmlXPathFreeContext(ctx);
    xmlFreeDoc(doc);
    return rc;
}

int repo_checkpoint_describe(struct backup_run *r, struct repo_manifest *m, struct vb_error *err)
{
    if (!r->checkpoint_created)
        return 0;
    virDomainCheckpointPtr cp = virDomainCheckpointLookupByName(r->dom, r->checkpoint, 0);
    if (!cp)
        return vb_virt_error(err, "checkpoint %s", r->checkpoint);
    char *xml = virDomainCheckpointGetXMLDesc(cp, 0);
    virDomainCheckpointFree(cp);
    if (!xml)
        return vb_virt_error(err, "checkpoint %s: cannot read its XML", r->checkpoint);
    if (repo_checkpoint_creation_time(xml, &m->checkpoint.creation_time, err) < 0) {
        free(xml);
        return vb_error_prefix(err, "checkpoint %s", r->checkpoint);
    }
    m->has_checkpoint = true;
    m->checkpoint.name = r->checkpoint;
    m->checkpoint.xml = xml; /* the caller frees it */
    return 0;
}

void repo_checkpoint_forget_older(struct backup_run *r)
{
    char **names;
    size_t n;
    struct vb_error e = {0};
    if (checkpoints_list(r->dom, &names, &n, &e) < 0) {
        vb_warn("%s", e.msg);
        return;
    }
    for (size_t i = 0; i < n; i++) {
        if (repo_checkpoint_number(names[i], r->repo->config.id) < 0 ||
            strcmp(names[i], r->checkpoint) == 0)
            continue;
        if (checkpoint_delete(r->dom, names[i], false, &e) < 0)
            vb_warn("%s", e.msg);
        else
            vb_info("removed checkpoint %s, which the repository's new snapshot replaces",
                    names[i]);
    }
    checkpoints_free(names, n);
    if (remove_stray_bitmaps(r, -1, &e) < 0)
        vb_warn("%s", e.msg);
}
