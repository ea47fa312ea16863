/* One client connection, shared by the handshake and the transmission phase. */
#ifndef VM_NBD_CONN_H
#define VM_NBD_CONN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "export.h"
#include "nbd_server.h"
#include "nbd_wire.h"

/* Request buffers up to this size stay with the connection between requests; a larger one
 * (up to NBD_MAX_REQUEST) lives for its request only, so that an idle connection holds
 * little memory whatever it asked for before. */
#define NBD_CONN_KEEP_BUFFER (1u << 20)

struct nbd_conn {
    struct nbd_server *srv;
    struct nbd_wire w; /* every byte of the connection goes through it (plain or TLS) */
    char peer[96];
    bool no_zeroes;  /* client flag: no 124 bytes of padding after NBD_OPT_EXPORT_NAME */
    bool structured; /* structured replies negotiated */
    bool meta_alloc; /* base:allocation selected for meta_export */
    char meta_export[4097];
    struct map_export *ex; /* chosen export */
    uint16_t tflags;
    struct export_io io;
    uint8_t *buf; /* request/reply payloads, grown up to NBD_MAX_REQUEST */
    size_t cap;
};

/* Fixed newstyle handshake, STARTTLS and option haggling. 0: an export was chosen
 * (transmission follows); -1: the connection ends (abort, error, or a hostile client). */
int nbd_handshake(struct nbd_conn *c);

/* Serves requests until NBD_CMD_DISC, EOF or a protocol violation. */
void nbd_transmission(struct nbd_conn *c);

/* Ensures c->buf holds len bytes. */
int nbd_conn_buffer(struct nbd_conn *c, size_t len);
/* Gives back what a request grew beyond NBD_CONN_KEEP_BUFFER (request buffer and read
 * scratch). */
void nbd_conn_trim(struct nbd_conn *c);

#endif
