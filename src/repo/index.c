/* The disk/blob index (index.h; the byte table is in virtbackup-repository(5)). */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "index.h"
#include "object.h"

static uint64_t get_le64(const unsigned char *p)
{
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--)
        v = v << 8 | p[i];
    return v;
}

static void put_le64(unsigned char *p, uint64_t v)
{
    for (int i = 0; i < 8; i++)
        p[i] = (unsigned char)(v >> (8 * i));
}

bool repo_chunk_size_valid(uint64_t chunk_size)
{
    return chunk_size >= REPO_CHUNK_SIZE_MIN && chunk_size <= REPO_CHUNK_SIZE_MAX &&
           (chunk_size & (chunk_size - 1)) == 0;
}

/* The number of chunks, or -1 when the index would not fit in one object. */
static int chunk_count(uint64_t virtual_size, uint32_t chunk_size, size_t *n, struct vb_error *err)
{
    if (!repo_chunk_size_valid(chunk_size))
        return vb_error_set(err, "index: chunk size %u is not a power of two from %u to %u",
                            chunk_size, REPO_CHUNK_SIZE_MIN, REPO_CHUNK_SIZE_MAX);
    uint64_t count = virtual_size / chunk_size + (virtual_size % chunk_size != 0);
    uint64_t max = (REPO_OBJECT_MAX_RAW - REPO_INDEX_HEADER_SIZE) / REPO_DIGEST_SIZE;
    if (count > max)
        return vb_error_set(err,
                            "index: %llu chunks of %u bytes, more than the %llu one index holds",
                            (unsigned long long)count, chunk_size, (unsigned long long)max);
    *n = (size_t)count;
    return 0;
}

bool repo_index_fits(uint64_t virtual_size, uint32_t chunk_size)
{
    size_t n = 0;
    struct vb_error err;
    return chunk_count(virtual_size, chunk_size, &n, &err) == 0;
}

uint64_t repo_index_max_size(uint32_t chunk_size)
{
    return (uint64_t)((REPO_OBJECT_MAX_RAW - REPO_INDEX_HEADER_SIZE) / REPO_DIGEST_SIZE) *
           chunk_size;
}

int repo_index_init(struct repo_index *idx, uint64_t virtual_size, uint32_t chunk_size,
                    struct vb_error *err)
{
    size_t n = 0;
    memset(idx, 0, sizeof(*idx));
    if (chunk_count(virtual_size, chunk_size, &n, err) < 0)
        return -1;
    idx->digests = calloc(n ? n : 1, sizeof(repo_digest));
    if (!idx->digests)
        return vb_error_errno(err, "index: %zu digests", n);
    idx->virtual_size = virtual_size;
    idx->chunk_size = chunk_size;
    idx->n = n;
    return 0;
}

void repo_index_free(struct repo_index *idx)
{
    free(idx->digests);
    memset(idx, 0, sizeof(*idx));
}

uint32_t repo_index_chunk_len(const struct repo_index *idx, size_t i)
{
    uint64_t start = (uint64_t)i * idx->chunk_size;
    if (start >= idx->virtual_size)
        return 0;
    uint64_t left = idx->virtual_size - start;
    return left < idx->chunk_size ? (uint32_t)left : idx->chunk_size;
}

int repo_index_encode(const struct repo_index *idx, void **raw, size_t *len, struct vb_error *err)
{
    size_t n = 0;
    if (chunk_count(idx->virtual_size, idx->chunk_size, &n, err) < 0)
        return -1;
    if (n != idx->n)
        return vb_error_set(err, "index: %zu digests for %llu bytes in chunks of %u (%zu needed)",
                            idx->n, (unsigned long long)idx->virtual_size, idx->chunk_size, n);
    size_t total = REPO_INDEX_HEADER_SIZE + n * REPO_DIGEST_SIZE;
    unsigned char *b = malloc(total);
    if (!b)
        return vb_error_errno(err, "index: %zu bytes", total);
    memcpy(b, REPO_INDEX_MAGIC, 8); /* the magic's NUL is its eighth byte */
    put_le64(b + 8, idx->virtual_size);
    b[16] = (unsigned char)idx->chunk_size;
    b[17] = (unsigned char)(idx->chunk_size >> 8);
    b[18] = (unsigned char)(idx->chunk_size >> 16);
    b[19] = (unsigned char)(idx->chunk_size >> 24);
    memset(b + 20, 0, 4);
    if (n)
        memcpy(b + REPO_INDEX_HEADER_SIZE, idx->digests, n * REPO_DIGEST_SIZE);
    *raw = b;
    *len = total;
    return 0;
}

int repo_index_decode(const void *raw, size_t len, struct repo_index *idx, struct vb_error *err)
{
    const unsigned char *b = raw;
    memset(idx, 0, sizeof(*idx));
    if (len < REPO_INDEX_HEADER_SIZE)
        return vb_error_set(err, "index: %zu bytes, shorter than its %d-byte header", len,
                            REPO_INDEX_HEADER_SIZE);
    if (memcmp(b, REPO_INDEX_MAGIC, 8) != 0)
        return vb_error_set(err, "index: bad magic (not a VBRIDX1 index)");
    uint64_t size = get_le64(b + 8);
    uint32_t cs =
        (uint32_t)b[16] | (uint32_t)b[17] << 8 | (uint32_t)b[18] << 16 | (uint32_t)b[19] << 24;
    if (b[20] | b[21] | b[22] | b[23])
        return vb_error_set(err, "index: reserved bytes 20..23 are not zero");
    size_t n = 0;
    if (chunk_count(size, cs, &n, err) < 0)
        return -1;
    if ((len - REPO_INDEX_HEADER_SIZE) % REPO_DIGEST_SIZE != 0 ||
        (len - REPO_INDEX_HEADER_SIZE) / REPO_DIGEST_SIZE != n)
        return vb_error_set(err,
                            "index: %zu bytes, but %llu bytes in chunks of %u need %zu digests "
                            "(%zu bytes)",
                            len, (unsigned long long)size, cs, n,
                            REPO_INDEX_HEADER_SIZE + n * REPO_DIGEST_SIZE);
    if (repo_index_init(idx, size, cs, err) < 0)
        return -1;
    if (n)
        memcpy(idx->digests, b + REPO_INDEX_HEADER_SIZE, n * REPO_DIGEST_SIZE);
    return 0;
}
