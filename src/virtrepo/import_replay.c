#include "import_replay.h"

#include <inttypes.h>
#include <string.h>

/* The workers hash and compress while this thread reads the stream. */
#define IMPORT_WRITER_THREADS 2

/* Bytes of [off, off+len) that the extents from e on describe. */
static uint64_t covered(const struct stream_index *si, size_t e, uint64_t off, uint64_t len)
{
    uint64_t sum = 0;
    for (; e < si->nextents && si->extents[e].start < off + len; e++) {
        const struct stream_extent *x = &si->extents[e];
        uint64_t s = x->start > off ? x->start : off;
        uint64_t t = x->start + x->length < off + len ? x->start + x->length : off + len;
        sum += t - s;
    }
    return sum;
}

/* The touched chunk at off (len bytes) assembled in buf: the previous point's bytes, then
 * the extents from e on over them. *read: bytes taken from the stream file. */
static int build_chunk(struct repo *r, const struct repo_index *prev, size_t c,
                       const struct stream_index *si, size_t e, uint64_t off, size_t len,
                       uint8_t *buf, size_t cap, size_t *read, struct stream_read_buf *rbuf,
                       struct vb_error *err)
{
    size_t have = 0;
    if (covered(si, e, off, len) < len && prev && c < prev->n &&
        !repo_digest_is_zero(&prev->digests[c])) {
        if (repo_get_chunk_into(r, &prev->digests[c], buf, cap, &have, err) < 0)
            return vb_error_prefix(err, "chunk %zu of the previous point", c);
        if (have > len)
            have = len; /* the disk shrank */
    }
    memset(buf + have, 0, len - have);
    *read = 0;
    for (; e < si->nextents && si->extents[e].start < off + len; e++) {
        const struct stream_extent *x = &si->extents[e];
        uint64_t s = x->start > off ? x->start : off;
        uint64_t t = x->start + x->length < off + len ? x->start + x->length : off + len;
        if (x->zero) {
            memset(buf + (s - off), 0, t - s);
            continue;
        }
        if (stream_index_read(si, e, s - x->start, t - s, buf + (s - off), rbuf, err) < 0)
            return -1;
        *read += t - s;
    }
    return 0;
}

int import_replay_disk(struct repo *r, const struct repo_index *prev, bool check_prev,
                       const struct stream_index *si, repo_digest *index,
                       struct repo_disk_stats *stats, struct vb_error *err)
{
    uint64_t size = si->meta.virtual_size;
    uint32_t cs = repo_chunk_size(r);
    if (prev && prev->chunk_size != cs)
        return vb_error_set(err,
                            "the previous point's index has chunks of %" PRIu32
                            " bytes, the repository %" PRIu32,
                            prev->chunk_size, cs);
    struct repo_disk_writer *w = repo_disk_writer_new(r, size, IMPORT_WRITER_THREADS, err);
    if (!w)
        return -1;
    struct stream_read_buf rbuf = {0};
    int rc = 0;
    size_t e = 0;
    uint64_t nchunks = (size + cs - 1) / cs;
    for (uint64_t c = 0; rc == 0 && c < nchunks; c++) {
        uint64_t off = c * cs;
        size_t len = size - off < cs ? (size_t)(size - off) : cs;
        while (e < si->nextents && si->extents[e].start + si->extents[e].length <= off)
            e++;
        bool in_prev = prev && c < prev->n;
        size_t prev_len = 0;
        if (in_prev)
            prev_len = prev->virtual_size - off < cs ? (size_t)(prev->virtual_size - off) : cs;
        bool touched = e < si->nextents && si->extents[e].start < off + len;
        /* a chunk whose length changed with the disk's size is new content */
        if (!touched && in_prev && prev_len == len) {
            const repo_digest *d = &prev->digests[c];
            if (check_prev && !repo_digest_is_zero(d)) {
                uint32_t raw;
                int ok = repo_chunk_check(r, d, &raw, err);
                if (ok == 1)
                    vb_error_set(err, "chunk %" PRIu64 " of the previous point is missing", c);
                if (ok != 0) {
                    rc = -1;
                    break;
                }
            }
            rc = repo_disk_writer_put_digest(w, off, d, err);
            continue;
        }
        if (!touched && (!in_prev || repo_digest_is_zero(&prev->digests[c]))) {
            rc = repo_disk_writer_put_zero(w, off, err);
            continue;
        }
        uint8_t *buf = repo_disk_writer_buffer(w, err);
        if (!buf) {
            rc = -1;
            break;
        }
        size_t read = 0;
        rc = build_chunk(r, prev, (size_t)c, si, e, off, len, buf, cs, &read, &rbuf, err);
        if (rc < 0)
            repo_disk_writer_release(w, buf);
        else
            rc = repo_disk_writer_submit(w, off, buf, len, read, err);
    }
    if (rc == 0)
        rc = repo_disk_writer_finish(w, index, stats, err);
    repo_disk_writer_free(w);
    stream_read_buf_free(&rbuf);
    return rc;
}
