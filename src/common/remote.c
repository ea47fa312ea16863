#include "remote.h"

#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <libxml/uri.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fileutil.h"
#include "log.h"
#include "sink.h"
#include "ssh_remote.h"

static char *unescape(const char *s, size_t len)
{
    char *raw = strndup(s, len);
    if (!raw)
        return NULL;
    char *out = xmlURIUnescapeString(raw, 0, NULL);
    free(raw);
    return out;
}

int vb_uri_parse(const char *uri, struct vb_uri *u, struct vb_error *err)
{
    memset(u, 0, sizeof *u);
    if (!uri)
        uri = "qemu:///system";
    xmlURIPtr x = xmlParseURI(uri);
    if (!x)
        return vb_error_set(err, "%s: not a valid libvirt URI", uri);
    int rc = 0;
    u->scheme = x->scheme ? strdup(x->scheme) : NULL;
    if (x->server && x->server[0]) {
        u->remote = true;
        u->host = strdup(x->server);
    }
    if (x->user && x->user[0])
        u->user = strdup(x->user);
    u->port = x->port > 0 ? x->port : 0;
    /* libvirt's ssh parameters we share: keyfile=, known_hosts= */
    for (const char *q = x->query_raw ? x->query_raw : x->query; q && *q;) {
        size_t len = strcspn(q, "&");
        const char *eq = memchr(q, '=', len);
        if (eq) {
            size_t klen = (size_t)(eq - q);
            char *val = unescape(eq + 1, len - klen - 1);
            if (klen == 7 && strncmp(q, "keyfile", 7) == 0) {
                free(u->keyfile);
                u->keyfile = val;
            } else if (klen == 11 && strncmp(q, "known_hosts", 11) == 0) {
                free(u->known_hosts);
                u->known_hosts = val;
            } else {
                free(val); /* no_verify= and the rest are libvirt's own business */
            }
        }
        q += len;
        if (*q == '&')
            q++;
    }
    if (!u->scheme) {
        rc = vb_error_set(err, "%s: a libvirt URI needs a scheme (qemu:// or qemu+ssh://)", uri);
        vb_uri_free(u);
    }
    xmlFreeURI(x);
    return rc;
}

void vb_uri_free(struct vb_uri *u)
{
    free(u->scheme);
    free(u->user);
    free(u->host);
    free(u->keyfile);
    free(u->known_hosts);
    memset(u, 0, sizeof *u);
}

static const char *current_user(void)
{
    struct passwd *pw = getpwuid(getuid());
    return pw ? pw->pw_name : "root";
}

int vb_host_open(const struct vb_remote_opts *o, struct vb_host *h, struct vb_error *err)
{
    memset(h, 0, sizeof *h);
    struct vb_uri u;
    if (vb_uri_parse(o->uri, &u, err) < 0)
        return -1;
    h->nbd_port = o->nbd_port > 0 ? o->nbd_port : VB_NBD_DEFAULT_PORT;
    h->tls = o->tls;
    h->tls_cert = strdup(o->tls_cert ? o->tls_cert : VB_TLS_DEFAULT_DIR);
    h->tmpdir = o->tmpdir && o->tmpdir[0] ? strdup(o->tmpdir) : NULL;
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
    memset(h, 0, sizeof *h);
}

int vb_host_run(struct vb_host *h, char *const argv[], char **out, size_t *len,
                struct vb_error *err)
{
    if (h->ssh)
        return vb_ssh_run(h->ssh, argv, out, len, err);
    return vb_run_capture(argv, out, len, err);
}

int vb_host_exists(struct vb_host *h, const char *path, struct vb_error *err)
{
    if (h->ssh)
        return vb_ssh_exists(h->ssh, path, err);
    return access(path, R_OK) == 0;
}

int vb_host_fetch(struct vb_host *h, const char *path, const char *local, struct vb_error *err)
{
    if (h->ssh)
        return vb_ssh_get(h->ssh, path, local, err);
    return vb_copy_file_atomic(path, local, err);
}

