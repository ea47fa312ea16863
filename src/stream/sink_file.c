#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#include "sink.h"
#include "util.h"

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
    return vb_write_all(fd, buf, len) < 0 ? vb_error_errno(err, "%s: write", name) : 0;
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
    /* Filesystems without RENAME_NOREPLACE (NFS, older FUSE): link(2) fails with EEXIST
     * atomically when the target exists. */
    if (link(from, to) == 0) {
        if (unlink(from) == 0)
            return 0;
        int saved = errno;
        unlink(to);
        errno = saved;
        return vb_error_errno(err, "%s: rename to %s (unlink after link)", from, to);
    }
    if (errno == EEXIST)
        return vb_error_set(err, "%s: already exists, refusing to overwrite", to);
    if (errno != EPERM && errno != EOPNOTSUPP && errno != ENOSYS)
        return vb_error_errno(err, "%s: rename to %s (link)", from, to);
    /* Neither flags nor hard links (FAT and the like): the best left is check, then rename. */
    if (access(to, F_OK) == 0)
        return vb_error_set(err, "%s: already exists, refusing to overwrite", to);
    if (rename(from, to) < 0)
        return vb_error_errno(err, "%s: rename to %s", from, to);
    return 0;
}

/* A new empty file named <prefix>.XXXXXX.partial with mode (less the umask), created with
 * O_EXCL (never an existing file or a planted link); the .partial suffix lets the next run's
 * leftover sweep remove it after a crash. Returns its descriptor and the malloc'ed name. */
static int create_unique_partial(const char *prefix, mode_t mode, char **name, struct vb_error *err)
{
    static const char chars[] = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
    if (asprintf(name, "%s.XXXXXX.partial", prefix) < 0) {
        *name = NULL;
        return vb_error_set(err, "out of memory");
    }
    char *x = *name + strlen(prefix) + 1;
    for (int attempt = 0;; attempt++) {
        unsigned char rnd[6];
        if (attempt == 100) {
            vb_error_set(err, "%s: no unused temporary name", *name);
            break;
        }
        if (getrandom(rnd, sizeof rnd, 0) != (ssize_t)sizeof rnd) {
            vb_error_errno(err, "getrandom");
            break;
        }
        for (size_t i = 0; i < sizeof rnd; i++)
            x[i] = chars[rnd[i] % (sizeof chars - 1)];
        int fd = open(*name, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, mode);
        if (fd >= 0)
            return fd;
        if (errno != EEXIST) {
            vb_error_errno(err, "%s: create", *name);
            break;
        }
    }
    free(*name);
    *name = NULL;
    return -1;
}

/* Puts the checksum file tmp at chk. A chk that exists already (a run that crashed between
 * the two renames of the commit left it, or the data file exists too and the data's rename
 * will fail) is kept under a unique name in *aside, so that checksum_undo can put it back
 * exactly; *aside is NULL when chk did not exist. */
static int checksum_place(const char *tmp, const char *chk, char **aside, struct vb_error *err)
{
    *aside = NULL;
    if (renameat2(AT_FDCWD, tmp, AT_FDCWD, chk, RENAME_NOREPLACE) == 0)
        return 0;
    if (errno == EEXIST) {
        /* tmp and chk swap: the old checksum is now under tmp's unique name */
        if (renameat2(AT_FDCWD, tmp, AT_FDCWD, chk, RENAME_EXCHANGE) == 0) {
            *aside = strdup(tmp);
            if (*aside)
                return 0;
            renameat2(AT_FDCWD, tmp, AT_FDCWD, chk, RENAME_EXCHANGE);
            return vb_error_set(err, "out of memory");
        }
        if (errno != EINVAL && errno != ENOSYS)
            return vb_error_errno(err, "%s: exchange with %s", tmp, chk);
    } else if (errno != EINVAL && errno != ENOSYS) {
        return vb_error_errno(err, "%s: rename to %s", tmp, chk);
    }
    /* Filesystems without renameat2's flags: the old checksum is moved aside onto a fresh
     * unique name (rename replaces that empty placeholder), then ours is linked into place. */
    int fd = create_unique_partial(chk, 0600, aside, err);
    if (fd < 0)
        return -1;
    close(fd);
    if (rename(chk, *aside) < 0) {
        int saved = errno;
        unlink(*aside);
        free(*aside);
        *aside = NULL;
        if (saved != ENOENT) {
            errno = saved;
            return vb_error_errno(err, "%s: rename aside", chk);
        }
    }
    if (vb_rename_noreplace(tmp, chk, err) == 0)
        return 0;
    if (*aside && rename(*aside, chk) < 0)
        vb_error_prefix(err, "%s could not be put back from %s (%s)", chk, *aside, strerror(errno));
    free(*aside);
    *aside = NULL;
    return -1;
}

/* Undoes checksum_place after the data's rename failed: the old checksum back (rename
 * replaces ours atomically), or ours removed when there was none. */
static void checksum_undo(const char *chk, const char *aside)
{
    if (aside)
        rename(aside, chk);
    else
        unlink(chk);
}

/* The commit (virtbackup-stream(5), COMMITTING A FILE): the data synced; its checksum written
 * under a unique temporary name, synced and renamed into place; then the data renamed without
 * replacing anything. A data file never exists without its checksum, and a commit that fails
 * (the data file exists already) leaves every file that existed as it was: a checksum it
 * displaced is put back. */
int stream_commit_file(int fd, const char *path, bool have_checksum, uint32_t checksum,
                       struct vb_error *err)
{
    char *partial = NULL, *chk = NULL, *chktmp = NULL, *aside = NULL;
    bool placed = false, renamed = false;
    int rc = -1, cfd = -1;
    if (asprintf(&partial, "%s.partial", path) < 0 || asprintf(&chk, "%s.chksum", path) < 0) {
        vb_error_set(err, "out of memory");
        goto out;
    }
    if (fsync(fd) < 0) {
        vb_error_errno(err, "%s: fsync", partial);
        goto out;
    }
    /* Refuse before touching anything; the no-replace rename below is what guarantees it. */
    if (access(path, F_OK) == 0) {
        vb_error_set(err, "%s: already exists, refusing to overwrite", path);
        goto out;
    }
    if (have_checksum) {
        char text[16];
        int n = snprintf(text, sizeof text, "%u", checksum);
        cfd = create_unique_partial(chk, 0644, &chktmp, err);
        if (cfd < 0)
            goto out;
        if (write_all(cfd, text, (size_t)n, chktmp, err) < 0)
            goto out;
        if (fsync(cfd) < 0) {
            vb_error_errno(err, "%s: fsync", chktmp);
            goto out;
        }
        if (checksum_place(chktmp, chk, &aside, err) < 0)
            goto out;
        placed = true;
    }
    if (vb_rename_noreplace(partial, path, err) < 0)
        goto out;
    renamed = true;
    if (aside)
        unlink(aside); /* the displaced checksum of a data file that did not exist */
    if (fsync_parent_dir(path, err) < 0)
        goto out;
    rc = 0;
out:
    if (cfd >= 0)
        close(cfd);
    if (rc < 0 && placed && !renamed) {
        struct vb_error ignored;
        checksum_undo(chk, aside);
        fsync_parent_dir(path, &ignored);
    }
    if (rc < 0 && chktmp)
        unlink(chktmp);
    free(partial);
    free(chk);
    free(chktmp);
    free(aside);
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
