#include "overlay.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fileutil.h"

#define CHUNK_BLOCKS (1u << 18) /* 1 GiB of 4 KiB blocks per chunk */
#define CHUNK_BYTES  ((uint64_t)CHUNK_BLOCKS * OVERLAY_BLOCK)
#define CHUNK_WORDS  (CHUNK_BLOCKS / 32) /* 2 bits per block in 64-bit words */
#define MAP_MAGIC    "VBOVMAP1"

struct overlay {
    int fd;
    char *data_path, *map_path;
    char *identity;
    uint64_t size;
    uint64_t nchunks;
    uint64_t **chunks; /* NULL: every block of the chunk is OVERLAY_BASE */
    bool dirty;
    bool temporary; /* never save the map */
};

static enum overlay_state get(const struct overlay *o, uint64_t blk)
{
    const uint64_t *c = o->chunks[blk / CHUNK_BLOCKS];
    if (!c)
        return OVERLAY_BASE;
    uint64_t i = blk % CHUNK_BLOCKS;
    return (enum overlay_state)((c[i / 32] >> (2 * (i % 32))) & 3);
}

enum overlay_state overlay_run(const struct overlay *o, uint64_t off, uint64_t max, uint64_t *run)
{
    uint64_t blk = off / OVERLAY_BLOCK;
    enum overlay_state st = get(o, blk);
    uint64_t end = off + max > o->size ? o->size : off + max;
    uint64_t pos = (blk + 1) * OVERLAY_BLOCK;
    while (pos < end) {
        uint64_t b = pos / OVERLAY_BLOCK;
        const uint64_t *c = o->chunks[b / CHUNK_BLOCKS];
        if (!c && st == OVERLAY_BASE) { /* a whole untouched chunk: skip it at once */
            pos = (b / CHUNK_BLOCKS + 1) * CHUNK_BYTES;
            continue;
        }
        if (c) {
            uint64_t i = b % CHUNK_BLOCKS;
            uint64_t w = c[i / 32];
            uint64_t same = st * 0x5555555555555555ull; /* st repeated in every 2-bit slot */
            if (i % 32 == 0 && w == same) {             /* 32 blocks alike: skip the word */
                pos += 32 * (uint64_t)OVERLAY_BLOCK;
                continue;
            }
        }
        if (get(o, b) != st)
            break;
        pos += OVERLAY_BLOCK;
    }
    *run = (pos < end ? pos : end) - off;
    return st;
}

int overlay_mark(struct overlay *o, uint64_t off, uint64_t len, enum overlay_state state,
                 struct vb_error *err)
{
    uint64_t first = off / OVERLAY_BLOCK;
    uint64_t last = (off + len + OVERLAY_BLOCK - 1) / OVERLAY_BLOCK; /* exclusive */
    for (uint64_t b = first; b < last; b++) {
        uint64_t **c = &o->chunks[b / CHUNK_BLOCKS];
        if (!*c) {
            if (state == OVERLAY_BASE)
                continue;
            *c = calloc(CHUNK_WORDS, sizeof **c);
            if (!*c)
                return vb_error_set(err, "out of memory for the overlay map");
        }
        uint64_t i = b % CHUNK_BLOCKS;
        uint64_t shift = 2 * (i % 32);
        (*c)[i / 32] = ((*c)[i / 32] & ~(3ull << shift)) | ((uint64_t)state << shift);
    }
    o->dirty = true;
    return 0;
}

int overlay_pread(struct overlay *o, uint64_t off, uint64_t len, void *dst, struct vb_error *err)
{
    for (uint64_t done = 0; done < len;) {
        ssize_t n = pread(o->fd, (char *)dst + done, len - done, (off_t)(off + done));
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return vb_error_errno(err, "%s: read at %" PRIu64, o->data_path, off + done);
        if (n == 0) { /* beyond what was ever written: a hole */
            memset((char *)dst + done, 0, len - done);
            break;
        }
        done += (uint64_t)n;
    }
    return 0;
}

