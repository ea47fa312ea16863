/* This machine as a host: commands run without a shell, files are written in place
 * (atomically, never replacing a file), private directories are made with mkdtemp, and
 * qemu-nbd serves on a unix socket (qemu_nbd_local.c). */
#include "host.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fileutil.h"
#include "log.h"
#include "qemu_nbd_internal.h"
#include "sink.h"
#include "subprocess.h"
#include "util.h"

static int local_run(struct vb_host *h, char *const argv[], char **out, size_t *len,
                     struct vb_error *err)
{
    (void)h;
    return vb_run_capture(argv, out, len, err);
}

static int local_exists(struct vb_host *h, const char *path, struct vb_error *err)
{
    (void)h;
    (void)err;
    return access(path, R_OK) == 0;
}

static int local_fetch(struct vb_host *h, const char *path, const char *local, struct vb_error *err)
{
    (void)h;
    return vb_copy_file_atomic(path, local, err);
}

static int write_all_fd(int fd, const void *data, size_t len, const char *name,
                        struct vb_error *err)
{
    return vb_write_all(fd, data, len) < 0 ? vb_error_errno(err, "%s: write", name) : 0;
}

/* A new local file at path with the bytes of from_fd (read to its end) or of data: written to
 * a unique temporary beside it (O_EXCL), given mode exactly, synced, then renamed without
 * replacing anything (RENAME_NOREPLACE or link: the test for an existing file and the rename
 * are one step, so a file that appears meanwhile is never overwritten), and the directory
 * synced. */
static int put_local(int from_fd, const char *from_name, const void *data, size_t len,
                     const char *path, mode_t mode, struct vb_error *err)
{
    char *tmp = NULL;
    if (asprintf(&tmp, "%s.XXXXXX.partial", path) < 0)
        return vb_error_set(err, "out of memory");
    int fd = mkostemps(tmp, (int)strlen(".partial"), O_CLOEXEC);
    if (fd < 0) {
        int rc = vb_error_errno(err, "%s: create", tmp);
        free(tmp);
        return rc;
    }
    int rc = 0;
    if (from_fd >= 0) {
        char buf[1 << 16];
        for (;;) {
            ssize_t n = read(from_fd, buf, sizeof buf);
            if (n < 0 && errno == EINTR)
                continue;
            if (n < 0)
                rc = vb_error_errno(err, "%s: read", from_name);
            if (n <= 0 || (rc = write_all_fd(fd, buf, (size_t)n, tmp, err)) < 0)
                break;
        }
    } else {
        rc = write_all_fd(fd, data, len, tmp, err);
    }
    if (rc == 0 && fchmod(fd, mode) < 0)
        rc = vb_error_errno(err, "%s: chmod", tmp);
    if (rc == 0 && fsync(fd) < 0)
        rc = vb_error_errno(err, "%s: fsync", tmp);
    if (close(fd) < 0 && rc == 0)
        rc = vb_error_errno(err, "%s: close", tmp);
    if (rc == 0)
        rc = vb_rename_noreplace(tmp, path, err);
    if (rc < 0)
        unlink(tmp);
    free(tmp);
    if (rc == 0) {
        char *dir = strdup(path);
        int dfd = dir ? open(dirname(dir), O_RDONLY | O_DIRECTORY | O_CLOEXEC) : -1;
        if (dfd >= 0 && fsync(dfd) < 0 && errno != EINVAL)
            rc = vb_error_errno(err, "%s: fsync of its directory", path);
        if (dfd >= 0)
            close(dfd);
        free(dir);
    }
    return rc;
}

static int local_put(struct vb_host *h, const char *local, const char *path, mode_t mode,
                     struct vb_error *err)
{
    (void)h;
    int in = open(local, O_RDONLY | O_CLOEXEC);
    if (in < 0)
        return vb_error_errno(err, "%s: open", local);
    int rc = put_local(in, local, NULL, 0, path, mode, err);
    close(in);
    return rc;
}

static int local_put_buffer(struct vb_host *h, const void *data, size_t len, const char *path,
                            mode_t mode, struct vb_error *err)
{
    (void)h;
    return put_local(-1, NULL, data, len, path, mode, err);
}

