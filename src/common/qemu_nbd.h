/* A private qemu-nbd serving one image, for writing restored images and reading the disks of
 * shut-off domains, started on the domain's host (host.h): here our child serving a unix
 * socket in a private directory (qemu_nbd_local.c), on a remote host a forked server on TCP
 * (qemu_nbd_ssh.c). Either is stopped by qemu_nbd_stop on every path, so none is left
 * behind. */
#ifndef VB_QEMU_NBD_H
#define VB_QEMU_NBD_H

#include <stdbool.h>
#include <sys/types.h>

#include "error.h"

struct qemu_nbd_opts {
    const char *image;       /* the image file */
    const char *format;      /* qcow2, raw, ...; NULL = qcow2 */
    const char *export_name; /* NBD export name (the disk's target dev) */
    const char *socket_path; /* unix socket here; NULL: one in a private temporary directory */
    int connections;         /* -e N: how many clients may be connected at once */
    bool compress;           /* qcow2 only: the compress filter, written clusters compressed */
    bool read_only;
    bool discard;       /* --discard=unmap */
    const char *bitmap; /* -B NAME: export a persistent dirty bitmap (read-only backups) */
    /* --aio=io_uring: writes go through one ring, which writes a file one request at a time
     * (inline, or in the one io_uring worker hashed to its inode), where qemu's thread pool
     * spins on the file's inode lock (a restore of 1.9 GiB here: 0.9 s instead of 1.1-1.5 s).
     * A qemu-nbd or kernel that refuses io_uring is started again without it. */
    bool io_uring;
    /* On a remote host: TCP on the host's NBD address and port + port_offset (one server per
     * disk on consecutive ports), with --tls the host's x509 credentials (ca-cert.pem,
     * server-cert.pem, server-key.pem), clients presenting a certificate signed by that CA
     * (verify-peer=on). */
    int port_offset;
};

struct qemu_nbd;

struct vb_host;
struct vb_nbd_target;

/* Starts the server on h and returns once it serves (or fails naming the cause, including
 * qemu-nbd's own message when it exits early; a port in use is named as such). A qemu-nbd
 * or kernel that refuses io_uring gets it started again without. Here the server gets
 * SIGTERM when the calling *thread* ends (PR_SET_PDEATHSIG), so call it from the thread that
 * lives as long as the server (the main thread). */
struct qemu_nbd *qemu_nbd_start(struct vb_host *h, const struct qemu_nbd_opts *opts,
                                struct vb_error *err);
/* Where its clients connect (valid until qemu_nbd_stop). */
const struct vb_nbd_target *qemu_nbd_target(const struct qemu_nbd *srv);
/* Terminates (SIGTERM, then SIGKILL after a grace period), reaps, removes the socket and
 * the private directory, frees srv. Returns -1 if the server did not exit cleanly: a
 * qemu-nbd that died on its own may not have written everything. NULL is a no-op. */
int qemu_nbd_stop(struct qemu_nbd *srv, struct vb_error *err);

/* Doubles commas, as qemu's option syntax (--image-opts) requires in values. Malloc'ed. */
char *qemu_opt_escape(const char *value);

#endif
