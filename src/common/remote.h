/* Where a libvirt URI such as qemu+ssh://root@host:2222/system?keyfile=KEY leads, and the
 * remote options that say how to reach that host (host.h opens it): commands and files over
 * SSH/SFTP (ssh_remote.h), NBD exports over TCP, with TLS when asked. The options are
 * virtbackup(1)'s remote group. */
#ifndef VB_REMOTE_H
#define VB_REMOTE_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include "error.h"

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
    const char *tls_cert;       /* NULL: /etc/pki/qemu */
    const char *tmpdir;         /* local temporary files ($TMPDIR); NULL: VB_TMPDIR_DEFAULT */
    const char *glibc_tunables; /* the user's GLIBC_TUNABLES (qemu-nbd gets ours ahead) */
};

#define VB_NBD_DEFAULT_PORT 10809
#define VB_TLS_DEFAULT_DIR  "/etc/pki/qemu"
#define VB_TMPDIR_DEFAULT   "/var/tmp"

/* Checks that a TLS certificate directory holds what an NBD client needs (ca-cert.pem,
 * client-cert.pem, client-key.pem) and names the missing file. */
int vb_tls_client_dir_check(const char *dir, struct vb_error *err);

#endif
