/* Opening a host (this machine or an SSH session to the URI's host) and the calls that go to
 * its implementation. */
#include "host.h"

#include <pwd.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "log.h"
#include "ssh_remote.h"

static const char *current_user(void)
{
    struct passwd *pw = getpwuid(getuid());
    return pw ? pw->pw_name : "root";
}

int vb_host_open(const struct vb_remote_opts *o, struct vb_host *h, struct vb_error *err)
{
    memset(h, 0, sizeof *h);
    h->ops = &vb_host_local_ops;
    struct vb_uri u;
    if (vb_uri_parse(o->uri, &u, err) < 0)
        return -1;
    h->nbd_port = o->nbd_port > 0 ? o->nbd_port : VB_NBD_DEFAULT_PORT;
    h->tls = o->tls;
    h->tls_cert = strdup(o->tls_cert ? o->tls_cert : VB_TLS_DEFAULT_DIR);
    h->tmpdir = o->tmpdir && o->tmpdir[0] ? strdup(o->tmpdir) : NULL;
    h->glibc_tunables = o->glibc_tunables ? strdup(o->glibc_tunables) : NULL;
    if (!u.remote) {
        vb_uri_free(&u);
        return 0;
    }
    h->name = strdup(u.host);
    h->nbd_host = strdup(o->nbd_ip && o->nbd_ip[0] ? o->nbd_ip : u.host);
    bool ssh_scheme = u.scheme && strstr(u.scheme, "ssh") != NULL;
    struct vb_ssh_opts so = {
        .host = u.host,
        .port = o->ssh_port > 0 ? o->ssh_port : (ssh_scheme && u.port ? u.port : 22),
        .user = o->ssh_user ? o->ssh_user : (u.user ? u.user : current_user()),
        .private_key = o->ssh_key ? o->ssh_key : u.keyfile,
        .known_hosts = u.known_hosts,
        /* libvirt's no_verify=1 is for its own ssh; ours accepts a new key only when asked */
        .accept_new_host_key = o->ssh_accept_new_key,
    };
    vb_debug("remote host %s: ssh %s@%s:%d, NBD at %s:%d%s", u.host, so.user, so.host, so.port,
             h->nbd_host, h->nbd_port, h->tls ? " (TLS)" : "");
    h->ssh = vb_ssh_open(&so, err);
    vb_uri_free(&u);
    if (!h->ssh)
        return vb_error_prefix(err, "remote host %s (files and commands go over SSH)", h->name);
    h->ops = &vb_host_ssh_ops;
    return 0;
}

void vb_host_close(struct vb_host *h)
{
    if (h->ssh)
        vb_ssh_close(h->ssh);
    free(h->name);
    free(h->nbd_host);
    free(h->tls_cert);
    free(h->tmpdir);
    free(h->glibc_tunables);
    memset(h, 0, sizeof *h);
}

const struct vb_host_ops *vb_host_ops(const struct vb_host *h)
{
    return h->ops ? h->ops : &vb_host_local_ops;
}

bool vb_host_is_remote(const struct vb_host *h)
{
    return vb_host_ops(h) == &vb_host_ssh_ops;
}

const char *vb_host_tmpdir(const struct vb_host *h)
{
    return h->tmpdir ? h->tmpdir : VB_TMPDIR_DEFAULT;
}

int vb_host_run(struct vb_host *h, char *const argv[], char **out, size_t *len,
                struct vb_error *err)
{
    return vb_host_ops(h)->run(h, argv, out, len, err);
}

int vb_host_exists(struct vb_host *h, const char *path, struct vb_error *err)
{
    return vb_host_ops(h)->exists(h, path, err);
}

int vb_host_fetch(struct vb_host *h, const char *path, const char *local, struct vb_error *err)
{
    return vb_host_ops(h)->fetch(h, path, local, err);
}

int vb_host_put(struct vb_host *h, const char *local, const char *path, mode_t mode,
                struct vb_error *err)
{
    return vb_host_ops(h)->put(h, local, path, mode, err);
}

int vb_host_put_buffer(struct vb_host *h, const void *data, size_t len, const char *path,
                       mode_t mode, struct vb_error *err)
{
    return vb_host_ops(h)->put_buffer(h, data, len, path, mode, err);
}

char *vb_host_mkdtemp(struct vb_host *h, const char *parent, const char *prefix, int uid, int gid,
                      struct vb_error *err)
{
    return vb_host_ops(h)->mkdtemp(h, parent, prefix, uid, gid, err);
}

void vb_host_rmdir(struct vb_host *h, const char *dir)
{
    if (dir)
        vb_host_ops(h)->rmdir(h, dir);
}

int vb_host_mkdir_p(struct vb_host *h, const char *path, struct vb_error *err)
{
    return vb_host_ops(h)->mkdir_p(h, path, err);
}

int vb_host_rename_noreplace(struct vb_host *h, const char *from, const char *to,
                             struct vb_error *err)
{
    return vb_host_ops(h)->rename_noreplace(h, from, to, err);
}

int vb_host_unlink(struct vb_host *h, const char *path, struct vb_error *err)
{
    return vb_host_ops(h)->unlink(h, path, err);
}

int vb_host_sync(struct vb_host *h, const char *path, struct vb_error *err)
{
    return vb_host_ops(h)->sync(h, path, err);
}

int vb_host_stage_open(struct vb_host *h, const char *prefix, const char *path, char **local,
                       struct vb_error *err)
{
    return vb_host_ops(h)->stage_open(h, prefix, path, local, err);
}

int vb_host_stage_commit(struct vb_host *h, char *local, const char *path, mode_t mode, bool keep,
                         struct vb_error *err)
{
    return vb_host_ops(h)->stage_commit(h, local, path, mode, keep, err);
}

void vb_host_nbd_listen(const struct vb_host *h, const char *socket, int port_offset,
                        struct vb_nbd_target *t)
{
    vb_host_ops(h)->nbd_listen(h, socket, port_offset, t);
}
