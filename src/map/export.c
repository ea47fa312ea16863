#include "export.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "chain_index.h"
#include "chksum.h"
#include "log.h"
#include "nbd_proto.h"
#include "overlay.h"
#include "overlay_identity.h"
#include "stream_verify.h"

#define CACHE_CHUNK (4u * 1024 * 1024) /* NBD_CMD_CACHE reads ahead in pieces of this size */

struct map_export {
    char *name;
    char *description;
    uint64_t size;
    /* the backup: a chain of stream files, or one raw image */
    size_t nfiles;
    struct stream_index **files;
    struct lz4_reader **lz; /* per file; NULL for uncompressed streams */
    char **names;           /* of the files, in apply order (not owned) */
    struct chain_index *ci;
    struct stream_source *raw; /* a raw image */
    int raw_fd;                /* its descriptor when it is a local file, else -1 */
    struct map_source *src;    /* or another data source (map_source.h), owned */
    struct overlay *ovl;       /* NULL: read-only */
    pthread_rwlock_t lock;
};

void export_io_free(struct export_io *io)
{
    stream_read_buf_free(&io->rb);
    lz4_scratch_free(&io->lz);
    free(io->block);
    io->block = NULL;
}

static void export_free(struct map_export *ex)
{
    for (size_t i = 0; i < ex->nfiles; i++) {
        if (ex->lz)
            lz4_reader_free(ex->lz[i]);
        if (ex->files)
            stream_index_free(ex->files[i]);
    }
    free(ex->lz);
    free(ex->files);
    chain_index_free(ex->ci);
    free(ex->names);
    stream_source_free(ex->raw);
    if (ex->src)
        ex->src->ops->close(ex->src);
    pthread_rwlock_destroy(&ex->lock);
    free(ex->name);
    free(ex->description);
    free(ex);
}

static int open_chain(struct map_export *ex, struct bset *set, const struct bset_chain *dc,
                      struct block_cache *cache, struct vb_error *err)
{
    size_t n = dc->plan.n;
    ex->files = calloc(n, sizeof *ex->files);
    ex->lz = calloc(n, sizeof *ex->lz);
    ex->names = calloc(n, sizeof *ex->names);
    if (!ex->files || !ex->lz || !ex->names)
        return vb_error_set(err, "out of memory");
    ex->nfiles = n;
    bool compressed = false;
    for (size_t i = 0; i < n; i++) {
        ex->names[i] = dc->names[dc->plan.order[i]];
        struct stream_source *src = bset_source(set, ex->names[i], err);
        if (!src || !(ex->files[i] = stream_index_build(src, err)))
            return -1;
        if (ex->files[i]->compressed) {
            compressed = true;
            if (!(ex->lz[i] = lz4_reader_new(ex->files[i], cache, err)))
                return -1;
        }
    }
    if (!(ex->ci = chain_index_build(ex->files, ex->nfiles, err)))
        return -1;
    ex->size = ex->ci->virtual_size;
    if (asprintf(&ex->description, "%s: %zu file%s up to %s%s, %" PRIu64 " data bytes", dc->dev, n,
                 n == 1 ? "" : "s", ex->names[n - 1], compressed ? " (compressed)" : "",
                 ex->ci->data_bytes) < 0)
        ex->description = NULL;
    return 0;
}

static int open_raw(struct map_export *ex, struct bset *set, const struct bset_chain *dc,
                    struct vb_error *err)
{
    if (!(ex->raw = bset_source(set, dc->names[0], err)))
        return vb_error_prefix(err, "cannot open the raw image");
    ex->raw_fd = stream_source_file_fd(ex->raw);
    ex->size = ex->raw->size;
    char *shown = bset_display(set, dc->names[0]);
    if (asprintf(&ex->description, "%s: raw image %s", dc->dev, shown ? shown : dc->names[0]) < 0)
        ex->description = NULL;
    free(shown);
    return 0;
}

struct map_export *export_open(const char *name, struct bset *set, const struct bset_chain *dc,
                               const char *overlay_dir, struct block_cache *cache,
                               struct vb_error *err)
{
    struct map_export *ex = calloc(1, sizeof *ex);
    if (!ex) {
        vb_error_set(err, "out of memory");
        return NULL;
    }
    ex->raw_fd = -1;
    pthread_rwlock_init(&ex->lock, NULL);
    if (!(ex->name = strdup(name))) {
        vb_error_set(err, "out of memory");
        goto fail;
    }
    if ((dc->raw_image ? open_raw(ex, set, dc, err) : open_chain(ex, set, dc, cache, err)) < 0)
        goto fail;
    if (!ex->description) {
        vb_error_set(err, "out of memory");
        goto fail;
    }
    if (overlay_dir) {
        /* names the chain and point in time: a saved overlay is never applied to another */
        char *id = dc->raw_image
                       ? overlay_identity_raw(ex->raw, dc->names[0], ex->size, err)
                       : overlay_identity_chain(ex->files, ex->names, ex->nfiles, ex->size, err);
        if (!id)
            goto fail;
        ex->ovl = overlay_open(overlay_dir, name, ex->size, id, err);
        free(id);
        if (!ex->ovl)
            goto fail;
    }
    return ex;
fail:
    vb_error_prefix(err, "export %s", name);
    export_free(ex);
    return NULL;
}

