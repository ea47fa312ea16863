/* What is saved beside the data (reference §2): the domain XML, qemu-img info of every qcow2
 * image, the loader/nvram/kernel/initrd files and the autostart flag. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "fileutil.h"
#include "log.h"
#include "metadata.h"

static const char *base_name(const char *path)
{
    const char *s = strrchr(path, '/');
    return s ? s + 1 : path;
}

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

int metadata_save(virDomainPtr dom, const struct vb_domain_info *info, struct disk_job **disks,
                  size_t ndisks, const char *outdir, struct vb_zip_writer *zip, const char *ident,
                  bool is_copy, struct vb_error *err)
{
    const struct meta_out out = {outdir, zip};
    char path[4200];
    char *xml = virDomainGetXMLDesc(dom, 0);
    if (!xml)
        return vb_virt_error(err, "cannot read the domain XML");
    snprintf(path, sizeof path, "vmconfig.%s.xml", ident);
    int rc = put_buffer(&out, path, xml, strlen(xml), err);
    free(xml);
    if (rc < 0)
        return -1;

    for (size_t i = 0; i < ndisks; i++) {
        const struct vb_disk *d = disks[i]->disk;
        if (!d->format || strncmp(d->format, "qcow", 4) != 0 || !d->path)
            continue;
        char *argv[] = {"qemu-img",      "info",          "--output", "json",
                        "--force-share", (char *)d->path, NULL};
        char *json;
        size_t len;
        if (vb_run_capture(argv, &json, &len, err) < 0)
            return vb_error_prefix(err, "%s: image information", d->target);
        snprintf(path, sizeof path, "%s.%s.qcow.json", d->target, ident);
        rc = put_buffer(&out, path, json, len, err);
        free(json);
        if (rc < 0)
            return -1;
    }

    const char *boot[] = {info->loader, info->nvram, info->kernel, info->initrd};
    for (size_t i = 0; i < 4; i++) {
        if (!boot[i])
            continue;
        if (access(boot[i], R_OK) != 0) {
            vb_warn("boot file %s is not readable, not saved", boot[i]);
            continue;
        }
        if (is_copy)
            snprintf(path, sizeof path, "%s", base_name(boot[i]));
        else
            snprintf(path, sizeof path, "%s.%s", base_name(boot[i]), ident);
        if (put_file(&out, path, boot[i], err) < 0)
            return -1;
    }

    int autostart = 0;
    if (virDomainGetAutostart(dom, &autostart) == 0 && autostart) {
        snprintf(path, sizeof path, "autostart.%s", ident);
        if (put_buffer(&out, path, "True", 4, err) < 0)
            return -1;
    }
    return 0;
}
