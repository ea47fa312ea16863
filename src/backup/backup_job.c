#include "backup_job.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <libvirt/virterror.h>
#include <libxml/parser.h>
#include <libxml/xpath.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "log.h"

static void xml_escape(FILE *f, const char *s)
{
    for (; *s; s++) {
        switch (*s) {
        case '&':
            fputs("&amp;", f);
            break;
        case '<':
            fputs("&lt;", f);
            break;
        case '>':
            fputs("&gt;", f);
            break;
        case '\'':
            fputs("&apos;", f);
            break;
        case '"':
            fputs("&quot;", f);
            break;
        default:
            fputc(*s, f);
        }
    }
}

static const struct disk_job *in_job(const struct job_spec *spec, const char *target)
{
    for (size_t i = 0; i < spec->ndisks; i++)
        if (strcmp(spec->disks[i]->disk->target, target) == 0)
            return spec->disks[i];
    return NULL;
}

char *job_backup_xml(const struct job_spec *spec)
{
    char *out = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&out, &len);
    if (!f)
        return NULL;
    if (spec->socket) {
        fputs("<domainbackup mode='pull'>\n  <server transport='unix' socket='", f);
        xml_escape(f, spec->socket);
        fputs("'/>\n", f);
    } else {
        fputs("<domainbackup mode='pull'>\n  <server transport='tcp'", f);
        if (spec->tls)
            fputs(" tls='yes'", f);
        fputs(" name='", f);
        xml_escape(f, spec->tcp_host);
        fprintf(f, "' port='%d'/>\n", spec->tcp_port);
    }
    if (spec->incremental) {
        fputs("  <incremental>", f);
        xml_escape(f, spec->incremental);
        fputs("</incremental>\n", f);
    }
    fputs("  <disks>\n", f);
    for (size_t i = 0; i < spec->info->ndisks; i++) {
        const struct vb_disk *d = &spec->info->disks[i];
        if (strcmp(d->device, "disk") != 0 && strcmp(d->device, "lun") != 0)
            continue;
        fputs("    <disk name='", f);
        xml_escape(f, d->target);
        const struct disk_job *j = in_job(spec, d->target);
        if (!j) {
            fputs("' backup='no'/>\n", f);
            continue;
        }
        /* a repository incremental's disk without a base (new, or its base not trusted:
         * virtbackup(1), REPOSITORY OUTPUT) is exported whole, without a dirty bitmap */
        if (spec->incremental && j->repo && !j->base)
            fputs("' backupmode='full", f);
        fputs("' backup='yes' type='file'>\n      <scratch file='", f);
        xml_escape(f, spec->dir);
        fputs("/scratch.", f);
        xml_escape(f, d->target);
        fputs("'/>\n    </disk>\n", f);
    }
    fputs("  </disks>\n</domainbackup>\n", f);
    if (fclose(f) != 0) {
        free(out);
        return NULL;
    }
    return out;
}

char *job_checkpoint_xml(const struct job_spec *spec)
{
    char *out = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&out, &len);
    if (!f)
        return NULL;
    fputs("<domaincheckpoint>\n  <description>Backup checkpoint</description>\n  <name>", f);
    xml_escape(f, spec->checkpoint);
    fputs("</name>\n  <disks>\n", f);
    for (size_t i = 0; i < spec->info->ndisks; i++) {
        const struct vb_disk *d = &spec->info->disks[i];
        if (strcmp(d->device, "disk") != 0 && strcmp(d->device, "lun") != 0)
            continue;
        bool bitmap = false;
        for (size_t k = 0; k < spec->nbitmap_disks; k++)
            bitmap |= strcmp(spec->bitmap_disks[k], d->target) == 0;
        fputs("    <disk name='", f);
        xml_escape(f, d->target);
        fputs(bitmap ? "' checkpoint='bitmap'/>\n" : "' checkpoint='no'/>\n", f);
    }
    fputs("  </disks>\n</domaincheckpoint>\n", f);
    if (fclose(f) != 0) {
        free(out);
        return NULL;
    }
    return out;
}

