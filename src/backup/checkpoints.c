/* libvirt's checkpoints of a domain: list, validate, delete, redefine from the saved XML,
 * save, measure. */
#include "checkpoints.h"

#include <errno.h>
#include <libvirt/virterror.h>
#include <libxml/parser.h>
#include <libxml/xpath.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "checkpoint_xml.h"
#include "log.h"
#include "repo_checkpoint.h"

int checkpoints_list(virDomainPtr dom, char ***names, size_t *n, struct vb_error *err)
{
    virDomainCheckpointPtr *cps = NULL;
    int count = virDomainListAllCheckpoints(dom, &cps, VIR_DOMAIN_CHECKPOINT_LIST_TOPOLOGICAL);
    if (count < 0)
        return vb_virt_error(err, "cannot list the domain's checkpoints");
    *names = calloc((size_t)count + 1, sizeof **names);
    *n = 0;
    for (int i = 0; i < count; i++) {
        if (*names)
            (*names)[(*n)++] = strdup(virDomainCheckpointGetName(cps[i]));
        virDomainCheckpointFree(cps[i]);
    }
    free(cps);
    return *names ? 0 : vb_error_set(err, "out of memory");
}

void checkpoints_free(char **names, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(names[i]);
    free(names);
}

void checkpoints_drop_repository(char **names, size_t *n)
{
    size_t keep = 0;
    for (size_t i = 0; i < *n; i++) {
        if (repo_checkpoint_is_repository(names[i]))
            free(names[i]);
        else
            names[keep++] = names[i];
    }
    *n = keep;
}

int checkpoint_delete(virDomainPtr dom, const char *name, bool metadata_only, struct vb_error *err)
{
    virDomainCheckpointPtr cp = virDomainCheckpointLookupByName(dom, name, 0);
    if (!cp)
        return vb_virt_error(err, "checkpoint %s", name);
    unsigned flags = metadata_only ? VIR_DOMAIN_CHECKPOINT_DELETE_METADATA_ONLY : 0;
    int rc = virDomainCheckpointDelete(cp, flags);
    if (rc < 0 && !metadata_only) {
        /* a checkpoint whose bitmap is gone can only be forgotten */
        rc = virDomainCheckpointDelete(cp, VIR_DOMAIN_CHECKPOINT_DELETE_METADATA_ONLY);
        if (rc == 0)
            vb_warn("checkpoint %s: bitmap could not be removed, removed its metadata only", name);
    }
    virDomainCheckpointFree(cp);
    return rc < 0 ? vb_virt_error(err, "cannot delete checkpoint %s", name) : 0;
}

bool checkpoint_valid(virDomainPtr dom, const char *name, struct vb_error *err)
{
    virDomainCheckpointPtr cp = virDomainCheckpointLookupByName(dom, name, 0);
    if (!cp) {
        vb_virt_error(err, "checkpoint %s", name);
        return false;
    }
    char *xml = virDomainCheckpointGetXMLDesc(cp, 0);
    bool ok = false;
    if (!xml) {
        vb_virt_error(err, "checkpoint %s", name);
    } else {
        virDomainCheckpointPtr again = virDomainCheckpointCreateXML(
            dom, xml,
            VIR_DOMAIN_CHECKPOINT_CREATE_REDEFINE | VIR_DOMAIN_CHECKPOINT_CREATE_REDEFINE_VALIDATE);
        if (again) {
            ok = true;
            virDomainCheckpointFree(again);
        } else {
            vb_virt_error(err, "cannot use checkpoint %s", name);
        }
    }
    free(xml);
    virDomainCheckpointFree(cp);
    return ok;
}

static bool known(char **names, size_t n, const char *name)
{
    for (size_t i = 0; i < n; i++)
        if (strcmp(names[i], name) == 0)
            return true;
    return false;
}

int checkpoints_redefine(virDomainPtr dom, const char *dir, const struct cpt_list *cpt,
                         struct vb_error *err)
{
    char **names;
    size_t n;
    if (checkpoints_list(dom, &names, &n, err) < 0)
        return -1;
    int rc = 0;
    for (size_t i = 0; rc == 0 && i < cpt->n; i++) {
        if (known(names, n, cpt->names[i]))
            continue;
        char path[4200];
        snprintf(path, sizeof path, "%s/%s.xml", dir, cpt->names[i]);
        FILE *f = fopen(path, "r");
        if (!f) {
            vb_debug("checkpoint %s is unknown to libvirt and has no saved XML", cpt->names[i]);
            continue;
        }
        char *xml = NULL;
        size_t cap = 0;
        ssize_t len = getdelim(&xml, &cap, '\0', f);
        fclose(f);
        if (len <= 0) {
            free(xml);
            continue;
        }
        virDomainCheckpointPtr cp =
            virDomainCheckpointCreateXML(dom, xml, VIR_DOMAIN_CHECKPOINT_CREATE_REDEFINE);
        if (cp) {
            vb_info("redefined checkpoint %s from %s", cpt->names[i], path);
            virDomainCheckpointFree(cp);
        } else {
            vb_warn("cannot redefine checkpoint %s from %s: %s", cpt->names[i], path,
                    vb_virt_last_error());
        }
        free(xml);
    }
    checkpoints_free(names, n);
    return rc;
}

