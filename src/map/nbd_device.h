/* The kernel's NBD devices as sysfs shows them: which /dev/nbdN exist, whether one is
 * attached and to whom (/sys/block/nbdN/pid: the process that runs NBD_DO_IT, or that
 * connected it over netlink), and its size once the kernel has set it up. */
#ifndef VM_NBD_DEVICE_H
#define VM_NBD_DEVICE_H

#include <stddef.h>
#include <stdint.h>

#include "error.h"

struct nbd_owner {
    long pid;      /* the process (thread group) whose thread the kernel recorded */
    char comm[64]; /* from /proc/PID/comm; "" when that process is gone */
};

/* "/sys/dev/block/MAJ:MIN" of the block device at path. Errors: no such file, not a block
 * device. */
int nbd_device_sysfs_dir(const char *path, char *dir, size_t len, struct vb_error *err);

/* 1 and *owner filled when the device is attached, 0 when it is free. */
int nbd_device_owner(const char *sysdir, struct nbd_owner *owner);

/* "process 1234 (qemu-nbd)", or "process 1234, which is gone" */
void nbd_owner_describe(const struct nbd_owner *owner, char *buf, size_t len);

/* The device's size in 512-byte sectors as the kernel has it (0 until it is set up). */
int nbd_device_sectors(const char *sysdir, uint64_t *sectors);

/* The numbers N of every /sys/block/nbdN, ascending (none without the nbd module). */
int nbd_device_numbers(unsigned **out, size_t *n, struct vb_error *err);

#endif