static char *local_mkdtemp(struct vb_host *h, const char *parent, const char *prefix, int uid,
                           int gid, struct vb_error *err)
{
    (void)h;
    char *dir = NULL;
    if (asprintf(&dir, "%s/%s.%ld.XXXXXX", parent, prefix, (long)getpid()) < 0) {
        vb_error_set(err, "out of memory");
        return NULL;
    }
    if (!mkdtemp(dir)) {
        vb_error_errno(err, "cannot create a private directory in %s", parent);
        free(dir);
        return NULL;
    }
    /* the backup job's qemu creates its socket and scratch files here as its own user; root
     * enters anyway */
    if (uid >= 0 && chown(dir, (uid_t)uid, (gid_t)gid) < 0) {
        vb_error_errno(err, "%s: chown to the domain's qemu user %d:%d", dir, uid, gid);
        rmdir(dir);
        free(dir);
        return NULL;
    }
    if (chmod(dir, 0700) < 0) {
        vb_error_errno(err, "%s: chmod", dir);
        rmdir(dir);
        free(dir);
        return NULL;
    }
    return dir;
}

static void local_rmdir(struct vb_host *h, const char *dir)
{
    (void)h;
    /* the socket and scratch files of a backup job are qemu's and normally gone with the
     * job; whatever is left (a job that failed to start, a killed run) is ours to remove */
    DIR *d = opendir(dir);
    struct dirent *e;
    while (d && (e = readdir(d))) {
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
            continue;
        char path[4400];
        snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        unlink(path);
    }
    if (d)
        closedir(d);
    if (rmdir(dir) < 0)
        vb_warn("cannot remove the directory %s: %s", dir, strerror(errno));
}

static int local_mkdir_p(struct vb_host *h, const char *path, struct vb_error *err)
{
    (void)h;
    return vb_mkdir_p(path, err);
}

static int local_rename_noreplace(struct vb_host *h, const char *from, const char *to,
                                  struct vb_error *err)
{
    (void)h;
    return vb_rename_noreplace(from, to, err);
}

static int local_unlink(struct vb_host *h, const char *path, struct vb_error *err)
{
    (void)h;
    if (unlink(path) < 0 && errno != ENOENT)
        return vb_error_errno(err, "%s: unlink", path);
    return 0;
}

/* The file's writer (qemu-nbd, the restore's copy) synced its data: only the directory entry
 * is left. Best effort, as file systems differ in what a directory fsync does. */
static int local_sync(struct vb_host *h, const char *path, struct vb_error *err)
{
    (void)h;
    (void)err;
    char *copy = strdup(path);
    if (!copy)
        return 0;
    int fd = open(dirname(copy), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd >= 0) {
        fsync(fd);
        close(fd);
    }
    free(copy);
    return 0;
}

/* Written in place: the caller writes path itself. */
static int local_stage_open(struct vb_host *h, const char *prefix, const char *path, char **local,
                            struct vb_error *err)
{
    (void)h;
    (void)prefix;
    *local = strdup(path);
    return *local ? 0 : vb_error_set(err, "out of memory");
}

static int local_stage_commit(struct vb_host *h, char *local, const char *path, mode_t mode,
                              bool keep, struct vb_error *err)
{
    (void)h;
    (void)path;
    (void)mode;
    (void)keep;
    (void)err;
    free(local);
    return 0;
}

static void local_nbd_listen(const struct vb_host *h, const char *socket, int port_offset,
                             struct vb_nbd_target *t)
{
    (void)h;
    (void)port_offset;
    *t = (struct vb_nbd_target){.socket = socket};
}

const struct vb_host_ops vb_host_local_ops = {
    .kind = "local",
    .run = local_run,
    .exists = local_exists,
    .fetch = local_fetch,
    .put = local_put,
    .put_buffer = local_put_buffer,
    .mkdtemp = local_mkdtemp,
    .rmdir = local_rmdir,
    .mkdir_p = local_mkdir_p,
    .rename_noreplace = local_rename_noreplace,
    .unlink = local_unlink,
    .sync = local_sync,
    .stage_open = local_stage_open,
    .stage_commit = local_stage_commit,
    .nbd_listen = local_nbd_listen,
    .qemu_nbd_start = qemu_nbd_start_local,
};