struct map_export *export_open_source(const char *name, struct map_source *src,
                                      const char *overlay_dir, struct vb_error *err)
{
    struct map_export *ex = calloc(1, sizeof *ex);
    if (!ex) {
        src->ops->close(src);
        vb_error_set(err, "out of memory");
        return NULL;
    }
    ex->raw_fd = -1;
    ex->src = src;
    ex->size = src->size;
    pthread_rwlock_init(&ex->lock, NULL);
    if (!(ex->name = strdup(name)) || !(ex->description = strdup(src->description))) {
        vb_error_set(err, "out of memory");
        goto fail;
    }
    if (overlay_dir && !(ex->ovl = overlay_open(overlay_dir, name, ex->size, src->identity, err)))
        goto fail;
    return ex;
fail:
    vb_error_prefix(err, "export %s", name);
    export_free(ex);
    return NULL;
}

int export_verify(struct map_export *ex, struct bset *set, struct vb_error *err)
{
    if (ex->src)
        return ex->src->ops->verify(ex->src, err) < 0 ? vb_error_prefix(err, "export %s", ex->name)
                                                      : 0;
    for (size_t i = 0; i < ex->nfiles; i++) {
        const char *name = ex->names[i];
        uint32_t sum = 0, want = 0;
        int found = 0;
        if (stream_index_check_payloads(ex->files[i], err) < 0 ||
            (found = bset_read_chksum(set, name, &want, err)) < 0 ||
            (found && stream_source_adler32(ex->files[i]->source, 0, &sum, err) < 0))
            return vb_error_prefix(err, "export %s", ex->name);
        char *shown = bset_display(set, name);
        const char *show = shown ? shown : name;
        if (found && sum != want) {
            vb_error_set(err,
                         "export %s: %s: adler32 %" PRIu32 " does not match %" PRIu32
                         " recorded in %s.chksum",
                         ex->name, show, sum, want, show);
            free(shown);
            return -1;
        }
        if (!found)
            vb_warn("%s: no .chksum: only the structure%s could be verified", show,
                    ex->files[i]->compressed ? " and the LZ4 checksums" : "");
        else
            vb_info("%s: verified (adler32 %" PRIu32 ")", show, sum);
        free(shown);
    }
    return 0;
}

int export_close(struct map_export *ex, struct vb_error *err)
{
    if (!ex)
        return 0;
    int rc = 0;
    if (ex->ovl) {
        uint64_t data, zero;
        overlay_counts(ex->ovl, &data, &zero);
        vb_debug("export %s: overlay holds %" PRIu64 " written and %" PRIu64 " zeroed blocks",
                 ex->name, data, zero);
        rc = overlay_close(ex->ovl, err);
    }
    export_free(ex);
    return rc;
}

void export_overlay_temporary(struct map_export *ex)
{
    if (ex->ovl)
        overlay_set_temporary(ex->ovl);
}

const char *export_name(const struct map_export *ex)
{
    return ex->name;
}

uint64_t export_size(const struct map_export *ex)
{
    return ex->size;
}

bool export_readonly(const struct map_export *ex)
{
    return ex->ovl == NULL;
}

const char *export_description(const struct map_export *ex)
{
    return ex->description;
}

/* The backup's content (below the overlay). */
static int base_read(struct map_export *ex, struct export_io *io, uint64_t off, size_t len,
                     uint8_t *dst, struct vb_error *err)
{
    if (ex->src)
        return ex->src->ops->read(ex->src, off, len, dst, err);
    if (ex->raw) {
        ssize_t n = ex->raw->ops->pread(ex->raw, dst, len, off, err);
        if (n < 0)
            return -1;
        if ((size_t)n < len) /* beyond the end of the image: zeroes */
            memset(dst + n, 0, len - (size_t)n);
        return 0;
    }
    const struct chain_index *ci = ex->ci;
    uint64_t pos = off, end = off + len;
    for (size_t s = chain_index_lookup(ci, off); pos < end; s++) {
        if (s == ci->nsegs || ci->segs[s].start >= end) { /* never described: zeroes */
            memset(dst + (pos - off), 0, end - pos);
            break;
        }
        const struct chain_segment *seg = &ci->segs[s];
        if (seg->start > pos) {
            memset(dst + (pos - off), 0, seg->start - pos);
            pos = seg->start;
        }
        uint64_t stop = seg->start + seg->length < end ? seg->start + seg->length : end;
        if (seg->zero) {
            memset(dst + (pos - off), 0, stop - pos);
        } else {
            const struct stream_index *idx = ci->files[seg->file];
            uint64_t in = pos - idx->extents[seg->extent].start;
            int rc = ex->lz[seg->file]
                         ? lz4_reader_read(ex->lz[seg->file], seg->extent, in, stop - pos,
                                           dst + (pos - off), &io->lz, err)
                         : stream_index_read(idx, seg->extent, in, stop - pos, dst + (pos - off),
                                             &io->rb, err);
            if (rc < 0)
                return -1;
        }
        pos = stop;
    }
    return 0;
}

