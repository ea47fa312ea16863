/* What is saved beside the data (virtbackup-stream(5), FILES OF A BACKUP DIRECTORY): the
 * domain XML, qemu-img info of every qcow2 image, the loader/nvram/kernel/initrd files and the
 * autostart flag. */
#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "fileutil.h"
#include "log.h"
#include "metadata.h"
#include "util.h"

struct meta_out {
    const char *dir;
    struct vb_zip_writer *zip;
};

static int put_buffer(const struct meta_out *out, const char *name, const void *data, size_t len,
                      struct vb_error *err)
{
    if (out->zip)
        return vb_zip_add_buffer(out->zip, name, data, len, err);
    char path[8500];
    snprintf(path, sizeof path, "%s/%s", out->dir, name);
    return vb_write_file_atomic(path, data, len, err);
}

static int put_file(const struct meta_out *out, const char *name, const char *from,
                    struct vb_error *err)
{
    if (out->zip)
        return vb_zip_add_file(out->zip, name, from, err);
    char path[8500];
    snprintf(path, sizeof path, "%s/%s", out->dir, name);
    return vb_copy_file_atomic(from, path, err);
}

/* osinfo.<ident>: what the guest agent reports (virDomainGetGuestInfo), as a JSON object.
 * Only for domains with an agent channel (agent: the domain XML has one); an agent that
 * does not answer is a warning. */
static int save_osinfo(virDomainPtr dom, bool agent, const struct meta_out *out, const char *ident,
                       struct vb_error *err)
{
    int state, reason;
    if (!agent || virDomainGetState(dom, &state, &reason, 0) < 0 || state != VIR_DOMAIN_RUNNING)
        return 0;
    virDomainAgentSetResponseTimeout(dom, 10, 0);
    virTypedParameterPtr params = NULL;
    int n = 0;
    if (virDomainGetGuestInfo(dom, 0, &params, &n, 0) < 0) {
        vb_warn("the guest agent did not answer (%s): osinfo not saved", vb_virt_last_error());
        return 0;
    }
    json_t *o = json_object();
    for (int i = 0; i < n; i++) {
        const virTypedParameter *p = &params[i];
        json_t *v = NULL;
        switch (p->type) {
        case VIR_TYPED_PARAM_INT:
            v = json_integer(p->value.i);
            break;
        case VIR_TYPED_PARAM_UINT:
            v = json_integer(p->value.ui);
            break;
        case VIR_TYPED_PARAM_LLONG:
            v = json_integer(p->value.l);
            break;
        case VIR_TYPED_PARAM_ULLONG:
            v = json_integer((json_int_t)p->value.ul);
            break;
        case VIR_TYPED_PARAM_DOUBLE:
            v = json_real(p->value.d);
            break;
        case VIR_TYPED_PARAM_BOOLEAN:
            v = json_boolean(p->value.b);
            break;
        case VIR_TYPED_PARAM_STRING:
            v = json_string(p->value.s);
            break;
        default:
            break;
        }
        if (v)
            json_object_set_new(o, p->field, v);
    }
    virTypedParamsFree(params, n);
    char *text = json_dumps(o, JSON_INDENT(4) | JSON_PRESERVE_ORDER);
    json_decref(o);
    if (!text)
        return vb_error_set(err, "out of memory");
    char name[256];
    snprintf(name, sizeof name, "osinfo.%s", ident);
    int rc = put_buffer(out, name, text, strlen(text), err);
    free(text);
    return rc;
}

/* The loader, nvram, kernel and initrd files. A remote domain's files for a zip are fetched
 * into a private directory (mode 0700, under the host's temporary directory) first, because
 * the zip takes local files; it is removed before returning, on every path. */