int overlay_pwrite(struct overlay *o, uint64_t off, uint64_t len, const void *src,
                   struct vb_error *err)
{
    for (uint64_t done = 0; done < len;) {
        ssize_t n = pwrite(o->fd, (const char *)src + done, len - done, (off_t)(off + done));
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return vb_error_errno(err, "%s: write at %" PRIu64, o->data_path, off + done);
        done += (uint64_t)n;
    }
    return 0;
}

void overlay_punch(struct overlay *o, uint64_t off, uint64_t len)
{
    /* only a space optimisation: the map already says "zero" */
    (void)fallocate(o->fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, (off_t)off, (off_t)len);
}

static void put64(uint8_t *p, uint64_t v)
{
    for (int i = 0; i < 8; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

static uint64_t get64(const uint8_t *p)
{
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--)
        v = v << 8 | p[i];
    return v;
}

/* Map file: "VBOVMAP1", size, block size, identity length, identity, number of chunks
 * present, then per chunk its index and its words (all little-endian). */
static int save_map(struct overlay *o, struct vb_error *err)
{
    size_t idlen = strlen(o->identity), present = 0;
    for (uint64_t c = 0; c < o->nchunks; c++)
        present += o->chunks[c] != NULL;
    size_t len = 8 + 8 + 8 + 8 + idlen + 8 + present * (8 + CHUNK_WORDS * 8);
    uint8_t *buf = malloc(len), *p = buf;
    if (!buf)
        return vb_error_set(err, "out of memory");
    memcpy(p, MAP_MAGIC, 8);
    put64(p + 8, o->size);
    put64(p + 16, OVERLAY_BLOCK);
    put64(p + 24, idlen);
    memcpy(p + 32, o->identity, idlen);
    p += 32 + idlen;
    put64(p, present);
    p += 8;
    for (uint64_t c = 0; c < o->nchunks; c++) {
        if (!o->chunks[c])
            continue;
        put64(p, c);
        p += 8;
        for (size_t w = 0; w < CHUNK_WORDS; w++, p += 8)
            put64(p, o->chunks[c][w]);
    }
    int rc = vb_write_file_atomic(o->map_path, buf, len, err);
    free(buf);
    if (rc == 0)
        o->dirty = false;
    return rc;
}

static int load_map(struct overlay *o, struct vb_error *err)
{
    FILE *f = fopen(o->map_path, "rb");
    if (!f)
        return errno == ENOENT ? 0 : vb_error_errno(err, "%s: cannot open", o->map_path);
    int rc = -1;
    uint8_t hdr[32];
    char *id = NULL;
    if (fread(hdr, 1, 32, f) != 32 || memcmp(hdr, MAP_MAGIC, 8) != 0) {
        vb_error_set(err, "%s: not an overlay map", o->map_path);
        goto out;
    }
    uint64_t size = get64(hdr + 8), block = get64(hdr + 16), idlen = get64(hdr + 24);
    if (idlen > 65536 || !(id = calloc(1, idlen + 1)) || fread(id, 1, idlen, f) != idlen) {
        vb_error_set(err, "%s: truncated overlay map", o->map_path);
        goto out;
    }
    if (size != o->size || block != OVERLAY_BLOCK || strcmp(id, o->identity) != 0) {
        vb_error_set(err,
                     "%s: this overlay belongs to another chain or point in time (%s, %" PRIu64
                     " bytes), not %s: use another --overlay directory",
                     o->map_path, id, size, o->identity);
        goto out;
    }
    uint8_t b8[8];
    if (fread(b8, 1, 8, f) != 8)
        goto truncated;
    uint64_t present = get64(b8);
    for (uint64_t k = 0; k < present; k++) {
        if (fread(b8, 1, 8, f) != 8)
            goto truncated;
        uint64_t c = get64(b8);
        if (c >= o->nchunks || o->chunks[c]) {
            vb_error_set(err, "%s: corrupt overlay map (chunk %" PRIu64 ")", o->map_path, c);
            goto out;
        }
        if (!(o->chunks[c] = malloc(CHUNK_WORDS * 8))) {
            vb_error_set(err, "out of memory");
            goto out;
        }
        for (size_t w = 0; w < CHUNK_WORDS; w++) {
            if (fread(b8, 1, 8, f) != 8)
                goto truncated;
            o->chunks[c][w] = get64(b8);
        }
    }
    rc = 0;
    goto out;
truncated:
    vb_error_set(err, "%s: truncated overlay map", o->map_path);
out:
    free(id);
    fclose(f);
    return rc;
}

static void overlay_free(struct overlay *o)
{
    if (o->fd >= 0)
        close(o->fd);
    for (uint64_t c = 0; o->chunks && c < o->nchunks; c++)
        free(o->chunks[c]);
    free(o->chunks);
    free(o->data_path);
    free(o->map_path);
    free(o->identity);
    free(o);
}

struct overlay *overlay_open(const char *dir, const char *name, uint64_t size, const char *identity,
                             struct vb_error *err)
{
    struct overlay *o = calloc(1, sizeof *o);
    if (!o) {
        vb_error_set(err, "out of memory");
        return NULL;
    }
    o->fd = -1;
    o->size = size;
    o->nchunks = (size + CHUNK_BYTES - 1) / CHUNK_BYTES;
    o->chunks = calloc(o->nchunks ? o->nchunks : 1, sizeof *o->chunks);
    o->identity = strdup(identity);
    if (asprintf(&o->data_path, "%s/%s.overlay", dir, name) < 0)
        o->data_path = NULL;
    if (asprintf(&o->map_path, "%s/%s.overlay.map", dir, name) < 0)
        o->map_path = NULL;
    if (!o->chunks || !o->identity || !o->data_path || !o->map_path) {
        vb_error_set(err, "out of memory");
        goto fail;
    }
    if (load_map(o, err) < 0)
        goto fail;
    o->fd = open(o->data_path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (o->fd < 0) {
        vb_error_errno(err, "%s: cannot open the overlay file", o->data_path);
        goto fail;
    }
    struct stat st;
    if (fstat(o->fd, &st) == 0 && (uint64_t)st.st_size != size &&
        ftruncate(o->fd, (off_t)size) < 0) {
        vb_error_errno(err, "%s: cannot size the overlay file", o->data_path);
        goto fail;
    }
    return o;
fail:
    overlay_free(o);
    return NULL;
}

void overlay_set_temporary(struct overlay *o)
{
    o->temporary = true;
}

int overlay_datasync(struct overlay *o, struct vb_error *err)
{
    if (fdatasync(o->fd) < 0)
        return vb_error_errno(err, "%s: fdatasync", o->data_path);
    return 0;
}

int overlay_sync(struct overlay *o, struct vb_error *err)
{
    if (overlay_datasync(o, err) < 0)
        return -1;
    return o->dirty && !o->temporary ? save_map(o, err) : 0;
}

int overlay_close(struct overlay *o, struct vb_error *err)
{
    if (!o)
        return 0;
    int rc = overlay_sync(o, err);
    overlay_free(o);
    return rc;
}

void overlay_counts(const struct overlay *o, uint64_t *data_blocks, uint64_t *zero_blocks)
{
    *data_blocks = *zero_blocks = 0;
    for (uint64_t c = 0; c < o->nchunks; c++) {
        if (!o->chunks[c])
            continue;
        for (size_t w = 0; w < CHUNK_WORDS; w++) {
            uint64_t v = o->chunks[c][w];
            uint64_t lo = v & 0x5555555555555555ull, hi = (v >> 1) & 0x5555555555555555ull;
            *data_blocks += (uint64_t)__builtin_popcountll(lo & ~hi);
            *zero_blocks += (uint64_t)__builtin_popcountll(hi & ~lo);
        }
    }
}
