/* --boot: a transient libvirt domain made from the backup's saved vmconfig, whose disks are
 * the served exports (NBD over the unix socket). Only what a VM needs is kept of the vmconfig
 * (domxml_sanitize.h) unless --trust-config. New name, no uuid, NICs removed unless
 * --keep-nics (two copies of one VM on one network would fight over addresses), boot files
 * (loader, nvram, kernel, initrd) pointing at copies in virtmap's work directory and
 * character devices off the original's files (boot_chardev.h), never at the originals.
 * Started with VIR_DOMAIN_START_AUTODESTROY so that it also goes away if virtmap dies without
 * cleaning up; watched (boot_watch.h), so that virtmap ends when the VM does; stopped
 * (destroyed) by boot_stop if it still runs. */
#ifndef VM_BOOT_H
#define VM_BOOT_H

#include <stdbool.h>
#include <stddef.h>

#include "backup_set.h"
#include "error.h"
#include "export.h"
#include "session.h"

/* virtmap's exit status when the booted VM ended other than by shutting down */
#define BOOT_EXIT_ABNORMAL 2

struct boot_vm;

/* The vmconfig and boot files of the point ident come from set. */
struct boot_vm *boot_start(const struct map_options *o, struct bset *set, const char *workdir,
                           const char *socket_path, const char *ident, struct map_export **ex,
                           size_t n, struct vb_error *err);
/* Readable when something happened to the VM (then call boot_ended); -1 without a VM. */
int boot_fd(const struct boot_vm *vm);
/* Logs what happened. True once the VM has ended, with *status virtmap's exit status for it:
 * 0 when it shut down, BOOT_EXIT_ABNORMAL when it crashed, was destroyed or failed. */
bool boot_ended(struct boot_vm *vm, int *status);
/* Destroys the VM unless it has ended, and closes the connection. */
void boot_stop(struct boot_vm *vm);

/* What boot_domain_xml makes of the vmconfig. */
struct boot_config {
    const char *name;        /* NULL: <original>-virtmap */
    bool keep_nics;          /* --keep-nics */
    bool trust_config;       /* no allow-list */
    const char *console_log; /* --console-log: an absolute path, or NULL */
    const char *socket_path; /* where the exports are served */
    struct bset *set;        /* boot file copies come from here (NULL: none looked for) */
    const char *ident;       /* the point: vmconfig.<ident>.xml, <file>.<ident> */
    const char *workdir;     /* where the boot file copies go */
};

/* The domain XML for booting (malloc'ed), without libvirt: for tests. */
char *boot_domain_xml(const char *vmconfig, size_t len, const struct boot_config *c,
                      struct map_export **ex, size_t n, struct vb_error *err);

#endif
