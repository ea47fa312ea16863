#include "overlay_mapfile.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <libdeflate.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "overlay_le.h"
#include "read_whole.h"

#define MAP_MAGIC     "VBOVMAP2"
#define MAP_MAGIC_OLD "VBOVMAP1" /* format 1: no checksum, no log, saved only on flush */
#define MAP_HEADER    (8 + 8 + 8 + 8 + OVERLAY_INSTANCE_LEN + 8)
#define MAP_MAX_ID    (16u << 20)

uint8_t *overlay_mapfile_encode(const struct overlay_mapfile *m, uint64_t *const *chunks,
                                uint64_t nchunks, size_t *len)
{
    size_t idlen = strlen(m->identity), present = 0;
    for (uint64_t c = 0; c < nchunks; c++)
        present += chunks[c] != NULL;
    size_t n = MAP_HEADER + idlen + 8 + present * (8 + OVERLAY_CHUNK_WORDS * 8) + 4;
    uint8_t *buf = malloc(n), *p = buf;
    if (!buf)
        return NULL;
    memcpy(p, MAP_MAGIC, 8);
    le_put64(p + 8, m->size);
    le_put64(p + 16, m->block);
    le_put64(p + 24, m->generation);
    memcpy(p + 32, m->instance, OVERLAY_INSTANCE_LEN);
    le_put64(p + 32 + OVERLAY_INSTANCE_LEN, idlen);
    p += MAP_HEADER;
    memcpy(p, m->identity, idlen);
    p += idlen;
    le_put64(p, present);
    p += 8;
    for (uint64_t c = 0; c < nchunks; c++) {
        if (!chunks[c])
            continue;
        le_put64(p, c);
        p += 8;
        for (size_t w = 0; w < OVERLAY_CHUNK_WORDS; w++, p += 8)
            le_put64(p, chunks[c][w]);
    }
    uint32_t crc = htole32((uint32_t)libdeflate_crc32(0, buf, n - 4));
    memcpy(p, &crc, 4);
    *len = n;
    return buf;
}

static int read_all(const char *path, uint8_t **buf, size_t *len, struct vb_error *err)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return errno == ENOENT ? 1 : vb_error_errno(err, "%s: cannot open", path);
    int rc = read_whole_fd(fd, path, buf, len, err);
    close(fd);
    return rc;
}

int overlay_mapfile_read(const char *path, struct overlay_mapfile *m, struct vb_error *err)
{
    memset(m, 0, sizeof *m);
    int rc = read_all(path, &m->buf, &m->len, err);
    if (rc != 0)
        return rc;
    const uint8_t *b = m->buf;
    if (m->len >= 8 && memcmp(b, MAP_MAGIC_OLD, 8) == 0) {
        vb_error_set(err,
                     "%s: an overlay map of an older virtmap (format 1, without a change log), "
                     "which this version does not read: serve it with the virtmap that wrote "
                     "it, or use another --overlay directory",
                     path);
        goto fail;
    }
    if (m->len < 8 || memcmp(b, MAP_MAGIC, 8) != 0) {
        vb_error_set(err, "%s: not an overlay map", path);
        goto fail;
    }
    uint32_t crc;
    if (m->len < MAP_HEADER + 8 + 4 ||
        (memcpy(&crc, b + m->len - 4, 4),
         le32toh(crc) != (uint32_t)libdeflate_crc32(0, b, m->len - 4))) {
        vb_error_set(err, "%s: damaged overlay map (checksum mismatch)", path);
        goto fail;
    }
    m->size = le_get64(b + 8);
    m->block = le_get64(b + 16);
    m->generation = le_get64(b + 24);
    memcpy(m->instance, b + 32, OVERLAY_INSTANCE_LEN);
    uint64_t idlen = le_get64(b + 32 + OVERLAY_INSTANCE_LEN);
    if (idlen > MAP_MAX_ID || MAP_HEADER + idlen + 8 + 4 > m->len) {
        vb_error_set(err, "%s: damaged overlay map (identity length %" PRIu64 ")", path, idlen);
        goto fail;
    }
    if (!(m->identity = malloc(idlen + 1))) {
        vb_error_set(err, "out of memory");
        goto fail;
    }
    memcpy(m->identity, b + MAP_HEADER, idlen);
    m->identity[idlen] = '\0';
    m->chunks_at = MAP_HEADER + idlen;
    return 0;
fail:
    overlay_mapfile_free(m);
    return -1;
}

int overlay_mapfile_chunks(const char *path, const struct overlay_mapfile *m, uint64_t **chunks,
                           uint64_t nchunks, struct vb_error *err)
{
    const uint8_t *p = m->buf + m->chunks_at, *end = m->buf + m->len - 4;
    uint64_t present = le_get64(p);
    p += 8;
    const size_t chunk_bytes = 8 + OVERLAY_CHUNK_WORDS * 8;
    if (present > nchunks || (uint64_t)(end - p) != present * chunk_bytes)
        return vb_error_set(err, "%s: damaged overlay map (%" PRIu64 " chunks in %zu bytes)", path,
                            present, m->len);
    for (uint64_t k = 0; k < present; k++, p += chunk_bytes) {
        uint64_t c = le_get64(p);
        if (c >= nchunks || chunks[c])
            return vb_error_set(err, "%s: damaged overlay map (chunk %" PRIu64 ")", path, c);
        if (!(chunks[c] = malloc(OVERLAY_CHUNK_WORDS * 8)))
            return vb_error_set(err, "out of memory");
        for (size_t w = 0; w < OVERLAY_CHUNK_WORDS; w++) {
            uint64_t v = le_get64(p + 8 + 8 * w);
            if (!OVERLAY_WORD_VALID(v))
                return vb_error_set(err, "%s: damaged overlay map (chunk %" PRIu64 ", word %zu)",
                                    path, c, w);
            chunks[c][w] = v;
        }
    }
    return 0;
}

void overlay_mapfile_free(struct overlay_mapfile *m)
{
    free(m->identity);
    free(m->buf);
    m->identity = NULL;
    m->buf = NULL;
}
