#include "fileutil.h"
#include "util.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

/* The directory part of path ("." for a bare name). */
static void dir_of(const char *path, char *dir, size_t len)
{
    const char *slash = strrchr(path, '/');
    if (!slash)
        snprintf(dir, len, ".");
    else if (slash == path)
        snprintf(dir, len, "/");
    else
        snprintf(dir, len, "%.*s", (int)(slash - path), path);
}

int vb_fsync_dir_of(const char *path, struct vb_error *err)
{
    char dir[4200];
    dir_of(path, dir, sizeof dir);
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        return vb_error_errno(err, "%s: open directory", dir);
    /* EINVAL: a filesystem that cannot sync directories (nothing more can be done there) */
    int rc = fsync(fd) < 0 && errno != EINVAL ? vb_error_errno(err, "%s: fsync directory", dir) : 0;
    close(fd);
    return rc;
}

/* Creates a new file <path>.XXXXXX.partial (random letters, O_EXCL, never through a symlink),
 * mode 0644 less the umask as before; its name goes to tmp. Each writer has its own, so that
 * two writers of one path never share a temporary, and a crashed run's leftover still matches
 * the *.partial that cleanups look for. */
static int create_temporary(const char *path, char *tmp, size_t len, struct vb_error *err)
{
    static const char letters[] = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
    for (int attempt = 0; attempt < 100; attempt++) {
        unsigned char rnd[6];
        if (getrandom(rnd, sizeof rnd, 0) != (ssize_t)sizeof rnd)
            return vb_error_errno(err, "getrandom");
        char suffix[sizeof rnd + 1];
        for (size_t i = 0; i < sizeof rnd; i++)
            suffix[i] = letters[rnd[i] % (sizeof letters - 1)];
        suffix[sizeof rnd] = '\0';
        if (snprintf(tmp, len, "%s.%s.partial", path, suffix) >= (int)len)
            return vb_error_set(err, "%s: path too long", path);
        int fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0644);
        if (fd >= 0)
            return fd;
        if (errno != EEXIST)
            return vb_error_errno(err, "%s: create", tmp);
    }
    return vb_error_set(err, "%s: no free temporary name", path);
}

/* fsync and close fd (the temporary tmp), rename it to path, fsync the directory. On failure
 * the temporary is removed and path is unchanged. */
static int commit_temporary(int fd, const char *tmp, const char *path, struct vb_error *err)
{
    int rc = 0;
    if (fsync(fd) < 0)
        rc = vb_error_errno(err, "%s: fsync", tmp);
    if (close(fd) < 0 && rc == 0)
        rc = vb_error_errno(err, "%s: close", tmp);
    if (rc == 0 && rename(tmp, path) < 0)
        rc = vb_error_errno(err, "%s: rename", path);
    if (rc < 0) {
        unlink(tmp);
        return -1;
    }
    return vb_fsync_dir_of(path, err);
}

int vb_write_file_atomic(const char *path, const void *data, size_t len, struct vb_error *err)
{
    char tmp[4200];
    int fd = create_temporary(path, tmp, sizeof tmp, err);
    if (fd < 0)
        return -1;
    if (vb_write_all(fd, data, len) < 0) {
        vb_error_errno(err, "%s: write", tmp);
        close(fd);
        unlink(tmp);
        return -1;
    }
    return commit_temporary(fd, tmp, path, err);
}

int vb_copy_file_atomic(const char *from, const char *to, struct vb_error *err)
{
    int in = open(from, O_RDONLY | O_CLOEXEC);
    if (in < 0)
        return vb_error_errno(err, "%s: open", from);
    char tmp[4200];
    int out = create_temporary(to, tmp, sizeof tmp, err);
    if (out < 0) {
        close(in);
        return -1;
    }
    char buf[1 << 16];
    int rc = 0;
    for (;;) {
        ssize_t n = read(in, buf, sizeof buf);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            rc = vb_error_errno(err, "%s: read", from);
            break;
        }
        if (n == 0)
            break;
        if (vb_write_all(out, buf, (size_t)n) < 0) {
            rc = vb_error_errno(err, "%s: write", tmp);
            break;
        }
    }
    close(in);
    if (rc < 0) {
        close(out);
        unlink(tmp);
        return -1;
    }
    return commit_temporary(out, tmp, to, err);
}

int vb_mkdir_p(const char *path, struct vb_error *err)
{
    char buf[4096];
    snprintf(buf, sizeof buf, "%s", path);
    for (char *p = buf + 1; *p; p++) {
        if (*p != '/')
            continue;
        *p = '\0';
        if (mkdir(buf, 0755) < 0 && errno != EEXIST)
            return vb_error_errno(err, "%s: mkdir", buf);
        *p = '/';
    }
    if (mkdir(buf, 0755) < 0 && errno != EEXIST)
        return vb_error_errno(err, "%s: mkdir", buf);
    return 0;
}
