/* One client connection, shared by the handshake and the transmission phase. */
#ifndef VM_NBD_CONN_H
#define VM_NBD_CONN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "export.h"
#include "nbd_server.h"

struct nbd_conn {
    struct nbd_server *srv;
    int fd;
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

/* Fixed newstyle handshake and option haggling. 0: an export was chosen (transmission
 * follows); -1: the connection ends (abort, error, or a hostile client). */
int nbd_handshake(struct nbd_conn *c);

/* Serves requests until NBD_CMD_DISC, EOF or a protocol violation. */
void nbd_transmission(struct nbd_conn *c);

/* Ensures c->buf holds len bytes. */
int nbd_conn_buffer(struct nbd_conn *c, size_t len);

#endif