static int save_boot_files(struct vb_host *host, const struct vb_domain_info *info,
                           const struct meta_out *out, const char *ident, bool is_copy,
                           struct vb_error *err)
{
    const char *boot[] = {info->loader, info->nvram, info->kernel, info->initrd};
    char *fetchdir = NULL;
    char path[4200];
    int rc = 0;
    for (size_t i = 0; rc == 0 && i < 4; i++) {
        if (!boot[i])
            continue;
        int exists = vb_host_exists(host, boot[i], err);
        if (exists < 0) {
            rc = -1;
            break;
        }
        if (!exists) {
            vb_warn("boot file %s is not readable, not saved", boot[i]);
            continue;
        }
        if (is_copy)
            snprintf(path, sizeof path, "%s", vb_base_name(boot[i]));
        else
            snprintf(path, sizeof path, "%s.%s", vb_base_name(boot[i]), ident);
        if (vb_host_is_remote(host) && !out->zip) {
            /* over SFTP straight into the backup directory (atomically) */
            char dest[8600];
            snprintf(dest, sizeof dest, "%s/%s", out->dir, path);
            if (vb_host_fetch(host, boot[i], dest, err) < 0)
                rc = vb_error_prefix(err, "boot file %s on %s", boot[i], host->name);
        } else if (vb_host_is_remote(host)) {
            if (!fetchdir) {
                char tmpl[4200];
                snprintf(tmpl, sizeof tmpl, "%s/virtbackup-boot.%ld.XXXXXX", vb_host_tmpdir(host),
                         (long)getpid());
                if (!mkdtemp(tmpl)) {
                    rc = vb_error_errno(err, "cannot create a directory for boot files in %s",
                                        vb_host_tmpdir(host));
                    break;
                }
                if (!(fetchdir = strdup(tmpl))) {
                    rmdir(tmpl);
                    rc = vb_error_set(err, "out of memory");
                    break;
                }
            }
            char tmp[8600];
            snprintf(tmp, sizeof tmp, "%s/%s", fetchdir, path);
            if (vb_host_fetch(host, boot[i], tmp, err) < 0)
                rc = vb_error_prefix(err, "boot file %s on %s", boot[i], host->name);
            else
                rc = put_file(out, path, tmp, err);
            unlink(tmp);
        } else {
            rc = put_file(out, path, boot[i], err);
        }
    }
    if (fetchdir && rmdir(fetchdir) < 0)
        vb_warn("cannot remove %s: %s", fetchdir, strerror(errno));
    free(fetchdir);
    return rc;
}

int metadata_save(struct vb_host *host, virDomainPtr dom, const struct vb_domain_info *info,
                  struct disk_job **disks, size_t ndisks, struct image_info *images,
                  const char *outdir, struct vb_zip_writer *zip, const char *ident, bool is_copy,
                  struct vb_error *err)
{
    const struct meta_out out = {outdir, zip};
    char path[4200];
    char *xml = virDomainGetXMLDesc(dom, 0);
    if (!xml)
        return vb_virt_error(err, "cannot read the domain XML");
    snprintf(path, sizeof path, "vmconfig.%s.xml", ident);
    int rc = put_buffer(&out, path, xml, strlen(xml), err);
    bool agent = strstr(xml, "org.qemu.guest_agent.0") != NULL;
    free(xml);
    if (rc < 0)
        return -1;

    for (size_t i = 0; i < ndisks; i++) {
        if (!image_info_wanted(disks[i]->disk))
            continue;
        const char *json;
        size_t len;
        if (image_info_get(images, i, host, &json, &len, err) < 0)
            return -1;
        snprintf(path, sizeof path, "%s.%s.qcow.json", disks[i]->disk->target, ident);
        if (put_buffer(&out, path, json, len, err) < 0)
            return -1;
    }

    if (save_boot_files(host, info, &out, ident, is_copy, err) < 0)
        return -1;

    if (save_osinfo(dom, agent, &out, ident, err) < 0)
        return -1;

    int autostart = 0;
    if (virDomainGetAutostart(dom, &autostart) == 0 && autostart) {
        snprintf(path, sizeof path, "autostart.%s", ident);
        if (put_buffer(&out, path, "True", 4, err) < 0)
            return -1;
    }
    return 0;
}
