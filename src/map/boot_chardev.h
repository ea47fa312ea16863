/* --boot: the booted copy's character devices (serial, console, parallel, channel) never
 * write to, read from or bind the original VM's host files, whatever the config says (also
 * with --trust-config, which otherwise keeps it whole): a console log file, a file or pipe
 * backend, a listening unix socket are what the original VM uses while it may be running.
 * Such backends become ptys, their <log> goes, and a virtio channel's socket path is left
 * for libvirt to choose. With a console log, the first serial port (one is added if there
 * is none) also logs to that file, through libvirt's <log file append='on'>. */
#ifndef VM_BOOT_CHARDEV_H
#define VM_BOOT_CHARDEV_H

#include <libxml/tree.h>

#include "error.h"

/* devices: the domain's <devices>; console_log: an absolute path, or NULL. */
int boot_chardevs(xmlNodePtr devices, const char *console_log, struct vb_error *err);

#endif
