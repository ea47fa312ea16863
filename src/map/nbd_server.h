/* The embedded NBD server: a table of exports, and one thread per client connection
 * (handshake, then the transmission loop). Connections come from listening sockets (main's
 * poll loop accepts them) or, for the kernel client, from a socketpair already past the
 * handshake. */
#ifndef VM_NBD_SERVER_H
#define VM_NBD_SERVER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "error.h"
#include "export.h"

struct nbd_server;

struct nbd_server *nbd_server_new(struct map_export **exports, size_t n, struct vb_error *err);
/* Stops every connection (their sockets are shut down) and joins their threads. */
void nbd_server_free(struct nbd_server *srv);

/* Serves fd (taken over) in a new thread. preset: a kernel connection that skips the
 * handshake and uses simple replies only; NULL for a normal client. peer names the client in
 * logs. */
int nbd_server_serve(struct nbd_server *srv, int fd, struct map_export *preset, const char *peer,
                     struct vb_error *err);

/* Joins threads of connections that ended; returns how many are still open. */
size_t nbd_server_reap(struct nbd_server *srv);

struct map_export *nbd_server_find(struct nbd_server *srv, const char *name);
size_t nbd_server_count(const struct nbd_server *srv);
struct map_export *nbd_server_export(const struct nbd_server *srv, size_t i);

/* The transmission flags of an export, as advertised in the handshake. */
uint16_t nbd_export_flags(const struct map_export *ex);

#endif