static int write_all_fd(int fd, const void *data, size_t len, const char *name,
                        struct vb_error *err)
{
    for (size_t done = 0; done < len;) {
        ssize_t n = write(fd, (const char *)data + done, len - done);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return vb_error_errno(err, "%s: write", name);
        done += (size_t)n;
    }
    return 0;
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

int vb_host_put(struct vb_host *h, const char *local, const char *path, mode_t mode,
                struct vb_error *err)
{
    if (h->ssh)
        return vb_ssh_put(h->ssh, local, path, mode, err);
    int in = open(local, O_RDONLY | O_CLOEXEC);
    if (in < 0)
        return vb_error_errno(err, "%s: open", local);
    int rc = put_local(in, local, NULL, 0, path, mode, err);
    close(in);
    return rc;
}

char *vb_host_mkdtemp(struct vb_host *h, const char *parent, const char *prefix, int uid, int gid,
                      struct vb_error *err)
{
    char *dir = NULL;
    if (asprintf(&dir, "%s/%s.%ld.XXXXXX", parent, prefix, (long)getpid()) < 0) {
        vb_error_set(err, "out of memory");
        return NULL;
    }
    if (h->ssh) {
        if (vb_ssh_mkdtemp(h->ssh, dir, 0700, err) < 0 ||
            (uid >= 0 && vb_ssh_chown(h->ssh, dir, uid, gid, err) < 0)) {
            vb_error_prefix(err, "cannot create a private directory in %s on %s", parent, h->name);
            free(dir);
            return NULL;
        }
        return dir;
    }
    if (!mkdtemp(dir)) {
        vb_error_errno(err, "cannot create a private directory in %s", parent);
        free(dir);
        return NULL;
    }
    if (uid >= 0 && chown(dir, (uid_t)uid, (gid_t)gid) < 0) {
        vb_error_errno(err, "%s: chown to %d:%d", dir, uid, gid);
        rmdir(dir);
        free(dir);
        return NULL;
    }
    return dir;
}

void vb_host_rmdir(struct vb_host *h, const char *dir)
{
    if (!dir)
        return;
    struct vb_error e = {0};
    if (h->ssh) {
        if (vb_ssh_rmdir_files(h->ssh, dir, &e) < 0)
            vb_warn("cannot remove %s on %s: %s", dir, h->name, e.msg);
        return;
    }
    char *argv[] = {"rm", "-rf", "--", (char *)dir, NULL};
    if (vb_run_capture(argv, NULL, NULL, &e) < 0)
        vb_warn("cannot remove %s: %s", dir, e.msg);
}

int vb_host_mkdir_p(struct vb_host *h, const char *path, struct vb_error *err)
{
    if (!h->ssh)
        return vb_mkdir_p(path, err);
    char *argv[] = {"mkdir", "-p", "--", (char *)path, NULL};
    return vb_ssh_run(h->ssh, argv, NULL, NULL, err);
}

int vb_host_rename_noreplace(struct vb_host *h, const char *from, const char *to,
                             struct vb_error *err)
{
    if (!h->ssh)
        return vb_rename_noreplace(from, to, err);
    char *argv[] = {"ln", "-T", "--", (char *)from, (char *)to, NULL};
    if (vb_ssh_run(h->ssh, argv, NULL, NULL, err) < 0)
        return vb_error_prefix(err, "cannot rename %s to %s on %s", from, to, h->name);
    return vb_ssh_unlink(h->ssh, from, err);
}

int vb_host_unlink(struct vb_host *h, const char *path, struct vb_error *err)
{
    if (!h->ssh) {
        if (unlink(path) < 0 && errno != ENOENT)
            return vb_error_errno(err, "%s: unlink", path);
        return 0;
    }
    int exists = vb_ssh_exists(h->ssh, path, err);
    if (exists <= 0)
        return exists;
    return vb_ssh_unlink(h->ssh, path, err);
}

int vb_host_sync(struct vb_host *h, const char *path, struct vb_error *err)
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
    int rc = vb_host_run(h, argv, NULL, NULL, err);
    free(dir);
    return rc;
}

int vb_host_put_buffer(struct vb_host *h, const void *data, size_t len, const char *path,
                       mode_t mode, struct vb_error *err)
{
    if (!h->ssh)
        return put_local(-1, NULL, data, len, path, mode, err);
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

int vb_tls_client_dir_check(const char *dir, struct vb_error *err)
{
    static const char *const need[] = {"ca-cert.pem", "client-cert.pem", "client-key.pem"};
    struct stat st;
    if (stat(dir, &st) < 0 || !S_ISDIR(st.st_mode))
        return vb_error_set(err,
                            "TLS certificate directory %s does not exist (give it with "
                            "--tls-cert DIR)",
                            dir);
    for (size_t i = 0; i < 3; i++) {
        char path[4200];
        snprintf(path, sizeof path, "%s/%s", dir, need[i]);
        if (access(path, R_OK) < 0)
            return vb_error_errno(err,
                                  "TLS: %s is needed for NBD over TLS (CA certificate, client "
                                  "certificate and key in --tls-cert DIR)",
                                  path);
    }
    return 0;
}
