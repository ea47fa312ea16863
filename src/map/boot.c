#include "boot.h"

#include <errno.h>
#include <fcntl.h>
#include <libvirt/libvirt.h>
#include <libvirt/virterror.h>
#include <libxml/parser.h>
#include <libxml/tree.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "boot_chardev.h"
#include "boot_watch.h"
#include "domxml.h"
#include "domxml_sanitize.h"
#include "log.h"
#include "util.h"
#include "virt.h"
#include "vmconfig.h"

struct boot_vm {
    struct boot_watch *watch;
    virConnectPtr conn;
    virDomainPtr dom;
    char *name;
    enum boot_end end;
};

static struct map_export *find_export(struct map_export **ex, size_t n, const char *target)
{
    for (size_t i = 0; target && i < n; i++)
        if (strcmp(export_name(ex[i]), target) == 0)
            return ex[i];
    return NULL;
}

static void drop(xmlNodePtr n)
{
    xmlUnlinkNode(n);
    xmlFreeNode(n);
}

/* <disk type='network'><driver name='qemu' type='raw'/><source protocol='nbd' name='vda'>
 * <host transport='unix' socket='...'/></source><target .../></disk>: the target, bus and
 * boot order stay; everything about the old image goes. */
static void disk_to_nbd(xmlNodePtr disk, const char *export, const char *socket_path)
{
    xmlSetProp(disk, BAD_CAST "type", BAD_CAST "network");
    for (xmlNodePtr c = disk->children, next; c; c = next) {
        next = c->next;
        if (domxml_is_elem(c, "source") || domxml_is_elem(c, "driver") ||
            domxml_is_elem(c, "backingStore") || domxml_is_elem(c, "readonly") ||
            domxml_is_elem(c, "shareable"))
            drop(c);
    }
    xmlNodePtr drv = xmlNewNode(NULL, BAD_CAST "driver");
    xmlSetProp(drv, BAD_CAST "name", BAD_CAST "qemu");
    xmlSetProp(drv, BAD_CAST "type", BAD_CAST "raw");
    xmlSetProp(drv, BAD_CAST "discard", BAD_CAST "unmap");
    xmlNodePtr src = xmlNewNode(NULL, BAD_CAST "source");
    xmlSetProp(src, BAD_CAST "protocol", BAD_CAST "nbd");
    xmlSetProp(src, BAD_CAST "name", BAD_CAST export);
    xmlNodePtr host = xmlNewChild(src, NULL, BAD_CAST "host", NULL);
    xmlSetProp(host, BAD_CAST "transport", BAD_CAST "unix");
    xmlSetProp(host, BAD_CAST "socket", BAD_CAST socket_path);
    xmlNodePtr first = disk->children;
    if (first) {
        xmlAddPrevSibling(first, src);
        xmlAddPrevSibling(src, drv);
    } else {
        xmlAddChild(disk, drv);
        xmlAddChild(disk, src);
    }
}

/* Disks: served ones point at their export, others (not in the backup, cdroms) are
 * removed. NICs go unless kept. */
static int rewrite_devices(xmlDocPtr doc, const struct boot_config *cfg, struct map_export **ex,
                           size_t n, struct vb_error *err)
{
    xmlNodePtr devices = domxml_child(xmlDocGetRootElement(doc), "devices");
    if (!devices)
        return vb_error_set(err, "vmconfig has no <devices>");
    if (boot_chardevs(devices, cfg->console_log, err) < 0)
        return -1;
    size_t served = 0;
    for (xmlNodePtr c = devices->children, next; c; c = next) {
        next = c->next;
        if (domxml_is_elem(c, "interface") && !cfg->keep_nics) {
            drop(c);
            continue;
        }
        if (!domxml_is_elem(c, "disk"))
            continue;
        xmlChar *target = xmlGetProp(domxml_child(c, "target"), BAD_CAST "dev");
        struct map_export *e = find_export(ex, n, (const char *)target);
        if (e) {
            disk_to_nbd(c, export_name(e), cfg->socket_path);
            served++;
        } else {
            vb_info("--boot: disk %s is not in the backup: left out of the VM",
                    target ? (const char *)target : "?");
            drop(c);
        }
        xmlFree(target);
    }
    if (served == 0)
        return vb_error_set(err, "vmconfig has no disk that the backup holds");
    return 0;
}

