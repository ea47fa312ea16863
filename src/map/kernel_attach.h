/* Attaching an export to the kernel's NBD client (-d /dev/nbdX, -d auto): the kernel does
 * no option haggling, so it gets one end of a socketpair whose other end the server already
 * treats as past the handshake (simple replies, no block status). NBD_DO_IT blocks for the
 * life of the device, so it runs in its own thread; detaching sends NBD_DISCONNECT and opens
 * the device once more, so that the kernel drops the partitions it found at the attach.
 * A device that is attached already (another process's: its /sys/block/nbdN/pid exists, or
 * the kernel refuses our socket with EBUSY) is never touched: NBD_CLEAR_SOCK and the size
 * ioctls only ever go to a device whose socket we set. Tested in a lab guest
 * (tests/integration/map_nbd_device.sh): the development machines have no nbd module. */
#ifndef VM_KERNEL_ATTACH_H
#define VM_KERNEL_ATTACH_H

#include "error.h"
#include "export.h"
#include "nbd_server.h"

struct kernel_attach;

/* device: a path, or "auto" for the first free /dev/nbdN with N >= first. */
struct kernel_attach *kernel_attach(const char *device, unsigned first, struct nbd_server *srv,
                                    struct map_export *ex, struct vb_error *err);
void kernel_detach(struct kernel_attach *ka);

/* The device's path; and its number N (/dev/nbdN) when -d auto chose it, else -1. */
const char *kernel_attach_device(const struct kernel_attach *ka);
long kernel_attach_number(const struct kernel_attach *ka);

/* Checks up front that the device (or, for "auto", the nbd module) can be used, with an
 * error that says what to do: a device in use is refused naming its owner. */
int kernel_attach_check(const char *device, struct vb_error *err);

/* "/dev/nbd0" + 2 -> "/dev/nbd2" (each export of -i gets the next device). */
int kernel_device_nth(const char *device, unsigned n, char *out, size_t outlen,
                      struct vb_error *err);

#endif
