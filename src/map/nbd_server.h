/* The embedded NBD server: a table of exports, and one thread per client connection
 * (handshake, then the transmission loop). Connections come from listening sockets (the
 * session's accepting thread) or, for the kernel client, from a socketpair already past the
 * handshake. Network clients are bounded in number, in how long their handshake may take,
 * and, with TLS configured, must start TLS before anything else. */
#ifndef VM_NBD_SERVER_H
#define VM_NBD_SERVER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "error.h"
#include "export.h"

struct nbd_server;
struct nbd_tls;

#define NBD_DEFAULT_MAX_CONNECTIONS 32
#define NBD_DEFAULT_HANDSHAKE_MS    30000

struct nbd_server_config {
    unsigned max_connections;      /* network clients served at once; 0: no limit */
    unsigned handshake_timeout_ms; /* for the whole handshake, TLS included; 0: none */
    const struct nbd_tls *tls;     /* NULL: plain text; else every client must use TLS */
};

/* Exports must have names the protocol can carry (at most NBD_MAX_STRING bytes). cfg NULL:
 * the defaults, without TLS. */
struct nbd_server *nbd_server_new(struct map_export **exports, size_t n,
                                  const struct nbd_server_config *cfg, struct vb_error *err);
/* Stops every connection (their sockets are shut down) and joins their threads. */
void nbd_server_free(struct nbd_server *srv);

/* Serves fd (taken over) in a new thread. preset: a kernel connection that skips the
 * handshake and uses simple replies only; NULL for a network client. peer names the client in
 * logs. A network client beyond max_connections is closed at once (logged, not an error). */
int nbd_server_serve(struct nbd_server *srv, int fd, struct map_export *preset, const char *peer,
                     struct vb_error *err);

/* Joins threads of connections that ended; returns how many are still open. */
size_t nbd_server_reap(struct nbd_server *srv);

struct map_export *nbd_server_find(struct nbd_server *srv, const char *name);
size_t nbd_server_count(const struct nbd_server *srv);
struct map_export *nbd_server_export(const struct nbd_server *srv, size_t i);

/* The TLS credentials every client must use, or NULL. */
const struct nbd_tls *nbd_server_tls(const struct nbd_server *srv);

/* The transmission flags of an export, as advertised in the handshake. */
uint16_t nbd_export_flags(const struct map_export *ex);

#endif
