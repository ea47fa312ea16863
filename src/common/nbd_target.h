/* Where an NBD client connects: a unix socket (a local backup job or our own qemu-nbd), or
 * TCP to a remote host's server, with TLS when a credentials directory is given (the server's
 * certificate verified against its CA and the host name). Shared by virtbackup's readers and
 * virtrestore's writers. */
#ifndef VB_NBD_TARGET_H
#define VB_NBD_TARGET_H

#include <stddef.h>

struct nbd_handle;

struct vb_nbd_target {
    const char *socket; /* unix socket, or NULL for TCP: */
    const char *host;   /* server address */
    int port;
    const char *tls_dir; /* ca-cert.pem, client-cert.pem, client-key.pem; NULL: no TLS */
};

/* Connects h (export name and meta contexts set by the caller). -1 with libnbd's error. */
int vb_nbd_target_connect(struct nbd_handle *h, const struct vb_nbd_target *t);

/* "/path/sock", "nbd://host:port" or "nbds://host:port", for messages. */
const char *vb_nbd_target_describe(const struct vb_nbd_target *t, char *buf, size_t len);

/* A hint to append to a connection error (TLS problems, refused ports), or "". */
const char *vb_nbd_target_hint(const struct vb_nbd_target *t, const char *nbd_error);

#endif