int job_begin(virDomainPtr dom, const struct job_spec *spec, struct vb_error *err)
{
    char *bxml = job_backup_xml(spec);
    char *cxml = spec->checkpoint ? job_checkpoint_xml(spec) : NULL;
    int rc = 0;
    if (!bxml || (spec->checkpoint && !cxml)) {
        rc = vb_error_set(err, "out of memory");
    } else {
        vb_debug("backup XML:\n%s", bxml);
        if (cxml)
            vb_debug("checkpoint XML:\n%s", cxml);
        if (virDomainBackupBegin(dom, bxml, cxml, 0) < 0) {
            virErrorPtr e = virGetLastError();
            if (e && e->code == VIR_ERR_CHECKPOINT_INCONSISTENT) {
                vb_virt_error(err, "cannot use checkpoint %s",
                              spec->incremental ? spec->incremental : "?");
                rc = JOB_BEGIN_INCONSISTENT;
            } else if (strstr(vb_virt_last_error(), "qcow2 v2"))
                rc = vb_virt_error(err, "cannot start the backup job (a qcow2 v2 image cannot "
                                        "keep checkpoints: upgrade it with 'qemu-img amend -o "
                                        "compat=1.1', exclude it with -x, or use -l copy)");
            else if (!spec->socket && (strstr(vb_virt_last_error(), "already in use") ||
                                       strstr(vb_virt_last_error(), "available port")))
                rc = vb_virt_error(err,
                                   "cannot start the backup job: port %d on %s is taken (another "
                                   "backup? choose a free one with -P/--nbd-port)",
                                   spec->tcp_port, spec->tcp_host);
            else if (!spec->socket && strstr(vb_virt_last_error(), "address resolution"))
                rc = vb_virt_error(err,
                                   "cannot start the backup job: the host cannot resolve "
                                   "the NBD address %s (set it with -I/--nbd-ip)",
                                   spec->tcp_host);
            else
                rc = vb_virt_error(err, "cannot start the backup job");
        }
    }
    free(bxml);
    free(cxml);
    return rc;
}

int job_end(virDomainPtr dom, struct vb_error *err)
{
    if (virDomainAbortJob(dom) < 0)
        return vb_virt_error(err, "cannot end the backup job");
    /* the job ends asynchronously: wait, so that its scratch files are gone when we clean up
     * and the next run does not find a job. It usually ends within a few milliseconds, so the
     * polls start at 1 ms and back off to 50 ms (a fixed 50 ms was a fifth of a nightly
     * incremental's whole-command time). */
    useconds_t pause = 1000, waited = 0;
    while (waited < 10000000) {
        char *xml = virDomainBackupGetXMLDesc(dom, 0);
        if (!xml)
            return 0;
        free(xml);
        usleep(pause);
        waited += pause;
        pause = pause * 2 > 50000 ? 50000 : pause * 2;
    }
    vb_warn("the backup job is still ending after 10 s");
    return 0;
}

char *job_running_socket(virDomainPtr dom)
{
    char *xml = virDomainBackupGetXMLDesc(dom, 0);
    if (!xml)
        return NULL;
    char *sock = NULL;
    xmlDocPtr doc = xmlReadMemory(xml, (int)strlen(xml), "backup.xml", NULL,
                                  XML_PARSE_NONET | XML_PARSE_NOERROR | XML_PARSE_NOWARNING);
    if (doc) {
        xmlXPathContextPtr ctx = xmlXPathNewContext(doc);
        xmlXPathObjectPtr o =
            xmlXPathEvalExpression((const xmlChar *)"string(/domainbackup/server/@socket)", ctx);
        if (o && o->stringval && o->stringval[0])
            sock = strdup((const char *)o->stringval);
        xmlXPathFreeObject(o);
        if (!sock) {
            o = xmlXPathEvalExpression(
                (const xmlChar *)"string(/domainbackup/disks/disk/scratch/@file)", ctx);
            if (o && o->stringval && o->stringval[0])
                sock = strdup((const char *)o->stringval);
            xmlXPathFreeObject(o);
        }
        xmlXPathFreeContext(ctx);
        xmlFreeDoc(doc);
    }
    free(xml);
    if (!sock)
        sock = strdup("");
    return sock;
}