/* Boot files found in the backup (<base>.<ident> or <base>, plain files): their names in
 * name[kind], "" where there is none. *own gets the kinds that will be on our files: those
 * copies, and the nvram always (without a copy, a fresh file in the work directory that
 * libvirt creates from its template). A kernel or initrd without a copy is an error. */
static int find_boot_files(struct domxml *d, const struct bset *set, const char *ident,
                           char name[DOMXML_BOOT_KINDS][600], unsigned *own, struct vb_error *err)
{
    *own = 1u << DOMXML_NVRAM;
    for (int k = 0; k < DOMXML_BOOT_KINDS; k++) {
        name[k][0] = '\0';
        char *orig = domxml_boot_file(d, (enum domxml_boot_kind)k);
        if (!orig)
            continue;
        if (bset_boot_file(set, orig, ident, name[k], sizeof name[k]) > 0) {
            vb_debug("--boot: %s: copy of %s in %s", domxml_boot_kind_name(k), name[k],
                     bset_describe(set));
            *own |= 1u << k;
        } else {
            name[k][0] = '\0';
            if (k == DOMXML_KERNEL || k == DOMXML_INITRD) {
                vb_error_set(err, "--boot: the backup holds no copy of %s %s",
                             domxml_boot_kind_name(k), orig);
                free(orig);
                return -1;
            }
        }
        free(orig);
    }
    return 0;
}

/* Points the boot files still in the XML at the work directory: copies of name[kind], or
 * for an nvram without one a fresh file. A loader without a copy stays where it is (the
 * host's firmware, unless --trust-config let something else through). */
static int copy_boot_files(struct domxml *d, struct bset *set,
                           const char name[DOMXML_BOOT_KINDS][600], const char *workdir,
                           struct vb_error *err)
{
    for (int k = 0; k < DOMXML_BOOT_KINDS; k++) {
        char *orig = domxml_boot_file(d, (enum domxml_boot_kind)k);
        if (!orig)
            continue;
        const char *base = vb_base_name(orig);
        char to[4200];
        snprintf(to, sizeof to, "%s/%s.%s", workdir, domxml_boot_kind_name(k), base);
        int rc = 0;
        if (name[k][0]) {
            /* a plain file of a directory is opened without following links: the file
             * checked is the file copied */
            rc = bset_copy(set, name[k], to, 0600, NULL, err);
            /* qemu opens the loader as its own user, and libvirt does not relabel it as it
             * does the nvram, kernel and initrd: readable whatever the umask (firmware code) */
            if (rc == 0 && k == DOMXML_LOADER && chmod(to, 0644) < 0)
                rc = vb_error_errno(err, "%s: chmod", to);
            if (rc < 0)
                vb_error_prefix(err, "--boot: copying the %s %s", domxml_boot_kind_name(k), orig);
            else
                rc = domxml_set_boot_file(d, (enum domxml_boot_kind)k, to, err);
        } else if (k == DOMXML_NVRAM) {
            rc = domxml_set_boot_file(d, (enum domxml_boot_kind)k, to, err);
        }
        free(orig);
        if (rc < 0)
            return -1;
    }
    return 0;
}

