#include "lock.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

const char *vb_lock_dir(const char *dir)
{
    if (!dir || !*dir)
        dir = "/run/virtbackup";
    mkdir(dir, 0755);
    return dir;
}

int vb_lock_acquire(struct vb_lock *lock, const char *path, const char *what, struct vb_error *err)
{
    lock->fd = -1;
    lock->path = NULL;
    int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (fd < 0)
        return vb_error_errno(err, "%s: cannot open lock file %s", what, path);
    if (flock(fd, LOCK_EX | LOCK_NB) < 0) {
        int saved = errno;
        char buf[32] = "";
        ssize_t n = pread(fd, buf, sizeof buf - 1, 0);
        close(fd);
        if (saved != EWOULDBLOCK)
            return vb_error_set(err, "%s: cannot lock %s: %s", what, path, strerror(saved));
        buf[n > 0 ? n : 0] = '\0';
        buf[strcspn(buf, "\n")] = '\0';
        return vb_error_set(err, "%s is in use by another backup (pid %s, lock %s)", what,
                            buf[0] ? buf : "unknown", path);
    }
    char pid[32];
    int len = snprintf(pid, sizeof pid, "%ld\n", (long)getpid());
    if (ftruncate(fd, 0) < 0 || pwrite(fd, pid, (size_t)len, 0) != len) {
        close(fd);
        return vb_error_errno(err, "%s: cannot write lock file %s", what, path);
    }
    lock->fd = fd;
    lock->path = strdup(path);
    return 0;
}

void vb_lock_release(struct vb_lock *lock)
{
    if (lock->fd >= 0) {
        /* empty the file first so a reader never names a finished run */
        if (ftruncate(lock->fd, 0) < 0) {
            /* nothing to do: the lock goes with the descriptor anyway */
        }
        close(lock->fd);
    }
    free(lock->path);
    lock->fd = -1;
    lock->path = NULL;
}
