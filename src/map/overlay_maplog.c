#include "overlay_maplog.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <libdeflate.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fileutil.h"
#include "overlay_le.h"
#include "read_whole.h"

#define LOG_MAGIC     "VBOVLOG1"
#define LOG_HEADER    (8 + 8 + OVERLAY_INSTANCE_LEN + 4 + 4)
#define REC_MAGIC     "VBLR"
#define REC_HEAD      (4 + 4 + 8)
#define REC_ENTRY     16
#define REC_TAIL      4
#define REC_MAX_COUNT UINT32_MAX

struct overlay_maplog {
    int fd;
    char *path;
    uint64_t end;  /* where the next record goes */
    uint64_t next; /* its sequence number */
};

uint64_t overlay_maplog_record_size(uint64_t n)
{
    return REC_HEAD + n * REC_ENTRY + REC_TAIL;
}

uint64_t overlay_maplog_record_bytes(const struct overlay_maplog *l)
{
    return l->end - LOG_HEADER;
}

/* The length of a record at p whose framing and checksum are intact, else 0. */
static size_t intact_record(const uint8_t *p, size_t avail, uint64_t max_words)
{
    if (avail < REC_HEAD + REC_ENTRY + REC_TAIL || memcmp(p, REC_MAGIC, 4) != 0)
        return 0;
    uint64_t n = le_get32(p + 4);
    if (n == 0 || n > max_words || overlay_maplog_record_size(n) > avail)
        return 0;
    size_t len = (size_t)overlay_maplog_record_size(n);
    return le_get32(p + len - REC_TAIL) == (uint32_t)libdeflate_crc32(0, p, len - REC_TAIL) ? len
                                                                                            : 0;
}

static struct overlay_maplog *new_log(int fd, const char *path, uint64_t end, uint64_t next)
{
    struct overlay_maplog *l = calloc(1, sizeof *l);
    if (!l || !(l->path = strdup(path))) {
        free(l);
        return NULL;
    }
    l->fd = fd;
    l->end = end;
    l->next = next;
    return l;
}

/* Checks the records from LOG_HEADER and applies the intact ones; sets *end to where the
 * valid records end and *next to the next sequence number. */
static int replay(const char *path, const uint8_t *b, size_t len, uint64_t max_words,
                  overlay_maplog_apply_fn apply, void *opaque, uint64_t *end, uint64_t *next,
                  struct vb_error *err)
{
    size_t pos = LOG_HEADER;
    uint64_t seq = 1;
    while (pos < len) {
        size_t rl = intact_record(b + pos, len - pos, max_words);
        if (!rl) {
            /* a torn tail only if no intact record follows */
            for (size_t q = pos + 1; q + REC_HEAD < len; q++)
                if (b[q] == 'V' && intact_record(b + q, len - q, max_words))
                    return vb_error_set(err,
                                        "%s: damaged overlay map log (record at byte %zu, "
                                        "intact records after it)",
                                        path, pos);
            break;
        }
        if (le_get64(b + pos + 8) != seq)
            return vb_error_set(err,
                                "%s: damaged overlay map log (record %" PRIu64
                                " at byte %zu, expected %" PRIu64 ")",
                                path, le_get64(b + pos + 8), pos, seq);
        uint64_t n = le_get32(b + pos + 4);
        for (uint64_t k = 0; k < n; k++) {
            const uint8_t *e = b + pos + REC_HEAD + k * REC_ENTRY;
            uint64_t word = le_get64(e), value = le_get64(e + 8);
            if (word >= max_words || !OVERLAY_WORD_VALID(value))
                return vb_error_set(
                    err, "%s: damaged overlay map log (record %" PRIu64 ", word %" PRIu64 ")", path,
                    seq, word);
            if (apply(opaque, word, value, err) < 0)
                return -1;
        }
        pos += rl;
        seq++;
    }
    *end = pos;
    *next = seq;
    return 0;
}

