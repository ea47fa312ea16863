/* libvirt session helpers: connecting with errors that say what failed, and reading a
 * domain's disks and boot files from its XML. */
#ifndef VB_VIRT_H
#define VB_VIRT_H

#include <libvirt/libvirt.h>
#include <stdbool.h>
#include <stddef.h>

#include "error.h"

/* Opens uri (NULL: qemu:///system). libvirt's own error printing is silenced; failures are
 * reported through err with libvirt's message. */
virConnectPtr vb_virt_connect(const char *uri, struct vb_error *err);
/* The same with SASL credentials (either may be NULL: then libvirt asks on the terminal).
 * The password is never logged. */
virConnectPtr vb_virt_connect_as(const char *uri, const char *user, const char *password,
                                 struct vb_error *err);

/* The last libvirt error as a message ("unknown error" if none). */
const char *vb_virt_last_error(void);

/* Sets err to "<context>: <libvirt's message>" and returns -1. */
int vb_virt_error(struct vb_error *err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

enum vb_disk_kind { VB_DISK_FILE, VB_DISK_BLOCK, VB_DISK_VOLUME, VB_DISK_NETWORK, VB_DISK_OTHER };

struct vb_disk {
    char *target; /* <target dev>: vda, sda */
    char *format; /* <driver type>: qcow2, raw */
    char *device; /* disk, cdrom, floppy, lun */
    enum vb_disk_kind kind;
    char *path; /* image file or block device (volumes resolved) */
    bool has_backing;
};

struct vb_domain_info {
    char *name;
    char *uuid;
    int qemu_uid, qemu_gid; /* from the DAC seclabel of a running domain, or -1 */
    size_t ndisks;
    struct vb_disk *disks;
    char *loader, *nvram, *kernel, *initrd; /* files the domain boots from, or NULL */
    bool has_tpm;
};

/* Parses a domain XML. conn resolves volume disks (may be NULL: volumes then keep no path). */
int vb_domain_info_parse(const char *xml, virConnectPtr conn, struct vb_domain_info *info,
                         struct vb_error *err);
void vb_domain_info_free(struct vb_domain_info *info);

#endif
