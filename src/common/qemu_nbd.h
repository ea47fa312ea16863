/* A private qemu-nbd serving one image over a unix socket, for writing restored images (and
 * later for reading offline disks). The server is our child: it is started with -t (so that a
 * readiness probe or a closing client does not end it), waited for until its socket accepts,
 * and stopped and reaped by qemu_nbd_stop on every path, so none is left behind. */
#ifndef VB_QEMU_NBD_H
#define VB_QEMU_NBD_H

#include <stdbool.h>
#include <sys/types.h>

#include "error.h"

struct qemu_nbd_opts {
    const char *image;       /* the image file */
    const char *format;      /* qcow2, raw, ...; NULL = qcow2 */
    const char *export_name; /* NBD export name (the disk's target dev) */
    const char *socket_path; /* NULL: a socket in a private temporary directory */
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
    /* On a remote host (qemu_nbd_start_remote): TCP instead of a unix socket. */
    int port;         /* -p */
    const char *bind; /* -b: the address clients reach */
    /* x509 credentials on that host (ca-cert.pem, server-cert.pem, server-key.pem), or NULL;
     * clients must present a certificate signed by that CA (verify-peer=on) */
    const char *tls_dir;
};

struct qemu_nbd;

/* Starts the server and returns once its socket accepts connections (or fails naming the
 * cause, including qemu-nbd's own message when it exits early). The server gets SIGTERM when
 * the calling *thread* ends (PR_SET_PDEATHSIG), so call it from the thread that lives as long
 * as the server (the main thread). */
struct qemu_nbd *qemu_nbd_start(const struct qemu_nbd_opts *opts, struct vb_error *err);
const char *qemu_nbd_socket(const struct qemu_nbd *srv);
pid_t qemu_nbd_pid(const struct qemu_nbd *srv);
/* Terminates (SIGTERM, then SIGKILL after a grace period), reaps, removes the socket and
 * the private directory, frees srv. Returns -1 if the server did not exit cleanly: a
 * qemu-nbd that died on its own may not have written everything. NULL is a no-op. */
int qemu_nbd_stop(struct qemu_nbd *srv, struct vb_error *err);

struct vb_host;
/* The same on the remote host h, over SSH: qemu-nbd --fork with a pid file in a private
 * directory there, serving TCP on opts->bind:opts->port. qemu_nbd_stop stops it (SIGTERM,
 * then SIGKILL) and removes the directory. */
struct qemu_nbd *qemu_nbd_start_remote(struct vb_host *h, const struct qemu_nbd_opts *opts,
                                       struct vb_error *err);

/* Doubles commas, as qemu's option syntax (--image-opts) requires in values. Malloc'ed. */
char *qemu_opt_escape(const char *value);

#endif
