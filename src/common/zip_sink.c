#include "zip_sink.h"

#include <archive.h>
#include <archive_entry.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

struct vb_zip_writer {
    struct archive *a;
    bool entry_open;
    bool failed;
};

struct zip_entry_sink {
    struct stream_sink base;
    struct vb_zip_writer *zw;
    bool done;
};

static int zip_error(struct vb_zip_writer *zw, struct vb_error *err, const char *what)
{
    zw->failed = true;
    return vb_error_set(err, "zip output: %s: %s", what, archive_error_string(zw->a));
}

struct vb_zip_writer *vb_zip_writer_open_fd(int fd, struct vb_error *err)
{
    struct vb_zip_writer *zw = calloc(1, sizeof *zw);
    if (!zw || !(zw->a = archive_write_new())) {
        free(zw);
        vb_error_set(err, "out of memory");
        return NULL;
    }
    /* no padding after the archive: a zip is read from its end */
    if (archive_write_set_format_zip(zw->a) != ARCHIVE_OK ||
        archive_write_set_options(zw->a, "zip:compression=store,zip:zip64,zip:hdrcharset=UTF-8") !=
            ARCHIVE_OK ||
        archive_write_set_bytes_per_block(zw->a, 64 * 1024) != ARCHIVE_OK ||
        archive_write_set_bytes_in_last_block(zw->a, 1) != ARCHIVE_OK ||
        archive_write_open_fd(zw->a, fd) != ARCHIVE_OK) {
        zip_error(zw, err, "cannot start the archive");
        archive_write_free(zw->a);
        free(zw);
        return NULL;
    }
    return zw;
}

static int begin_entry(struct vb_zip_writer *zw, const char *name, long long size,
                       struct vb_error *err)
{
    if (zw->failed)
        return vb_error_set(err, "zip output already failed");
    if (zw->entry_open)
        return vb_error_set(err, "zip output: entry %s while another is open", name);
    struct archive_entry *e = archive_entry_new();
    if (!e)
        return vb_error_set(err, "out of memory");
    archive_entry_set_pathname_utf8(e, name); /* names are UTF-8 whatever the locale */
    archive_entry_set_filetype(e, AE_IFREG);
    archive_entry_set_perm(e, 0640);
    archive_entry_set_mtime(e, time(NULL), 0);
    if (size >= 0)
        archive_entry_set_size(e, size);
    int rc = archive_write_header(zw->a, e);
    archive_entry_free(e);
    if (rc != ARCHIVE_OK) /* ARCHIVE_WARN too: a name that could not be stored is an error */
        return zip_error(zw, err, name);
    zw->entry_open = true;
    return 0;
}

static int write_data(struct vb_zip_writer *zw, const void *buf, size_t len, const char *name,
                      struct vb_error *err)
{
    const char *p = buf;
    while (len) {
        la_ssize_t n = archive_write_data(zw->a, p, len);
        if (n <= 0)
            return zip_error(zw, err, name);
        p += n;
        len -= (size_t)n;
    }
    return 0;
}

static int end_entry(struct vb_zip_writer *zw, const char *name, struct vb_error *err)
{
    zw->entry_open = false;
    if (archive_write_finish_entry(zw->a) != ARCHIVE_OK)
        return zip_error(zw, err, name);
    return 0;
}

int vb_zip_add_buffer(struct vb_zip_writer *zw, const char *name, const void *data, size_t len,
                      struct vb_error *err)
{
    if (begin_entry(zw, name, (long long)len, err) < 0 || write_data(zw, data, len, name, err) < 0)
        return -1;
    return end_entry(zw, name, err);
}

int vb_zip_add_file(struct vb_zip_writer *zw, const char *name, const char *path,
                    struct vb_error *err)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return vb_error_errno(err, "%s: open", path);
    off_t size = lseek(fd, 0, SEEK_END);
    lseek(fd, 0, SEEK_SET);
    int rc = begin_entry(zw, name, (long long)size, err);
    char buf[1 << 16];
    off_t done = 0;
    while (rc == 0 && done < size) {
        ssize_t n = read(fd, buf, sizeof buf);
        if (n <= 0) {
            rc = vb_error_errno(err, "%s: read", path);
            zw->failed = true;
            break;
        }
        rc = write_data(zw, buf, (size_t)n, name, err);
        done += n;
    }
    close(fd);
    return rc == 0 ? end_entry(zw, name, err) : -1;
}

static int entry_write(struct stream_sink *sink, const void *buf, size_t len, struct vb_error *err)
{
    struct zip_entry_sink *zs = (struct zip_entry_sink *)sink;
    return write_data(zs->zw, buf, len, sink->name, err);
}

static int entry_commit(struct stream_sink *sink, bool have_checksum, uint32_t checksum,
                        struct vb_error *err)
{
    struct zip_entry_sink *zs = (struct zip_entry_sink *)sink;
    if (end_entry(zs->zw, sink->name, err) < 0)
        return -1;
    zs->done = true;
    if (!have_checksum)
        return 0;
    char name[4200], text[16];
    snprintf(name, sizeof name, "%s.chksum", sink->name);
    int n = snprintf(text, sizeof text, "%u", checksum);
    return vb_zip_add_buffer(zs->zw, name, text, (size_t)n, err);
}

static void entry_abort(struct stream_sink *sink)
{
    struct zip_entry_sink *zs = (struct zip_entry_sink *)sink;
    if (!zs->done) {
        /* an entry cannot be taken back from a pipe: the whole archive is abandoned */
        zs->zw->failed = true;
        zs->done = true;
    }
}

static void entry_free(struct stream_sink *sink)
{
    free(sink->name);
    free(sink);
}

static const struct stream_sink_ops zip_entry_ops = {
    .write = entry_write,
    .commit = entry_commit,
    .abort = entry_abort,
    .free = entry_free,
};

struct stream_sink *vb_zip_entry_sink(struct vb_zip_writer *zw, const char *name,
                                      struct vb_error *err)
{
    struct zip_entry_sink *zs = calloc(1, sizeof *zs);
    if (!zs || !(zs->base.name = strdup(name))) {
        free(zs);
        vb_error_set(err, "out of memory");
        return NULL;
    }
    zs->base.ops = &zip_entry_ops;
    zs->zw = zw;
    if (begin_entry(zw, name, -1, err) < 0) {
        zs->done = true;
        entry_free(&zs->base);
        return NULL;
    }
    return &zs->base;
}

int vb_zip_writer_close(struct vb_zip_writer *zw, bool ok, struct vb_error *err)
{
    int rc = 0;
    if (!zw)
        return 0;
    if (ok && !zw->failed && !zw->entry_open) {
        if (archive_write_close(zw->a) != ARCHIVE_OK)
            rc = vb_error_set(err, "zip output: cannot finish the archive: %s",
                              archive_error_string(zw->a));
    } else {
        archive_write_fail(zw->a); /* free() must not write a central directory */
        rc = ok ? vb_error_set(err, "zip output: the archive was abandoned") : 0;
    }
    archive_write_free(zw->a);
    free(zw);
    return rc;
}