static int read_locked(struct map_export *ex, struct export_io *io, uint64_t off, size_t len,
                       uint8_t *dst, struct vb_error *err)
{
    if (!ex->ovl)
        return base_read(ex, io, off, len, dst, err);
    for (uint64_t pos = off, run; pos < off + len; pos += run) {
        enum overlay_state st = overlay_run(ex->ovl, pos, off + len - pos, &run);
        uint8_t *out = dst + (pos - off);
        int rc = 0;
        if (st == OVERLAY_DATA)
            rc = overlay_pread(ex->ovl, pos, run, out, err);
        else if (st == OVERLAY_ZERO)
            memset(out, 0, run);
        else
            rc = base_read(ex, io, pos, run, out, err);
        if (rc < 0)
            return -1;
    }
    return 0;
}

int export_read(struct map_export *ex, struct export_io *io, uint64_t off, size_t len, void *dst,
                struct vb_error *err)
{
    pthread_rwlock_rdlock(&ex->lock);
    int rc = read_locked(ex, io, off, len, dst, err);
    pthread_rwlock_unlock(&ex->lock);
    return rc;
}

/* Applies a write (src) or zeroing (src NULL) to the overlay: whole blocks directly, the
 * partial blocks at either end by read-modify-write so that the map stays per block. */
static int modify(struct map_export *ex, struct export_io *io, uint64_t off, uint64_t len,
                  const uint8_t *src, struct vb_error *err)
{
    if (!io->block && !(io->block = malloc(OVERLAY_BLOCK)))
        return vb_error_set(err, "out of memory");
    uint64_t end = off + len;
    for (uint64_t pos = off; pos < end;) {
        uint64_t blk = pos / OVERLAY_BLOCK * OVERLAY_BLOCK;
        uint64_t bend = blk + OVERLAY_BLOCK < ex->size ? blk + OVERLAY_BLOCK : ex->size;
        if (pos == blk && end >= bend) { /* a run of whole blocks */
            uint64_t run_end = end == ex->size ? end : end / OVERLAY_BLOCK * OVERLAY_BLOCK;
            if (src) {
                if (overlay_pwrite(ex->ovl, pos, run_end - pos, src + (pos - off), err) < 0 ||
                    overlay_mark(ex->ovl, pos, run_end - pos, OVERLAY_DATA, err) < 0)
                    return -1;
            } else {
                if (overlay_mark(ex->ovl, pos, run_end - pos, OVERLAY_ZERO, err) < 0)
                    return -1;
                overlay_punch(ex->ovl, pos, run_end - pos);
            }
            pos = run_end;
            continue;
        }
        uint64_t stop = end < bend ? end : bend;
        uint8_t *b = io->block;
        if (read_locked(ex, io, blk, bend - blk, b, err) < 0)
            return -1;
        if (src)
            memcpy(b + (pos - blk), src + (pos - off), stop - pos);
        else
            memset(b + (pos - blk), 0, stop - pos);
        if (overlay_pwrite(ex->ovl, blk, bend - blk, b, err) < 0 ||
            overlay_mark(ex->ovl, blk, bend - blk, OVERLAY_DATA, err) < 0)
            return -1;
        pos = stop;
    }
    return 0;
}

static int modify_locked(struct map_export *ex, struct export_io *io, uint64_t off, uint64_t len,
                         const void *src, bool fua, struct vb_error *err)
{
    if (!ex->ovl)
        return vb_error_set(err, "export %s is read-only", ex->name);
    pthread_rwlock_wrlock(&ex->lock);
    int rc = modify(ex, io, off, len, src, err);
    pthread_rwlock_unlock(&ex->lock);
    /* FUA: the write must be durable when we reply, data and map, as after a flush */
    if (rc == 0 && fua)
        rc = overlay_sync(ex->ovl, &ex->lock, err);
    return rc;
}

int export_write(struct map_export *ex, struct export_io *io, uint64_t off, size_t len,
                 const void *src, bool fua, struct vb_error *err)
{
    return modify_locked(ex, io, off, len, src, fua, err);
}