int overlay_maplog_open(const char *path, uint64_t generation,
                        const uint8_t instance[OVERLAY_INSTANCE_LEN], uint64_t max_words,
                        overlay_maplog_apply_fn apply, void *opaque, struct overlay_maplog **out,
                        struct vb_error *err)
{
    *out = NULL;
    int fd = open(path, O_RDWR | O_CLOEXEC | O_NOFOLLOW);
    if (fd < 0)
        return errno == ENOENT ? OVERLAY_MAPLOG_MISSING
                               : vb_error_errno(err, "%s: cannot open", path);
    uint8_t *b = NULL;
    int rc = -1;
    size_t len = 0;
    if (read_whole_fd(fd, path, &b, &len, err) < 0)
        goto out;
    if (len < LOG_HEADER || memcmp(b, LOG_MAGIC, 8) != 0 ||
        le_get32(b + 32) != (uint32_t)libdeflate_crc32(0, b, 32)) {
        vb_error_set(err, "%s: damaged overlay map log (header)", path);
        goto out;
    }
    uint64_t gen = le_get64(b + 8);
    if (memcmp(b + 16, instance, OVERLAY_INSTANCE_LEN) != 0 || gen > generation) {
        vb_error_set(err,
                     "%s: not the log of this overlay map (generation %" PRIu64
                     ", the map's is %" PRIu64 ")",
                     path, gen, generation);
        goto out;
    }
    if (gen < generation) {
        rc = OVERLAY_MAPLOG_STALE;
        goto out;
    }
    uint64_t end = LOG_HEADER, next = 1;
    if (replay(path, b, len, max_words, apply, opaque, &end, &next, err) < 0)
        goto out;
    if (end < len && (ftruncate(fd, (off_t)end) < 0 || fdatasync(fd) < 0)) {
        vb_error_errno(err, "%s: cutting off the torn last record", path);
        goto out;
    }
    if (!(*out = new_log(fd, path, end, next))) {
        vb_error_set(err, "out of memory");
        goto out;
    }
    fd = -1;
    rc = OVERLAY_MAPLOG_OPEN;
out:
    free(b);
    if (fd >= 0)
        close(fd);
    return rc;
}

struct overlay_maplog *overlay_maplog_create(const char *path, uint64_t generation,
                                             const uint8_t instance[OVERLAY_INSTANCE_LEN],
                                             struct vb_error *err)
{
    uint8_t h[LOG_HEADER] = {0};
    memcpy(h, LOG_MAGIC, 8);
    le_put64(h + 8, generation);
    memcpy(h + 16, instance, OVERLAY_INSTANCE_LEN);
    le_put32(h + 32, (uint32_t)libdeflate_crc32(0, h, 32));
    if (vb_write_file_atomic(path, h, sizeof h, err) < 0)
        return NULL;
    int fd = open(path, O_RDWR | O_CLOEXEC | O_NOFOLLOW);
    if (fd < 0) {
        vb_error_errno(err, "%s: cannot open", path);
        return NULL;
    }
    struct overlay_maplog *l = new_log(fd, path, LOG_HEADER, 1);
    if (!l) {
        close(fd);
        vb_error_set(err, "out of memory");
    }
    return l;
}

int overlay_maplog_append(struct overlay_maplog *l, const struct overlay_maplog_entry *e, size_t n,
                          struct vb_error *err)
{
    if (n == 0 || n > REC_MAX_COUNT)
        return vb_error_set(err, "%s: %zu entries do not fit one record", l->path, n);
    size_t len = (size_t)overlay_maplog_record_size(n);
    uint8_t *r = malloc(len);
    if (!r)
        return vb_error_set(err, "out of memory");
    memcpy(r, REC_MAGIC, 4);
    le_put32(r + 4, (uint32_t)n);
    le_put64(r + 8, l->next);
    for (size_t k = 0; k < n; k++) {
        le_put64(r + REC_HEAD + k * REC_ENTRY, e[k].word);
        le_put64(r + REC_HEAD + k * REC_ENTRY + 8, e[k].value);
    }
    le_put32(r + len - REC_TAIL, (uint32_t)libdeflate_crc32(0, r, len - REC_TAIL));
    int rc = 0;
    for (size_t done = 0; rc == 0 && done < len;) {
        ssize_t w = pwrite(l->fd, r + done, len - done, (off_t)(l->end + done));
        if (w < 0 && errno == EINTR)
            continue;
        if (w < 0)
            rc = vb_error_errno(err, "%s: append", l->path);
        else
            done += (size_t)w;
    }
    if (rc == 0 && fdatasync(l->fd) < 0)
        rc = vb_error_errno(err, "%s: fdatasync", l->path);
    free(r);
    if (rc < 0) {
        /* whatever part reached the file is a torn tail for the next replay; cut it now if
         * possible so that the space is free again */
        if (ftruncate(l->fd, (off_t)l->end) < 0) {
            /* left for the next replay, which cuts it */
        }
        return -1;
    }
    l->end += len;
    l->next++;
    return 0;
}

void overlay_maplog_close(struct overlay_maplog *l)
{
    if (!l)
        return;
    close(l->fd);
    free(l->path);
    free(l);
}
