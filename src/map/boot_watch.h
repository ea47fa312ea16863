/* --boot: watching the booted domain. libvirt's default event loop runs in a thread of its own
 * (it must be registered before the connection is opened: boot_watch_new first); a lifecycle
 * callback records how the domain ended and makes a descriptor readable, which virtmap's main
 * loop polls next to its signals. So virtmap ends when the VM does, and knows why. */
#ifndef VM_BOOT_WATCH_H
#define VM_BOOT_WATCH_H

#include <libvirt/libvirt.h>
#include <stdbool.h>

#include "error.h"

struct boot_watch;

/* How the VM ended. */
enum boot_end {
    BOOT_RUNNING,   /* not ended */
    BOOT_SHUTDOWN,  /* shut down: the guest powered off (or was asked to by virsh shutdown) */
    BOOT_DESTROYED, /* destroyed by someone else (virsh destroy) */
    BOOT_CRASHED,   /* the guest crashed (on_crash destroy) */
    BOOT_FAILED,    /* its qemu ended unexpectedly */
    BOOT_OTHER,     /* saved, migrated, reverted to a snapshot */
    BOOT_UNKNOWN,   /* gone before it could be watched */
};

/* Registers libvirt's default event loop (once per process) and starts its thread. */
struct boot_watch *boot_watch_new(struct vb_error *err);
/* Watches dom's lifecycle on conn (the connection must have been opened after
 * boot_watch_new). A domain that ended before this is reported as BOOT_UNKNOWN. */
int boot_watch_domain(struct boot_watch *w, virConnectPtr conn, virDomainPtr dom,
                      struct vb_error *err);
/* Readable once something happened: poll it, then ask boot_watch_poll. */
int boot_watch_fd(const struct boot_watch *w);
/* Drains the descriptor. Returns how the domain ended (BOOT_RUNNING if it has not);
 * *lost is set once when the connection to libvirt was lost (the domain is no longer watched,
 * the descriptor stays quiet from then on). */
enum boot_end boot_watch_poll(struct boot_watch *w, bool *lost);
/* "shut down", "was destroyed", ... for the log */
const char *boot_end_text(enum boot_end end);
/* Stops watching (the callbacks of conn are removed) and ends the thread; conn is closed by
 * the caller in between: call boot_watch_unregister, close conn, then boot_watch_free. */
void boot_watch_unregister(struct boot_watch *w);
void boot_watch_free(struct boot_watch *w);

#endif
