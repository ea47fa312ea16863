#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "sink.h"

/* Small frame headers are coalesced; payloads of FILE_SINK_DIRECT bytes or more bypass the
 * buffer (copying them would cost more than the extra write calls). */
#define FILE_SINK_BUFFER (1024 * 1024)
#define FILE_SINK_DIRECT (64 * 1024)

struct file_sink {
    struct stream_sink base;
    int fd;
    char *partial;
    char *buf;
    size_t used;
    bool done;
};

static int write_all(int fd, const void *buf, size_t len, const char *name, struct vb_error *err)
{
    const char *p = buf;
    while (len) {
        ssize_t n = write(fd, p, len);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return vb_error_errno(err, "%s: write", name);
        }
        p += n;
        len -= (size_t)n;
    }
    return 0;
}

static int flush_buffer(struct file_sink *fs, struct vb_error *err)
{
    if (fs->used && write_all(fs->fd, fs->buf, fs->used, fs->partial, err) < 0)
        return -1;
    fs->used = 0;
    return 0;
}

static int file_sink_write(struct stream_sink *sink, const void *buf, size_t len,
                           struct vb_error *err)
{
    struct file_sink *fs = (struct file_sink *)sink;
    if (len >= FILE_SINK_DIRECT)
        return flush_buffer(fs, err) < 0 ? -1 : write_all(fs->fd, buf, len, fs->partial, err);
    if (fs->used + len > FILE_SINK_BUFFER && flush_buffer(fs, err) < 0)
        return -1;
    memcpy(fs->buf + fs->used, buf, len);
    fs->used += len;
    return 0;
}

static int fsync_parent_dir(const char *path, struct vb_error *err)
{
    char *copy = strdup(path);
    if (!copy)
        return vb_error_set(err, "out of memory");
    const char *dir = dirname(copy);
    int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd < 0) {
        vb_error_errno(err, "%s: open directory", dir);
        free(copy);
        return -1;
    }
    int rc = 0;
    if (fsync(dfd) < 0 && errno != EINVAL)
        rc = vb_error_errno(err, "%s: fsync directory", dir);
    close(dfd);
    free(copy);
    return rc;
}

/* rename() that never replaces an existing target. */
int vb_rename_noreplace(const char *from, const char *to, struct vb_error *err)
{
    if (renameat2(AT_FDCWD, from, AT_FDCWD, to, RENAME_NOREPLACE) == 0)
        return 0;
    if (errno == EEXIST)
        return vb_error_set(err, "%s: already exists, refusing to overwrite", to);
    if (errno != EINVAL && errno != ENOSYS)
        return vb_error_errno(err, "%s: rename to %s", from, to);
    /* filesystems without RENAME_NOREPLACE: check, then rename */
    if (access(to, F_OK) == 0)
        return vb_error_set(err, "%s: already exists, refusing to overwrite", to);
    if (rename(from, to) < 0)
        return vb_error_errno(err, "%s: rename to %s", from, to);
    return 0;
}

int stream_commit_file(int fd, const char *path, bool have_checksum, uint32_t checksum,
                       struct vb_error *err)
{
    char *partial = NULL, *chk = NULL, *chktmp = NULL;
    int rc = -1, cfd = -1;
    if (asprintf(&partial, "%s.partial", path) < 0 || asprintf(&chk, "%s.chksum", path) < 0 ||
        asprintf(&chktmp, "%s.chksum.partial", path) < 0) {
        vb_error_set(err, "out of memory");
        goto out;
    }
    if (fsync(fd) < 0) {
        vb_error_errno(err, "%s: fsync", partial);
        goto out;
    }
    if (have_checksum) {
        char text[16];
        int n = snprintf(text, sizeof text, "%u", checksum);
        cfd = open(chktmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
        if (cfd < 0) {
            vb_error_errno(err, "%s: create", chktmp);
            goto out;
        }
        if (write_all(cfd, text, (size_t)n, chktmp, err) < 0)
            goto out;
        if (fsync(cfd) < 0) {
            vb_error_errno(err, "%s: fsync", chktmp);
            goto out;
        }
        if (rename(chktmp, chk) < 0) {
            vb_error_errno(err, "%s: rename to %s", chktmp, chk);
            goto out;
        }
    }
    if (vb_rename_noreplace(partial, path, err) < 0)
        goto out;
    if (fsync_parent_dir(path, err) < 0)
        goto out;
    rc = 0;
out:
    if (cfd >= 0)
        close(cfd);
    if (rc < 0 && chktmp)
        unlink(chktmp);
    free(partial);
    free(chk);
    free(chktmp);
    return rc;
}

static int file_sink_commit(struct stream_sink *sink, bool have_checksum, uint32_t checksum,
                            struct vb_error *err)
{
    struct file_sink *fs = (struct file_sink *)sink;
    if (flush_buffer(fs, err) < 0)
        return -1;
    if (stream_commit_file(fs->fd, sink->name, have_checksum, checksum, err) < 0)
        return -1;
    fs->done = true;
    return 0;
}

static void file_sink_abort(struct stream_sink *sink)
{
    struct file_sink *fs = (struct file_sink *)sink;
    if (!fs->done) {
        unlink(fs->partial);
        fs->done = true;
    }
}

static void file_sink_free(struct stream_sink *sink)
{
    struct file_sink *fs = (struct file_sink *)sink;
    if (fs->fd >= 0)
        close(fs->fd);
    free(fs->partial);
    free(fs->buf);
    free(sink->name);
    free(fs);
}

static const struct stream_sink_ops file_sink_ops = {
    .write = file_sink_write,
    .commit = file_sink_commit,
    .abort = file_sink_abort,
    .free = file_sink_free,
};

struct stream_sink *stream_sink_file_open(const char *path, struct vb_error *err)
{
    struct file_sink *fs = calloc(1, sizeof *fs);
    if (!fs) {
        vb_error_set(err, "out of memory");
        return NULL;
    }
    fs->fd = -1;
    fs->base.ops = &file_sink_ops;
    fs->base.name = strdup(path);
    fs->buf = malloc(FILE_SINK_BUFFER);
    if (!fs->base.name || !fs->buf || asprintf(&fs->partial, "%s.partial", path) < 0) {
        fs->partial = NULL;
        vb_error_set(err, "out of memory");
        goto fail;
    }
    if (access(path, F_OK) == 0) {
        vb_error_set(err, "%s: already exists, refusing to overwrite", path);
        goto fail;
    }
    fs->fd = open(fs->partial, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0640);
    if (fs->fd < 0) {
        vb_error_errno(err, "%s: create", fs->partial);
        goto fail;
    }
    return &fs->base;
fail:
    fs->done = true;
    file_sink_free(&fs->base);
    return NULL;
}

void stream_sink_free(struct stream_sink *sink)
{
    if (!sink)
        return;
    sink->ops->abort(sink);
    sink->ops->free(sink);
}
