/* --boot: a transient libvirt domain made from the backup's saved vmconfig, whose disks are
 * the served exports (NBD over the unix socket). Only what a VM needs is kept of the vmconfig
 * (domxml_sanitize.h) unless --trust-config. New name, no uuid, NICs removed unless
 * --keep-nics (two copies of one VM on one network would fight over addresses), boot files
 * (loader, nvram, kernel, initrd) pointing at copies in virtmap's work directory, never at
 * the originals. Started with VIR_DOMAIN_START_AUTODESTROY so that it also goes away if
 * virtmap dies without cleaning up; stopped (destroyed) by boot_stop. */
#ifndef VM_BOOT_H
#define VM_BOOT_H

#include <stddef.h>

#include "error.h"
#include "export.h"
#include "session.h"

struct boot_vm;

struct boot_vm *boot_start(const struct map_options *o, const char *workdir,
                           const char *socket_path, const char *ident, struct map_export **ex,
                           size_t n, struct vb_error *err);
void boot_stop(struct boot_vm *vm);

/* The domain XML for booting (malloc'ed), without libvirt: for tests. */
char *boot_domain_xml(const char *vmconfig, size_t len, const char *name, bool keep_nics,
                      bool trust_config, const char *socket_path, struct map_export **ex, size_t n,
                      const char *backup_dir, const char *ident, const char *workdir,
                      struct vb_error *err);

#endif
