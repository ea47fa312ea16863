/* The remote host of a libvirt URI as a host: commands through the remote user's shell and
 * files over SFTP on the host's SSH session (ssh_remote.h), qemu-nbd forked there serving TCP
 * (qemu_nbd_ssh.c). */
#include "host.h"

#include <errno.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "log.h"
#include "qemu_nbd_internal.h"
#include "ssh_remote.h"

static int ssh_run(struct vb_host *h, char *const argv[], char **out, size_t *len,
                   struct vb_error *err)
{
    return vb_ssh_run(h->ssh, argv, out, len, err);
}

static int ssh_exists(struct vb_host *h, const char *path, struct vb_error *err)
{
    return vb_ssh_exists(h->ssh, path, err);
}

static int ssh_fetch(struct vb_host *h, const char *path, const char *local, struct vb_error *err)
{
    return vb_ssh_get(h->ssh, path, local, err);
}

static int ssh_put(struct vb_host *h, const char *local, const char *path, mode_t mode,
                   struct vb_error *err)
{
    return vb_ssh_put(h->ssh, local, path, mode, err);
}

static int ssh_put_buffer(struct vb_host *h, const void *data, size_t len, const char *path,
                          mode_t mode, struct vb_error *err)
{
    char tmp[4096];
    snprintf(tmp, sizeof tmp, "%s/virtbackup-put.XXXXXX", vb_host_tmpdir(h));
    int fd = mkstemp(tmp);
    if (fd < 0)
        return vb_error_errno(err, "%s", tmp);
    int rc = 0;
    for (size_t done = 0; done < len && rc == 0;) {
        ssize_t n = write(fd, (const char *)data + done, len - done);
        if (n < 0)
            rc = vb_error_errno(err, "%s: write", tmp);
        else
            done += (size_t)n;
    }
    close(fd);
    if (rc == 0)
        rc = vb_ssh_put(h->ssh, tmp, path, mode, err);
    unlink(tmp);
    return rc;
}

static char *ssh_mkdtemp(struct vb_host *h, const char *parent, const char *prefix, int uid,
                         int gid, struct vb_error *err)
{
    char *dir = NULL;
    if (asprintf(&dir, "%s/%s.%ld.XXXXXX", parent, prefix, (long)getpid()) < 0) {
        vb_error_set(err, "out of memory");
        return NULL;
    }
    if (vb_ssh_mkdtemp(h->ssh, dir, 0700, err) < 0 ||
        (uid >= 0 && vb_ssh_chown(h->ssh, dir, uid, gid, err) < 0)) {
        vb_error_prefix(err, "cannot create a private directory in %s on %s", parent, h->name);
        free(dir);
        return NULL;
    }
    return dir;
}

static void ssh_rmdir(struct vb_host *h, const char *dir)
{
    struct vb_error e = {0};
    if (vb_ssh_rmdir_files(h->ssh, dir, &e) < 0)
        vb_warn("cannot remove %s on %s: %s", dir, h->name, e.msg);
}

static int ssh_mkdir_p(struct vb_host *h, const char *path, struct vb_error *err)
{
    char *argv[] = {"mkdir", "-p", "--", (char *)path, NULL};
    return vb_ssh_run(h->ssh, argv, NULL, NULL, err);
}

static int ssh_rename_noreplace(struct vb_host *h, const char *from, const char *to,
                                struct vb_error *err)
{
    char *argv[] = {"ln", "-T", "--", (char *)from, (char *)to, NULL};
    if (vb_ssh_run(h->ssh, argv, NULL, NULL, err) < 0)
        return vb_error_prefix(err, "cannot rename %s to %s on %s", from, to, h->name);
    return vb_ssh_unlink(h->ssh, from, err);
}

static int ssh_unlink(struct vb_host *h, const char *path, struct vb_error *err)
{
    int exists = vb_ssh_exists(h->ssh, path, err);
    if (exists <= 0)
        return exists;
    return vb_ssh_unlink(h->ssh, path, err);
}

static int ssh_sync(struct vb_host *h, const char *path, struct vb_error *err)
{
    char *dir = strdup(path);
    if (!dir)
        return vb_error_set(err, "out of memory");
    char *slash = strrchr(dir, '/');
    if (slash && slash != dir)
        *slash = '\0';
    else if (slash)
        dir[1] = '\0';
    char *argv[] = {"sync", "--", (char *)path, dir, NULL};
    int rc = vb_ssh_run(h->ssh, argv, NULL, NULL, err);
    free(dir);
    return rc;
}

/* A file in a private local directory (mode 0700), put over SFTP by stage_commit. */
static int ssh_stage_open(struct vb_host *h, const char *prefix, const char *path, char **local,
                          struct vb_error *err)
{
    (void)path;
    char dir[4096];
    snprintf(dir, sizeof dir, "%s/%s.XXXXXX", vb_host_tmpdir(h), prefix);
    if (!mkdtemp(dir))
        return vb_error_errno(err, "cannot create a private directory in %s", vb_host_tmpdir(h));
    if (asprintf(local, "%s/file", dir) < 0) {
        *local = NULL;
        rmdir(dir);
        return vb_error_set(err, "out of memory");
    }
    return 0;
}

static int ssh_stage_commit(struct vb_host *h, char *local, const char *path, mode_t mode,
                            bool keep, struct vb_error *err)
{
    int rc = keep ? vb_ssh_put(h->ssh, local, path, mode, err) : 0;
    unlink(local);
    rmdir(dirname(local));
    free(local);
    return rc;
}

static void ssh_nbd_listen(const struct vb_host *h, const char *socket, int port_offset,
                           struct vb_nbd_target *t)
{
    (void)socket;
    *t = (struct vb_nbd_target){
        .host = h->nbd_host,
        .port = h->nbd_port + port_offset,
        .tls_dir = h->tls ? h->tls_cert : NULL,
    };
}

const struct vb_host_ops vb_host_ssh_ops = {
    .kind = "ssh",
    .run = ssh_run,
    .exists = ssh_exists,
    .fetch = ssh_fetch,
    .put = ssh_put,
    .put_buffer = ssh_put_buffer,
    .mkdtemp = ssh_mkdtemp,
    .rmdir = ssh_rmdir,
    .mkdir_p = ssh_mkdir_p,
    .rename_noreplace = ssh_rename_noreplace,
    .unlink = ssh_unlink,
    .sync = ssh_sync,
    .stage_open = ssh_stage_open,
    .stage_commit = ssh_stage_commit,
    .nbd_listen = ssh_nbd_listen,
    .qemu_nbd_start = qemu_nbd_start_ssh,
};
