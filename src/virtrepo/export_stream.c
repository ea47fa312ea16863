/* A snapshot's disk as a full's stream file, and a blob as a plain file (virtrepo(1), EXPORT).
 * The stream goes through the stream library's writer, as a backup's does, so the file is
 * what virtbackup -l full writes for the same content (virtbackup-stream(5)): META, then the
 * extents in ascending order, runs of all-zero chunks as ZERO frames and runs of stored
 * chunks as DATA frames, optionally lz4-compressed, and its adler32 in .chksum. */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "export.h"
#include "index.h"
#include "progress.h"
#include "stream_writer.h"

/* Bytes of chunk k of idx (the last one may be short). */
static uint64_t chunk_len(const struct repo_index *idx, size_t k)
{
    uint64_t start = (uint64_t)k * idx->chunk_size;
    uint64_t left = idx->virtual_size - start;
    return left < idx->chunk_size ? left : idx->chunk_size;
}

/* Chunk k's content into buf (the index's chunk size), its length checked against the index. */
static int fetch_chunk(struct repo *r, const struct repo_index *idx, size_t k, void *buf,
                       struct vb_error *err)
{
    size_t got = 0;
    uint64_t off = (uint64_t)k * idx->chunk_size;
    if (repo_get_chunk_into(r, &idx->digests[k], buf, idx->chunk_size, &got, err) < 0)
        return vb_error_prefix(err, "offset %" PRIu64, off);
    if (got != chunk_len(idx, k)) {
        char hex[REPO_DIGEST_HEX + 1];
        repo_digest_hex(&idx->digests[k], hex);
        return vb_error_set(
            err, "chunk %s at offset %" PRIu64 " holds %zu bytes, the index wants %" PRIu64, hex,
            off, got, chunk_len(idx, k));
    }
    return 0;
}

/* The frames of the whole disk: runs of chunks alike in being all-zero or not. */
static int write_frames(struct repo *r, const struct repo_index *idx, struct stream_writer *w,
                        struct progress *p, struct vb_error *err)
{
    void *buf = malloc(idx->chunk_size);
    if (!buf)
        return vb_error_set(err, "out of memory");
    int rc = 0;
    for (size_t i = 0; rc == 0 && i < idx->n;) {
        bool zero = repo_digest_is_zero(&idx->digests[i]);
        size_t j = i + 1;
        while (j < idx->n && repo_digest_is_zero(&idx->digests[j]) == zero)
            j++;
        uint64_t start = (uint64_t)i * idx->chunk_size;
        uint64_t end = (uint64_t)(j - 1) * idx->chunk_size + chunk_len(idx, j - 1);
        if (zero) {
            rc = stream_writer_zero(w, start, end - start, err);
        } else {
            rc = stream_writer_data_begin(w, start, end - start, err);
            for (size_t k = i; rc == 0 && k < j; k++) {
                rc = fetch_chunk(r, idx, k, buf, err);
                if (rc == 0)
                    rc = stream_writer_data_append(w, buf, chunk_len(idx, k), err);
                progress_add(p, chunk_len(idx, k));
            }
            if (rc == 0)
                rc = stream_writer_data_end(w, err);
        }
        i = j;
    }
    free(buf);
    return rc;
}

int export_disk_stream(struct repo *r, const struct repo_manifest_disk *d, const char *path,
                       struct export_disk_opts *o, struct vb_error *err)
{
    struct repo_index idx = {0};
    if (repo_get_index(r, &d->index, &idx, err) < 0)
        return vb_error_prefix(err, "disk %s", d->target);
    int rc = 0;
    if (idx.virtual_size != d->virtual_size)
        rc = vb_error_set(err,
                          "disk %s: its index holds %" PRIu64 " bytes, the manifest says %" PRIu64,
                          d->target, idx.virtual_size, d->virtual_size);
    struct stream_meta meta;
    stream_meta_init(&meta);
    meta.virtual_size = idx.virtual_size;
    for (size_t k = 0; k < idx.n; k++)
        if (!repo_digest_is_zero(&idx.digests[k]))
            meta.data_size += chunk_len(&idx, k);
    meta.incremental = false;
    meta.compressed = o->compress;
    if (rc == 0 && (STREAM_META_SET(&meta, date, o->date, err) < 0 ||
                    STREAM_META_SET(&meta, disk_name, d->target, err) < 0 ||
                    STREAM_META_SET(&meta, disk_format, d->format ? d->format : "raw", err) < 0 ||
                    STREAM_META_SET(&meta, checkpoint_name, EXPORT_IDENT, err) < 0 ||
                    STREAM_META_SET(&meta, parent_checkpoint, "", err) < 0))
        rc = vb_error_prefix(err, "disk %s", d->target);
    struct stream_writer *w = NULL;
    if (rc == 0) {
        struct stream_sink *sink = stream_sink_file_open(path, err);
        w = sink ? stream_writer_new(sink, &meta, err) : NULL;
        if (!w)
            rc = -1;
    }
    struct progress *p = NULL;
    if (rc == 0) {
        p = progress_new(d->target, meta.data_size,
                         o->quiet ? PROGRESS_NONE : progress_mode_for_stderr(false));
        rc = write_frames(r, &idx, w, p, err);
        uint32_t sum;
        if (rc == 0)
            rc = stream_writer_finish(w, &sum, err);
        progress_finish(p, rc == 0);
        progress_free(p);
        if (rc < 0)
            vb_error_prefix(err, "disk %s", d->target);
        o->bytes_data = meta.data_size;
        o->bytes_file = stream_writer_bytes(w);
    }
    stream_writer_free(w); /* an unfinished stream's .partial goes with it */
    repo_index_free(&idx);
    return rc;
}

static int write_all(int fd, const void *buf, size_t len, const char *path, struct vb_error *err)
{
    const char *p = buf;
    while (len) {
        ssize_t n = write(fd, p, len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return vb_error_errno(err, "%s: write", path);
        p += n;
        len -= (size_t)n;
    }
    return 0;
}

int export_blob_file(struct repo *r, const struct repo_manifest_blob *b, const char *path,
                     struct vb_error *err)
{
    const char *kind = repo_blob_kind_name(b->kind);
    struct repo_index idx = {0};
    if (repo_get_index(r, &b->index, &idx, err) < 0)
        return vb_error_prefix(err, "%s %s", kind, b->path);
    int rc = 0;
    if (idx.virtual_size != b->size)
        rc = vb_error_set(err, "its index holds %" PRIu64 " bytes, the manifest says %" PRIu64,
                          idx.virtual_size, b->size);
    void *buf = rc == 0 ? malloc(idx.chunk_size) : NULL;
    if (rc == 0 && !buf)
        rc = vb_error_set(err, "out of memory");
    int fd = -1;
    if (rc == 0 &&
        (fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0644)) < 0)
        rc = vb_error_errno(err, "%s: create", path);
    for (size_t k = 0; rc == 0 && k < idx.n; k++) {
        if (repo_digest_is_zero(&idx.digests[k]))
            memset(buf, 0, chunk_len(&idx, k));
        else
            rc = fetch_chunk(r, &idx, k, buf, err);
        if (rc == 0)
            rc = write_all(fd, buf, chunk_len(&idx, k), path, err);
    }
    if (rc == 0 && fsync(fd) < 0)
        rc = vb_error_errno(err, "%s: fsync", path);
    if (fd >= 0 && close(fd) < 0 && rc == 0)
        rc = vb_error_errno(err, "%s: close", path);
    free(buf);
    repo_index_free(&idx);
    if (rc < 0)
        return vb_error_prefix(err, "%s %s", kind, b->path);
    return 0;
}