/* Unless trusted, only what a VM needs from the backup's domain XML (domxml_sanitize.h). */
static int sanitize(struct domxml *d, bool trust_config, unsigned own, struct vb_error *err)
{
    if (trust_config) {
        vb_warn("--boot --trust-config: the backup's vmconfig is used as it is, with every host "
                "device, filesystem, file and emulator it names");
        return 0;
    }
    struct domxml_drops drops;
    if (domxml_sanitize(d, own, &drops, err) < 0)
        return -1;
    for (size_t i = 0; i < drops.n; i++)
        vb_log(drops.v[i].routine ? VB_LOG_DEBUG : VB_LOG_INFO,
               "--boot: dropped %s%s%s%s from the backup's vmconfig (--trust-config keeps it)",
               drops.v[i].what, drops.v[i].refs[0] ? " (" : "", drops.v[i].refs,
               drops.v[i].refs[0] ? ")" : "");
    domxml_drops_free(&drops);
    return 0;
}

char *boot_domain_xml(const char *vmconfig, size_t len, const struct boot_config *c,
                      struct map_export **ex, size_t n, struct vb_error *err)
{
    char *out = NULL, *xml = NULL;
    xmlDocPtr doc = NULL;
    char names[DOMXML_BOOT_KINDS][600] = {""};
    struct domxml *d = domxml_parse(vmconfig, len, err);
    if (!d)
        return NULL;
    char *orig = domxml_name(d);
    char defname[300];
    snprintf(defname, sizeof defname, "%s-virtmap", orig ? orig : "vm");
    free(orig);
    if (domxml_set_name(d, c->name ? c->name : defname, err) < 0)
        goto out;
    domxml_remove_uuid(d);
    domxml_drop_backing_stores(d);
    unsigned own = 0;
    if ((c->set && find_boot_files(d, c->set, c->ident, names, &own, err) < 0) ||
        sanitize(d, c->trust_config, own, err) < 0 ||
        (c->set && copy_boot_files(d, c->set, names, c->workdir, err) < 0))
        goto out;
    if (!(xml = domxml_format(d, err)))
        goto out;
    doc = xmlReadMemory(xml, (int)strlen(xml), "domain.xml", NULL,
                        XML_PARSE_NONET | XML_PARSE_NOERROR | XML_PARSE_NOWARNING);
    if (!doc) {
        vb_error_set(err, "cannot parse the rewritten domain XML");
        goto out;
    }
    if (rewrite_devices(doc, c, ex, n, err) < 0)
        goto out;
    xmlChar *mem = NULL;
    int size = 0;
    xmlDocDumpFormatMemory(doc, &mem, &size, 0);
    if (mem)
        out = strndup((const char *)mem, (size_t)size);
    xmlFree(mem);
    if (!out)
        vb_error_set(err, "out of memory");
out:
    if (doc)
        xmlFreeDoc(doc);
    free(xml);
    domxml_free(d);
    return out;
}

#define MAX_VMCONFIG (16 * 1024 * 1024)

static int read_vmconfig(struct bset *set, const char *ident, char **data, size_t *len,
                         struct vb_error *err)
{
    char name[600];
    snprintf(name, sizeof name, "vmconfig.%s.xml", ident);
    if (!bset_has(set, name)) {
        char *shown = bset_display(set, name);
        errno = ENOENT;
        vb_error_errno(err, "--boot: %s: cannot open the saved domain XML", shown ? shown : name);
        free(shown);
        return -1;
    }
    return bset_read(set, name, MAX_VMCONFIG, data, len, err) < 0
               ? vb_error_prefix(err, "--boot: the saved domain XML")
               : 0;
}

