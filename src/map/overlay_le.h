/* Little-endian packing of the overlay's on-disk files (overlay_mapfile.c, overlay_maplog.c):
 * both are defined byte for byte, whatever the host's order. */
#ifndef VM_OVERLAY_LE_H
#define VM_OVERLAY_LE_H

#include <endian.h>
#include <stdint.h>
#include <string.h>

static inline void le_put32(uint8_t *p, uint32_t v)
{
    v = htole32(v);
    memcpy(p, &v, 4);
}

static inline void le_put64(uint8_t *p, uint64_t v)
{
    v = htole64(v);
    memcpy(p, &v, 8);
}

static inline uint32_t le_get32(const uint8_t *p)
{
    uint32_t v;
    memcpy(&v, p, 4);
    return le32toh(v);
}

static inline uint64_t le_get64(const uint8_t *p)
{
    uint64_t v;
    memcpy(&v, p, 8);
    return le64toh(v);
}

#endif
