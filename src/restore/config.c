#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <libvirt/libvirt.h>
#include <libvirt/virterror.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "checkpoint_name.h"
#include "domxml_sanitize.h"
#include "host_copy.h"
#include "log.h"
#include "util.h"
#include "virt.h"
#include "vmconfig.h"

#define MAX_CONFIG (16 * 1024 * 1024)

int config_load(struct bset *set, const char *ident, struct restore_config **cfg,
                struct vb_error *err)
{
    *cfg = NULL;
    char name[512];
    snprintf(name, sizeof name, "vmconfig.%s.xml", ident);
    if (vb_checkpoint_name_check(ident, name, err) < 0)
        return -1;
    char *use = NULL;
    if (bset_has(set, name)) {
        use = strdup(ident);
    } else {
        if (bset_vmconfig_newest(set, &use, err) < 0)
            return -1;
        if (!use) {
            vb_warn("%s: no vmconfig.*.xml in the backup: disks are restored under their "
                    "target names, no config is written",
                    bset_describe(set));
            return 0;
        }
        vb_warn("%s: no %s for the point restored, using vmconfig.%s.xml", bset_describe(set), name,
                use);
        snprintf(name, sizeof name, "vmconfig.%s.xml", use);
    }
    struct restore_config *c = calloc(1, sizeof *c);
    char *xml = NULL;
    size_t len = 0;
    if (!c || !use) {
        free(c);
        free(use);
        return vb_error_set(err, "out of memory");
    }
    c->ident = use;
    c->name = strdup(name);
    if (bset_read(set, name, MAX_CONFIG, &xml, &len, err) < 0 ||
        !(c->dom = domxml_parse(xml, len, err)) ||
        domxml_disks(c->dom, &c->disks, &c->ndisks, err) < 0) {
        free(xml);
        vb_error_prefix(err, "%s", name);
        config_free(c);
        return -1;
    }
    free(xml);
    vb_info("using domain config %s", name);
    *cfg = c;
    return 0;
}

void config_free(struct restore_config *cfg)
{
    if (!cfg)
        return;
    domxml_disks_free(cfg->disks, cfg->ndisks);
    domxml_free(cfg->dom);
    free(cfg->ident);
    free(cfg->name);
    free(cfg);
}

const struct domxml_disk *config_disk(const struct restore_config *cfg, const char *dev)
{
    for (size_t i = 0; cfg && i < cfg->ndisks; i++)
        if (cfg->disks[i].target && strcmp(cfg->disks[i].target, dev) == 0)
            return &cfg->disks[i];
    return NULL;
}

static const struct restored_disk *find_restored(const struct restored_disk *rd, size_t n,
                                                 const char *dev)
{
    for (size_t i = 0; i < n; i++)
        if (strcmp(rd[i].dev, dev) == 0)
            return &rd[i];
    return NULL;
}

/* Copies <basename>[.<ident>] from the backup to <out>/<basename>; with adjust, points the
 * config there and sets the kind's bit in *own. The original VM's file is never written. */
static int restore_boot_files(const struct restore_opts *o, struct bset *set,
                              struct restore_config *cfg, unsigned *own, struct vb_error *err)
{
    *own = 0;
    for (int k = 0; k < DOMXML_BOOT_KINDS; k++) {
        char *path = domxml_boot_file(cfg->dom, (enum domxml_boot_kind)k);
        if (!path)
            continue;
        char *tmp = strdup(path);
        char saved[600], dest[4096 + 600];
        int rc = 0, found = tmp ? bset_boot_file(set, path, cfg->ident, saved, sizeof saved) : 0;
        if (!tmp) {
            rc = vb_error_set(err, "out of memory");
        } else if (found < 0) {
            vb_warn("%s %s: not a file name, nothing restored",
                    domxml_boot_kind_name((enum domxml_boot_kind)k), path);
        } else {
            snprintf(dest, sizeof dest, "%s/%s", o->output, basename(tmp));
            if (!found) {
                vb_warn("%s %s: not in the backup%s",
                        domxml_boot_kind_name((enum domxml_boot_kind)k), path,
                        o->adjust_config && !o->trust_config
                            ? ""
                            : "; the config keeps the original path");
            } else if ((rc = vb_host_exists(o->host, dest, err)) != 0) {
                if (rc < 0)
                    goto next;
                rc = 0;
                vb_warn("%s: exists already, not overwritten", dest);
                if (o->adjust_config)
                    rc = domxml_set_boot_file(cfg->dom, (enum domxml_boot_kind)k, dest, err);
                *own |= 1u << k;
            } else {
                rc = restore_copy_to_host(o, set, saved, dest, 0644, NULL, err);
                /* qemu opens the loader as its own user, and libvirt does not relabel it as
                 * it does the nvram, kernel and initrd: readable whatever the umask */
                if (rc == 0 && k == DOMXML_LOADER && !vb_host_is_remote(o->host) &&
                    chmod(dest, 0644) < 0)
                    rc = vb_error_errno(err, "%s: chmod", dest);
                if (rc == 0) {
                    vb_info("restored %s %s to %s", domxml_boot_kind_name((enum domxml_boot_kind)k),
                            saved, dest);
                    if (o->adjust_config)
                        rc = domxml_set_boot_file(cfg->dom, (enum domxml_boot_kind)k, dest, err);
                    *own |= 1u << k;
                }
            }
        }
    next:
        free(tmp);
        free(path);
        if (rc < 0)
            return -1;
    }
    return 0;
}

