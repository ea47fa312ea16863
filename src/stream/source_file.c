#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "source.h"

struct file_source {
    struct stream_source base;
    int fd;
};

static ssize_t file_source_pread(struct stream_source *src, void *buf, size_t len, uint64_t off,
                                 struct vb_error *err)
{
    struct file_source *fsrc = (struct file_source *)src;
    size_t done = 0;
    while (done < len) {
        ssize_t n = pread(fsrc->fd, (char *)buf + done, len - done, (off_t)(off + done));
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return vb_error_errno(err, "%s: offset %" PRIu64 ": read", src->name, off + done);
        }
        if (n == 0)
            break;
        done += (size_t)n;
    }
    return (ssize_t)done;
}

static void file_source_free(struct stream_source *src)
{
    struct file_source *fsrc = (struct file_source *)src;
    if (fsrc->fd >= 0)
        close(fsrc->fd);
    free(src->name);
    free(fsrc);
}

static const struct stream_source_ops file_source_ops = {
    .pread = file_source_pread,
    .free = file_source_free,
};

/* Takes fd over (closed on failure too). */
static struct stream_source *fd_source(int fd, const char *name, struct vb_error *err)
{
    struct file_source *fsrc = calloc(1, sizeof *fsrc);
    if (!fsrc || !(fsrc->base.name = strdup(name))) {
        free(fsrc);
        close(fd);
        vb_error_set(err, "out of memory");
        return NULL;
    }
    fsrc->base.ops = &file_source_ops;
    fsrc->fd = fd;
    struct stat st;
    if (fstat(fsrc->fd, &st) < 0) {
        vb_error_errno(err, "%s: stat", name);
        goto fail;
    }
    if (!S_ISREG(st.st_mode) && !S_ISBLK(st.st_mode)) {
        vb_error_set(err, "%s: not a regular file", name);
        goto fail;
    }
    fsrc->base.size = (uint64_t)st.st_size;
    posix_fadvise(fsrc->fd, 0, 0, POSIX_FADV_SEQUENTIAL);
    return &fsrc->base;
fail:
    file_source_free(&fsrc->base);
    return NULL;
}

struct stream_source *stream_source_file_open(const char *path, struct vb_error *err)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        vb_error_errno(err, "%s: open", path);
        return NULL;
    }
    return fd_source(fd, path, err);
}

struct stream_source *stream_source_file_open_nofollow(const char *path, struct vb_error *err)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    if (fd < 0) {
        vb_error_errno(err, "%s: open", path);
        return NULL;
    }
    struct stat st;
    if (fstat(fd, &st) == 0 && !S_ISREG(st.st_mode)) {
        close(fd);
        vb_error_set(err, "%s: not a regular file", path);
        return NULL;
    }
    return fd_source(fd, path, err);
}

int stream_source_file_fd(const struct stream_source *src)
{
    return src->ops == &file_source_ops ? ((const struct file_source *)src)->fd : -1;
}

int stream_source_read_exact(struct stream_source *src, void *buf, size_t len, uint64_t off,
                             struct vb_error *err)
{
    ssize_t n = src->ops->pread(src, buf, len, off, err);
    if (n < 0)
        return -1;
    if ((size_t)n != len)
        return vb_error_set(err,
                            "%s: offset %" PRIu64 ": truncated (wanted %zu bytes, file ends "
                            "at %" PRIu64 ")",
                            src->name, off, len, src->size);
    return 0;
}

void stream_source_free(struct stream_source *src)
{
    if (src)
        src->ops->free(src);
}
