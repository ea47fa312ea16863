/* What the qemu-nbd starters share: the server's state, its command line, and the two ways
 * to run it (a child serving a unix socket here, a forked server on a remote host), which
 * the host implementations (host.h) name in their ops tables. */
#ifndef VB_QEMU_NBD_INTERNAL_H
#define VB_QEMU_NBD_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include "nbd_target.h"
#include "qemu_nbd.h"

/* qemu-nbd allocates a buffer for every NBD request. glibc serves allocations of 128 KiB and
 * more with mmap, or returns the heap's top to the kernel once 2x the largest such block is
 * free, so with many requests in flight nearly every request gets fresh pages: a page fault
 * and a zeroed page per 4 KiB, about 30% of a restore's wall time here (bench/README.md).
 * These keep request buffers up to 32 MiB (the NBD maximum) in qemu-nbd's heap and the heap
 * at its high-water mark: measured, up to ~50 MiB more resident during a restore (more than
 * the 16 MiB in flight; fragmentation, presumably). Other C libraries ignore it. */
#define QEMU_NBD_TUNABLES                                                                          \
    "glibc.malloc.mmap_threshold=33554432:glibc.malloc.trim_threshold=268435456"

struct qemu_nbd {
    /* stops the server, removes what its start made, frees srv */
    int (*stop)(struct qemu_nbd *srv, struct vb_error *err);
    struct vb_nbd_target target; /* where clients connect */
    pid_t pid;
    char *socket;
    char *dir;     /* private directory we made, or NULL */
    char *errfile; /* qemu-nbd's stderr; unlinked once the child has it open */
    int errfd;     /* our descriptor of that file, read when the server fails */
    bool exited;   /* reaped already */
    int status;
    struct vb_host *host; /* remote: the server runs there, found by its pid file */
    char *pidfile;
    char *desc; /* host:port, for messages */
};

/* The transport part of a remote server's command line: TCP, TLS, fork with a pid file. */
struct qemu_nbd_remote_args {
    const char *pidfile;
    char port[16];
    const char *bind; /* -b: the address clients reach */
    char *tls_object; /* malloc'ed */
};

/* qemu-nbd's argv: a unix socket sock here (ra NULL), or TCP as ra says. */
int qemu_nbd_build_argv(const struct qemu_nbd_opts *o, const char *sock,
                        const struct qemu_nbd_remote_args *ra, char **argv, size_t max,
                        char **imageopts, char *shared, size_t sharedlen, struct vb_error *err);

/* qemu_nbd_local.c, qemu_nbd_ssh.c */
struct qemu_nbd *qemu_nbd_start_local(struct vb_host *h, const struct qemu_nbd_opts *o,
                                      struct vb_error *err);
struct qemu_nbd *qemu_nbd_start_ssh(struct vb_host *h, const struct qemu_nbd_opts *o,
                                    struct vb_error *err);

#endif
