/* Socket I/O for the NBD server: whole reads and writes (EINTR, short transfers, no
 * SIGPIPE) and big-endian packing. */
#ifndef VM_NBD_WIRE_H
#define VM_NBD_WIRE_H

#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

/* 0 on success, -1 on error or EOF (errno 0 for a clean EOF before the first byte). */
int wire_read(int fd, void *buf, size_t len);
int wire_write(int fd, const void *buf, size_t len);
int wire_writev(int fd, struct iovec *iov, int iovcnt);
/* Reads and drops len bytes (a payload we refuse but must consume to stay in sync). */
int wire_discard(int fd, uint64_t len);

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