struct boot_vm *boot_start(const struct map_options *o, struct bset *set, const char *workdir,
                           const char *socket_path, const char *ident, struct map_export **ex,
                           size_t n, struct vb_error *err)
{
    char *cfg = NULL, *xml = NULL;
    size_t len;
    struct boot_vm *vm = calloc(1, sizeof *vm);
    if (!vm) {
        vb_error_set(err, "out of memory");
        return NULL;
    }
    if (read_vmconfig(set, ident, &cfg, &len, err) < 0)
        goto fail;
    struct boot_config bc = {.name = o->boot_name,
                             .keep_nics = o->keep_nics,
                             .trust_config = o->trust_config,
                             .console_log = o->console_log,
                             .socket_path = socket_path,
                             .set = set,
                             .ident = ident,
                             .workdir = workdir};
    xml = boot_domain_xml(cfg, len, &bc, ex, n, err);
    if (!xml)
        goto fail;
    /* the event loop must exist before the connection is opened */
    if (!(vm->watch = boot_watch_new(err)) || !(vm->conn = vb_virt_connect(o->uri, err)))
        goto fail;
    vb_debug("--boot: domain XML:\n%s", xml);
    /* AUTODESTROY: libvirt destroys it when our connection closes, even if we crash */
    vm->dom = virDomainCreateXML(vm->conn, xml, VIR_DOMAIN_START_AUTODESTROY);
    if (!vm->dom) {
        vb_virt_error(err, "--boot: cannot start the VM");
        goto fail;
    }
    vm->name = strdup(virDomainGetName(vm->dom));
    if (boot_watch_domain(vm->watch, vm->conn, vm->dom, err) < 0)
        goto fail;
    vb_info("--boot: started transient VM %s from vmconfig.%s.xml; virtmap ends when it stops, "
            "and it stops with virtmap (move it off with 'virsh blockcopy')",
            vm->name ? vm->name : "?", ident);
    if (o->console_log)
        vb_info("--boot: its serial console is logged to %s", o->console_log);
    free(cfg);
    free(xml);
    return vm;
fail:
    free(cfg);
    free(xml);
    boot_stop(vm);
    return NULL;
}

int boot_fd(const struct boot_vm *vm)
{
    return vm ? boot_watch_fd(vm->watch) : -1;
}

bool boot_ended(struct boot_vm *vm, int *status)
{
    bool lost = false;
    const char *name = vm->name ? vm->name : "?";
    vm->end = boot_watch_poll(vm->watch, &lost);
    if (lost && vm->end == BOOT_RUNNING)
        vb_warn("--boot: lost the connection to libvirt: VM %s is no longer watched; virtmap "
                "serves it until stopped",
                name);
    if (vm->end == BOOT_RUNNING)
        return false;
    if (vm->end == BOOT_SHUTDOWN) {
        vb_info("--boot: VM %s %s: stopping", name, boot_end_text(vm->end));
        *status = 0;
    } else {
        vb_warn("--boot: VM %s %s: stopping", name, boot_end_text(vm->end));
        *status = BOOT_EXIT_ABNORMAL;
    }
    return true;
}

void boot_stop(struct boot_vm *vm)
{
    if (!vm)
        return;
    if (vm->dom && vm->end == BOOT_RUNNING && vm->watch) {
        bool lost;
        vm->end = boot_watch_poll(vm->watch, &lost);
        if (vm->end != BOOT_RUNNING)
            vb_info("--boot: VM %s %s", vm->name ? vm->name : "?", boot_end_text(vm->end));
    }
    if (vm->dom && vm->end == BOOT_RUNNING) {
        if (virDomainDestroy(vm->dom) == 0) {
            vb_info("--boot: stopped VM %s", vm->name ? vm->name : "?");
        } else {
            virErrorPtr e = virGetLastError();
            /* it ended on its own just now */
            if (e && (e->code == VIR_ERR_NO_DOMAIN || e->code == VIR_ERR_OPERATION_INVALID))
                vb_info("--boot: VM %s had stopped already", vm->name ? vm->name : "?");
            else
                vb_warn("--boot: cannot stop VM %s: %s", vm->name ? vm->name : "?",
                        vb_virt_last_error());
        }
    }
    boot_watch_unregister(vm->watch);
    if (vm->dom)
        virDomainFree(vm->dom);
    if (vm->conn)
        virConnectClose(vm->conn);
    boot_watch_free(vm->watch);
    free(vm->name);
    free(vm);
}
