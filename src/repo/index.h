/* The disk/blob index of virtbackup-repository(5): virtual size, chunk size and one SHA-256
 * digest per chunk (32 zero bytes for an all-zero chunk, which is not stored). These are the
 * raw bytes of an index object; object.h wraps them in the envelope. */
#ifndef VB_REPO_INDEX_H
#define VB_REPO_INDEX_H

#include <stddef.h>
#include <stdint.h>

#include "digest.h"
#include "error.h"

#define REPO_INDEX_MAGIC       "VBRIDX1" /* and a NUL: 8 bytes */
#define REPO_INDEX_HEADER_SIZE 24
#define REPO_CHUNK_SIZE_MIN    (64u << 10)
#define REPO_CHUNK_SIZE_MAX    (64u << 20)

struct repo_index {
    uint64_t virtual_size;
    uint32_t chunk_size;
    size_t n; /* ceil(virtual_size / chunk_size) */
    repo_digest *digests;
};

/* True for a power of two from 64 KiB to 64 MiB. */
bool repo_chunk_size_valid(uint64_t chunk_size);

/* True when an index of virtual_size bytes in chunks of chunk_size (valid) fits in one
 * object (REPO_OBJECT_MAX_RAW bytes: 2^21 - 1 digests). */
bool repo_index_fits(uint64_t virtual_size, uint32_t chunk_size);
/* The largest virtual size whose index fits, for that chunk size (128 GiB - 64 KiB at 64 KiB,
 * 8 TiB - 4 MiB at 4 MiB). */
uint64_t repo_index_max_size(uint32_t chunk_size);

/* An index of the given sizes with every digest zero (all chunks all-zero). Refuses chunk
 * sizes repo_chunk_size_valid rejects and indexes whose bytes would exceed the object limit.
 * 0, or -1. */
int repo_index_init(struct repo_index *idx, uint64_t virtual_size, uint32_t chunk_size,
                    struct vb_error *err);

void repo_index_free(struct repo_index *idx);

/* Bytes of chunk i: chunk_size, less for a short last chunk. */
uint32_t repo_index_chunk_len(const struct repo_index *idx, size_t i);

/* The raw index bytes, malloc'ed. 0, or -1. */
int repo_index_encode(const struct repo_index *idx, void **raw, size_t *len, struct vb_error *err);

/* Strict: magic, reserved 0, a valid chunk size, len == 24 + 32 * ceil(size / chunk size).
 * idx filled (free with repo_index_free). 0, or -1. */
int repo_index_decode(const void *raw, size_t len, struct repo_index *idx, struct vb_error *err);

#endif
