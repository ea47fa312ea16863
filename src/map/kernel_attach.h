/* Attaching an export to the kernel's NBD client (-d /dev/nbdX): the kernel does no option
 * haggling, so it gets one end of a socketpair whose other end the server already treats
 * as past the handshake (simple replies, no block status). NBD_DO_IT blocks for the life of
 * the device, so it runs in its own thread; detaching sends NBD_DISCONNECT.
 * UNTESTED on the development machines: they have no nbd module. */
#ifndef VM_KERNEL_ATTACH_H
#define VM_KERNEL_ATTACH_H

#include "error.h"
#include "export.h"
#include "nbd_server.h"

struct kernel_attach;

struct kernel_attach *kernel_attach(const char *device, struct nbd_server *srv,
                                    struct map_export *ex, struct vb_error *err);
void kernel_detach(struct kernel_attach *ka);

/* Checks up front that the device can be used, with an error that says what to do. */
int kernel_attach_check(const char *device, struct vb_error *err);

/* "/dev/nbd0" + 2 -> "/dev/nbd2" (each export of -i gets the next device). */
int kernel_device_nth(const char *device, unsigned n, char *out, size_t outlen,
                      struct vb_error *err);

#endif