static int adjust(const struct restore_opts *o, struct restore_config *cfg,
                  const struct restored_disk *rd, size_t nrd, struct vb_error *err)
{
    for (size_t i = 0; i < cfg->ndisks; i++) {
        const struct domxml_disk *d = &cfg->disks[i];
        if (!d->target)
            continue;
        const struct restored_disk *r = find_restored(rd, nrd, d->target);
        bool removable = strcmp(d->device, "cdrom") == 0 || strcmp(d->device, "floppy") == 0;
        if (!removable && r && r->ok) {
            int rc =
                domxml_set_disk_file(cfg->dom, d->target, r->path, r->format, r->data_file, err);
            if (rc < 0)
                return -1;
            continue;
        }
        const char *why = "not restored";
        if (removable)
            why = d->device;
        else if (d->format && strcmp(d->format, "raw") == 0 && !o->raw)
            why = "raw disk, not restored without --raw";
        vb_info("config: removing disk %s (%s)", d->target, why);
        if (domxml_remove_disk(cfg->dom, d->target, err) < 0)
            return -1;
    }
    domxml_drop_backing_stores(cfg->dom);
    domxml_remove_uuid(cfg->dom);
    char *old = domxml_name(cfg->dom), *newname = NULL;
    if (o->name)
        newname = strdup(o->name);
    else if (asprintf(&newname, "restore_%s", old ? old : "vm") < 0)
        newname = NULL;
    int rc = newname ? domxml_set_name(cfg->dom, newname, err) : vb_error_set(err, "oom");
    if (rc == 0)
        vb_info("config: domain name %s (was %s), uuid removed", newname, old ? old : "?");
    free(old);
    free(newname);
    return rc;
}

/* What the adjusted config keeps of the backup's: see domxml_sanitize.h. */
static int sanitize(const struct restore_opts *o, struct restore_config *cfg, unsigned own,
                    struct vb_error *err)
{
    if (o->trust_config) {
        vb_warn("--trust-config: %s is used as it is, with every host device, filesystem, "
                "file and emulator it names",
                cfg->name);
        return 0;
    }
    struct domxml_drops drops;
    if (domxml_sanitize(cfg->dom, own, &drops, err) < 0)
        return vb_error_prefix(err, "%s", cfg->name);
    for (size_t i = 0; i < drops.n; i++)
        vb_log(drops.v[i].routine ? VB_LOG_DEBUG : VB_LOG_INFO,
               "config: dropped %s%s%s%s from %s (--trust-config keeps it)", drops.v[i].what,
               drops.v[i].refs[0] ? " (" : "", drops.v[i].refs, drops.v[i].refs[0] ? ")" : "",
               cfg->name);
    domxml_drops_free(&drops);
    return 0;
}

static int define_domain(const struct restore_opts *o, struct bset *set, struct restore_config *cfg,
                         const char *xml, struct vb_error *err)
{
    virConnectPtr conn = vb_virt_connect_as(o->uri, o->user, o->password, err);
    if (!conn)
        return -1;
    int rc = 0;
    virDomainPtr dom = virDomainDefineXMLFlags(conn, xml, 0);
    if (!dom) {
        const char *m = virGetLastErrorMessage();
        rc = vb_error_set(err, "cannot define the restored domain: %s", m ? m : "?");
    } else {
        vb_info("defined domain %s", virDomainGetName(dom));
        char name[512], *flag = NULL;
        size_t len;
        snprintf(name, sizeof name, "autostart.%s", cfg->ident);
        if (bset_has(set, name) && bset_read(set, name, 64, &flag, &len, err) == 0 &&
            strncmp(flag, "True", 4) == 0) {
            if (virDomainSetAutostart(dom, 1) < 0)
                vb_warn("cannot set autostart: %s", virGetLastErrorMessage());
            else
                vb_info("autostart enabled, as recorded in %s", name);
        }
        free(flag);
        virDomainFree(dom);
    }
    virConnectClose(conn);
    return rc;
}

int config_finish(const struct restore_opts *o, struct bset *set, struct restore_config *cfg,
                  const struct restored_disk *rd, size_t nrd, struct vb_error *err)
{
    if (!cfg) {
        if (o->adjust_config || o->define)
            return vb_error_set(err, "no domain config in the backup: cannot %s",
                                o->define ? "define a domain" : "adjust a config");
        return 0;
    }
    unsigned own = 0;
    if (restore_boot_files(o, set, cfg, &own, err) < 0)
        return -1;
    if (o->adjust_config && adjust(o, cfg, rd, nrd, err) < 0)
        return -1;
    if (o->adjust_config && sanitize(o, cfg, own, err) < 0)
        return -1;
    char *xml = domxml_format(cfg->dom, err);
    if (!xml)
        return -1;
    char path[4096 + 256];
    snprintf(path, sizeof path, "%s/%s", o->output,
             o->config_file ? o->config_file : "vmconfig.xml");
    int rc = 0;
    int exists = vb_host_exists(o->host, path, err);
    if (exists < 0) {
        rc = -1;
    } else if (exists && !o->adjust_config) {
        vb_warn("%s: exists already, not overwritten", path);
    } else {
        /* whole or not at all, durable, never over a file that appeared meanwhile */
        rc = vb_host_put_buffer(o->host, xml, strlen(xml), path, 0600, err);
        if (rc == 0)
            vb_info("wrote %s domain config %s", o->adjust_config ? "adjusted" : "original", path);
    }
    if (rc == 0 && o->define)
        rc = define_domain(o, set, cfg, xml, err);
    free(xml);
    return rc;
}
