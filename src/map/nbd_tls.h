/* TLS for the NBD server (NBD_OPT_STARTTLS), through GnuTLS: x509 credentials in the layout
 * qemu, nbdkit and libnbd use (DIR/ca-cert.pem, server-cert.pem, server-key.pem, optional
 * ca-crl.pem; client certificates verified against the CA unless told otherwise) or
 * pre-shared keys (a file of "username:hexkey" lines). A TLS session belongs to one
 * connection's nbd_wire; every byte of that connection then goes through it. */
#ifndef VM_NBD_TLS_H
#define VM_NBD_TLS_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include "error.h"
#include "nbd_wire.h"

struct nbd_tls_options {
    const char *creds_dir; /* x509 */
    const char *psk_file;  /* or PSK */
    bool verify_peer;      /* x509: require a client certificate signed by the CA */
};

struct nbd_tls;

/* Loads the credentials (every file is read and checked here, at start). */
struct nbd_tls *nbd_tls_new(const struct nbd_tls_options *o, struct vb_error *err);
void nbd_tls_free(struct nbd_tls *t);
/* "x509" or "PSK", for logs and the URIs' users. */
const char *nbd_tls_kind(const struct nbd_tls *t);

/* The TLS handshake on w's socket (the STARTTLS ack was sent in plain text), bounded by w's
 * deadline. On success w->tls is set and who names the client's identity (PSK user, or
 * certificate subject) for the log. */
int nbd_tls_start(const struct nbd_tls *t, struct nbd_wire *w, char *who, size_t wholen,
                  struct vb_error *err);
/* Sends the TLS close notification (without waiting for the client) and frees the session. */
void nbd_tls_end(struct nbd_wire *w);

/* One read/write through the session: bytes moved, 0 at the end of the stream, -1 with
 * errno set on errors. */
ssize_t nbd_tls_recv(struct nbd_wire *w, void *buf, size_t len);
ssize_t nbd_tls_send(struct nbd_wire *w, const void *buf, size_t len);

#endif
