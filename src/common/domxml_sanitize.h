/* The domain XML of a backup is untrusted input: defining it as it is hands the backup's
 * author the host (a <filesystem> exporting /, a <hostdev>, <qemu:commandline>, a serial port
 * writing to a host file, an nvram or kernel path naming a host file that libvirt then gives
 * to qemu's user). domxml_sanitize keeps only what a VM needs from a backup and drops
 * everything else, element by element (an allow-list, not a list of known dangers):
 *
 *   kept: name, uuid, genid, title, description, maxMemory, memory, currentMemory, vcpu
 *   (count and current only), vcpus, iothreads, iothreadids, defaultiothread, cpu, features,
 *   clock, on_poweroff/on_reboot/on_crash/on_lockfailure, pm, sysinfo (smbios; fwcfg without
 *   file entries), os (type, boot, bootmenu, smbios, bios, firmware, cmdline; loader, nvram,
 *   kernel, initrd as below), and in devices: disk (its source is the caller's business: it
 *   rewrites or removes every disk), controller, interface of type network, bridge or user,
 *   input (mouse, tablet, keyboard), graphics (vnc, spice; not on sockets), video, sound,
 *   audio (none, spice; others become none), watchdog, memballoon, rng (builtin, or random
 *   on /dev/urandom), tpm (emulator), panic, hub, iommu, vsock, serial/console/parallel (as a
 *   pty), channel (the guest agent's, on a socket libvirt chooses; spice agent, vdagent);
 *
 *   boot files: a loader, nvram, kernel or initrd the caller pointed at its own copy taken
 *   from the backup (own_boot_files) stays. Otherwise a loader stays only if it lies in the
 *   host's firmware directories (domxml_firmware_path; made read-only), an nvram loses its
 *   path (libvirt makes a fresh one from the template in its own directory) and goes with a
 *   dropped loader, an nvram template outside the firmware directories goes, a kernel or
 *   initrd goes, dtb and acpi tables always go;
 *
 *   everywhere in what is kept: elements of other namespaces (qemu:*), entity references,
 *   <seclabel>, and attributes or text holding an absolute path are dropped (disk sources,
 *   the boot files above and rng's /dev/urandom excepted).
 *
 * Everything else goes: emulator (libvirt picks the default), filesystem, hostdev, redirdev,
 * redirfilter, smartcard, shmem, lease, memory devices, crypto, pstore, interfaces of other
 * types (ethernet scripts, direct, hostdev, vhostuser, vdpa, sockets), seclabel, metadata,
 * memoryBacking, blkiotune, memtune, cputune, numatune, resource, launchSecurity, keywrap,
 * perf, idmap, bootloader, qemu:commandline and the other qemu:* elements. */
#ifndef VB_DOMXML_SANITIZE_H
#define VB_DOMXML_SANITIZE_H

#include <stdbool.h>
#include <stddef.h>

#include "domxml.h"
#include "error.h"

/* One kind of thing dropped or changed, with what it referenced. */
struct domxml_drop {
    char *what;   /* "devices/filesystem", "os/nvram/@template", "qemu:commandline" */
    char *refs;   /* host paths (or the type) it referenced, ", "-separated; "" if none */
    bool routine; /* only what libvirt writes into every domain's XML from the host's
                     defaults (resource /machine, a dynamic seclabel, the usual emulator):
                     worth a debug line, not a report */
};

struct domxml_drops {
    struct domxml_drop *v;
    size_t n;
};

void domxml_drops_free(struct domxml_drops *drops);

/* own_boot_files: bits (1u << DOMXML_LOADER ...) of the <os> boot files that the caller has
 * pointed at its own copies. Fills drops (one entry per kind, in document order). */
int domxml_sanitize(struct domxml *d, unsigned own_boot_files, struct domxml_drops *drops,
                    struct vb_error *err);

/* Whether path names a file in the host's firmware directories (/usr/share/OVMF, ovmf, AAVMF,
 * edk2, qemu, seabios, qemu-efi-aarch64), judged on the text alone: absolute, no empty, "."
 * or ".." component. Those directories hold root-owned, world-readable package files, so a
 * symbolic link inside them is the distribution's; the text check also holds for a remote
 * host. */
bool domxml_firmware_path(const char *path);

#endif
