/* The one path of every byte of an NBD connection: a plain socket, or the TLS session that
 * NBD_OPT_STARTTLS put on top of it. Whole reads and writes (EINTR, short transfers, no
 * SIGPIPE), an optional deadline that bounds every wait (the handshake's), and big-endian
 * packing. */
#ifndef VM_NBD_WIRE_H
#define VM_NBD_WIRE_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <sys/uio.h>

struct nbd_wire {
    int fd;
    void *tls;           /* gnutls_session_t once STARTTLS succeeded (nbd_tls.c), else NULL */
    int64_t deadline_ms; /* CLOCK_MONOTONIC milliseconds after which I/O fails; 0: none */
};

/* 0 on success, -1 on error or EOF (errno 0 for a clean EOF before the first byte,
 * ETIMEDOUT once the deadline passed). */
int wire_read(struct nbd_wire *w, void *buf, size_t len);
int wire_write(struct nbd_wire *w, const void *buf, size_t len);
int wire_writev(struct nbd_wire *w, struct iovec *iov, int iovcnt);
/* Reads and drops len bytes (a payload we refuse but must consume to stay in sync). */
int wire_discard(struct nbd_wire *w, uint64_t len);

/* Every wait from now on ends at most ms milliseconds later; 0 removes the deadline. */
void wire_set_deadline(struct nbd_wire *w, unsigned ms);
/* Milliseconds left before the deadline (0 when it passed), or -1 without one. */
int wire_time_left(const struct nbd_wire *w);

/* One recv/send on the socket itself, waiting no longer than the deadline: what the TLS
 * layer reads and writes its records with. Return and errno as recv(2)/send(2). */
ssize_t wire_recv_raw(struct nbd_wire *w, void *buf, size_t len);
ssize_t wire_send_raw(struct nbd_wire *w, const void *buf, size_t len);

static inline void put_be16(uint8_t *p, uint16_t v)
{
    p[0] = (uint8_t)(v >> 8);
    p[1] = (uint8_t)v;
}
static inline void put_be32(uint8_t *p, uint32_t v)
{
    put_be16(p, (uint16_t)(v >> 16));
    put_be16(p + 2, (uint16_t)v);
}
static inline void put_be64(uint8_t *p, uint64_t v)
{
    put_be32(p, (uint32_t)(v >> 32));
    put_be32(p + 4, (uint32_t)v);
}
static inline uint16_t get_be16(const uint8_t *p)
{
    return (uint16_t)(p[0] << 8 | p[1]);
}
static inline uint32_t get_be32(const uint8_t *p)
{
    return (uint32_t)get_be16(p) << 16 | get_be16(p + 2);
}
static inline uint64_t get_be64(const uint8_t *p)
{
    return (uint64_t)get_be32(p) << 32 | get_be32(p + 4);
}

#endif