int export_zero(struct map_export *ex, struct export_io *io, uint64_t off, uint64_t len, bool fua,
                struct vb_error *err)
{
    return modify_locked(ex, io, off, len, NULL, fua, err);
}

int export_flush(struct map_export *ex, struct vb_error *err)
{
    if (!ex->ovl)
        return 0;
    /* writers wait only while the changes to save are collected, not while they are synced */
    return overlay_sync(ex->ovl, &ex->lock, err);
}

int export_cache(struct map_export *ex, struct export_io *io, uint64_t off, uint64_t len,
                 struct vb_error *err)
{
    if (ex->src) {
        ex->src->ops->prefetch(ex->src, off, len);
        return 0;
    }
    if (ex->raw) {
        if (ex->raw_fd >= 0)
            (void)posix_fadvise(ex->raw_fd, (off_t)off, (off_t)len, POSIX_FADV_WILLNEED);
        return 0;
    }
    void *buf = malloc(len < CACHE_CHUNK ? len : CACHE_CHUNK);
    if (!buf)
        return vb_error_set(err, "out of memory");
    int rc = 0;
    for (uint64_t pos = off; rc == 0 && pos < off + len; pos += CACHE_CHUNK) {
        size_t n = off + len - pos < CACHE_CHUNK ? (size_t)(off + len - pos) : CACHE_CHUNK;
        rc = export_read(ex, io, pos, n, buf, err);
    }
    free(buf);
    return rc;
}

/* The backup's allocation at off: flags and how far they hold (at most max). */
static uint32_t base_status(struct map_export *ex, uint64_t off, uint64_t max, uint64_t *run)
{
    const uint32_t hole = NBD_STATE_HOLE | NBD_STATE_ZERO;
    if (ex->src)
        return ex->src->ops->status(ex->src, off, max, run);
    if (ex->raw && ex->raw_fd < 0) { /* an entry of a zip: say "data", which is always correct */
        *run = max;
        return 0;
    }
    if (ex->raw_fd >= 0) {
        off_t data = lseek(ex->raw_fd, (off_t)off, SEEK_DATA);
        if (data < 0 && errno == ENXIO) { /* nothing but holes to the end of the file */
            *run = max;
            return hole;
        }
        if (data < 0) { /* no SEEK_DATA support: say "data", which is always correct */
            *run = max;
            return 0;
        }
        if ((uint64_t)data > off) {
            *run = (uint64_t)data - off < max ? (uint64_t)data - off : max;
            return hole;
        }
        off_t h = lseek(ex->raw_fd, (off_t)off, SEEK_HOLE);
        uint64_t end = h < 0 ? off + max : (uint64_t)h;
        *run = end - off < max ? end - off : max;
        if (*run == 0)
            *run = max;
        return 0;
    }
    const struct chain_index *ci = ex->ci;
    size_t s = chain_index_lookup(ci, off);
    uint64_t lim;
    uint32_t flags;
    if (s == ci->nsegs) {
        lim = UINT64_MAX;
        flags = hole;
    } else if (ci->segs[s].start > off) {
        lim = ci->segs[s].start - off;
        flags = hole;
    } else {
        lim = ci->segs[s].start + ci->segs[s].length - off;
        flags = ci->segs[s].zero ? hole : 0;
    }
    *run = lim < max ? lim : max;
    return flags;
}

int export_block_status(struct map_export *ex, uint64_t off, uint64_t len, size_t max_extents,
                        export_extent_fn fn, void *opaque, struct vb_error *err)
{
    (void)err;
    pthread_rwlock_rdlock(&ex->lock);
    uint64_t pos = off, end = off + len, cur_len = 0;
    uint32_t cur_flags = 0;
    size_t reported = 0;
    int stop = 0;
    while (pos < end && !stop) {
        uint64_t run;
        uint32_t flags;
        enum overlay_state st = ex->ovl ? overlay_run(ex->ovl, pos, end - pos, &run) : OVERLAY_BASE;
        if (!ex->ovl)
            run = end - pos;
        if (st == OVERLAY_DATA)
            flags = 0;
        else if (st == OVERLAY_ZERO)
            flags = NBD_STATE_HOLE | NBD_STATE_ZERO;
        else
            flags = base_status(ex, pos, run, &run);
        if (cur_len && flags == cur_flags) {
            cur_len += run;
        } else {
            if (cur_len) {
                stop = fn(opaque, cur_len, cur_flags);
                if (++reported >= max_extents)
                    stop = 1;
            }
            cur_len = run;
            cur_flags = flags;
        }
        pos += run;
    }
    if (!stop && cur_len)
        fn(opaque, cur_len, cur_flags);
    pthread_rwlock_unlock(&ex->lock);
    return 0;
}
