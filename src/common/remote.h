/* The host a domain lives on: this machine, or the remote host of a libvirt URI such as
 * qemu+ssh://root@host:2222/system?keyfile=KEY. Commands (qemu-img, qemu-nbd) and files
 * (loader, nvram, kernel, initrd) of a remote domain are reached over SSH/SFTP (ssh_remote.h);
 * its NBD exports over TCP, with TLS when asked. The options are the reference's remote group
 * (virtnbdbackup 2.47 argopt.py) plus --ssh-accept-new-key. */
#ifndef VB_REMOTE_H
#define VB_REMOTE_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include "error.h"

struct vb_ssh;

/* What a libvirt URI says about where it leads. */
struct vb_uri {
    bool remote; /* names a host (qemu+ssh://h/, qemu+tcp://h/, qemu://h/ ...) */
    char *scheme;
    char *user;                  /* user@ part, or NULL */
    char *host;                  /* or NULL for local URIs */
    int port;                    /* 0 if none */
    char *keyfile, *known_hosts; /* libvirt's ssh URI parameters */
};

int vb_uri_parse(const char *uri, struct vb_uri *u, struct vb_error *err);
void vb_uri_free(struct vb_uri *u);

/* The remote options, as the command line gives them (NULL/0: not given). */
struct vb_remote_opts {
    const char *uri;
    const char *ssh_user;
    int ssh_port;
    const char *ssh_key;
    bool ssh_accept_new_key;
    const char *nbd_ip; /* address NBD clients connect to (default: the URI's host) */
    int nbd_port;       /* 0: 10809 */
    bool tls;
    const char *tls_cert; /* NULL: /etc/pki/qemu */
    const char *tmpdir;   /* local temporary files ($TMPDIR); NULL: VB_TMPDIR_DEFAULT */
};

#define VB_NBD_DEFAULT_PORT 10809
#define VB_TLS_DEFAULT_DIR  "/etc/pki/qemu"
#define VB_TMPDIR_DEFAULT   "/var/tmp"

struct vb_host {
    struct vb_ssh *ssh; /* NULL: this machine */
    char *name;         /* remote host as the URI names it */
    char *nbd_host;     /* where its NBD servers are reached */
    int nbd_port;
    bool tls;
    char *tls_cert;
    char *tmpdir; /* where local temporary files of remote transfers go */
};

/* Local for local URIs; for remote ones opens the SSH session (errors name the host and what
 * to fix). A host must be closed with vb_host_close, also after a failure. */
int vb_host_open(const struct vb_remote_opts *opts, struct vb_host *h, struct vb_error *err);
void vb_host_close(struct vb_host *h);
static inline bool vb_host_is_remote(const struct vb_host *h)
{
    return h->ssh != NULL;
}
static inline const char *vb_host_tmpdir(const struct vb_host *h)
{
    return h->tmpdir ? h->tmpdir : VB_TMPDIR_DEFAULT;
}

/* Runs argv (no shell locally; quoted for the remote shell) and returns its stdout. */
int vb_host_run(struct vb_host *h, char *const argv[], char **out, size_t *len,
                struct vb_error *err);
/* 1 if path exists (and, locally, is readable), 0 if not, -1 on error. */
int vb_host_exists(struct vb_host *h, const char *path, struct vb_error *err);
/* Copies the host's file to a local path (atomically). */
int vb_host_fetch(struct vb_host *h, const char *path, const char *local, struct vb_error *err);
/* Copies a local file to the host (atomically; refuses to overwrite, also a file that
 * appears while it runs: locally a no-replace rename, remotely SFTP's rename). */
int vb_host_put(struct vb_host *h, const char *local, const char *path, mode_t mode,
                struct vb_error *err);
/* A private directory in parent (mode 0700, owned by uid:gid when uid >= 0). Malloc'ed. */
char *vb_host_mkdtemp(struct vb_host *h, const char *parent, const char *prefix, int uid, int gid,
                      struct vb_error *err);
/* Removes the directory and the plain files in it; failures are warnings. */
void vb_host_rmdir(struct vb_host *h, const char *dir);

/* mkdir -p */
int vb_host_mkdir_p(struct vb_host *h, const char *path, struct vb_error *err);
/* Renames from to to, never replacing an existing to. */
int vb_host_rename_noreplace(struct vb_host *h, const char *from, const char *to,
                             struct vb_error *err);
/* Removes a file; a missing one is not an error. */
int vb_host_unlink(struct vb_host *h, const char *path, struct vb_error *err);
/* Makes a completed file and its directory entry durable (fsync of both). */
int vb_host_sync(struct vb_host *h, const char *path, struct vb_error *err);
/* Writes a new file with data (atomically; refuses to overwrite, as vb_host_put). */
int vb_host_put_buffer(struct vb_host *h, const void *data, size_t len, const char *path,
                       mode_t mode, struct vb_error *err);

/* Checks that a TLS certificate directory holds what an NBD client needs (ca-cert.pem,
 * client-cert.pem, client-key.pem) and names the missing file. */
int vb_tls_client_dir_check(const char *dir, struct vb_error *err);

#endif