/* The nearest ancestor of cp that is not a repository's checkpoint, malloc'ed; NULL when
 * there is none. */
static char *chain_ancestor(virDomainCheckpointPtr cp)
{
    virDomainCheckpointPtr cur = virDomainCheckpointGetParent(cp, 0);
    char *found = NULL;
    while (cur && !found) {
        const char *n = virDomainCheckpointGetName(cur);
        virDomainCheckpointPtr up = NULL;
        if (!repo_checkpoint_is_repository(n))
            found = strdup(n);
        else
            up = virDomainCheckpointGetParent(cur, 0);
        virDomainCheckpointFree(cur);
        cur = up;
    }
    return found;
}

int checkpoint_save_xml(virDomainPtr dom, const char *name, const char *dir, struct vb_error *err)
{
    virDomainCheckpointPtr cp = virDomainCheckpointLookupByName(dom, name, 0);
    if (!cp)
        return vb_virt_error(err, "checkpoint %s", name);
    char *xml = virDomainCheckpointGetXMLDesc(cp, VIR_DOMAIN_CHECKPOINT_XML_SIZE);
    if (!xml)
        xml = virDomainCheckpointGetXMLDesc(cp, 0);
    if (!xml) {
        virDomainCheckpointFree(cp);
        return vb_virt_error(err, "checkpoint %s: cannot read its XML", name);
    }
    /* libvirt's parent may be a repository's checkpoint, which that repository deletes
     * later: the saved XML names the chain's nearest own ancestor instead (or none), so that
     * it can be redefined (by virtbackup or the reference) once libvirt forgot it */
    virDomainCheckpointPtr parent = virDomainCheckpointGetParent(cp, 0);
    if (parent && repo_checkpoint_is_repository(virDomainCheckpointGetName(parent))) {
        char *ancestor = chain_ancestor(cp);
        char *fixed = checkpoint_xml_set_parent(xml, ancestor, err);
        free(ancestor);
        free(xml);
        xml = fixed;
    }
    if (parent)
        virDomainCheckpointFree(parent);
    virDomainCheckpointFree(cp);
    if (!xml)
        return vb_error_prefix(err, "checkpoint %s", name);
    if (mkdir(dir, 0755) < 0 && errno != EEXIST) {
        free(xml);
        return vb_error_errno(err, "%s: mkdir", dir);
    }
    char path[4200], tmp[4300];
    snprintf(path, sizeof path, "%s/%s.xml", dir, name);
    snprintf(tmp, sizeof tmp, "%s.partial", path);
    FILE *f = fopen(tmp, "w");
    int rc = 0;
    if (!f || fputs(xml, f) < 0 || fflush(f) != 0 || fsync(fileno(f)) != 0)
        rc = vb_error_errno(err, "%s: write", tmp);
    if (f)
        fclose(f);
    if (rc == 0 && rename(tmp, path) < 0)
        rc = vb_error_errno(err, "%s: rename", path);
    if (rc < 0)
        unlink(tmp);
    free(xml);
    return rc;
}

int checkpoint_size(virDomainPtr dom, const char *name, unsigned long long *bytes,
                    struct vb_error *err)
{
    virDomainCheckpointPtr cp = virDomainCheckpointLookupByName(dom, name, 0);
    if (!cp)
        return vb_virt_error(err, "checkpoint %s", name);
    char *xml = virDomainCheckpointGetXMLDesc(cp, VIR_DOMAIN_CHECKPOINT_XML_SIZE);
    virDomainCheckpointFree(cp);
    if (!xml)
        return vb_virt_error(err, "checkpoint %s: cannot read its size", name);
    *bytes = 0;
    xmlDocPtr doc = xmlReadMemory(xml, (int)strlen(xml), "checkpoint.xml", NULL,
                                  XML_PARSE_NONET | XML_PARSE_NOERROR | XML_PARSE_NOWARNING);
    if (doc) {
        xmlXPathContextPtr ctx = xmlXPathNewContext(doc);
        xmlXPathObjectPtr o =
            xmlXPathEvalExpression((const xmlChar *)"/domaincheckpoint/disks/disk/@size", ctx);
        for (int i = 0; o && o->nodesetval && i < o->nodesetval->nodeNr; i++) {
            xmlChar *v = xmlNodeGetContent(o->nodesetval->nodeTab[i]);
            if (v)
                *bytes += strtoull((const char *)v, NULL, 10);
            xmlFree(v);
        }
        xmlXPathFreeObject(o);
        xmlXPathFreeContext(ctx);
        xmlFreeDoc(doc);
    }
    free(xml);
    return 0;
}
