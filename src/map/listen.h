/* Listening sockets: a unix socket of mode 0600 (--socket PATH, or by default one in a private
 * directory made for this run) or TCP on -l ADDRESS -p PORT. TCP stays on loopback unless
 * --allow-remote (which the caller allows only with TLS): plain NBD has no authentication
 * and a backup holds everything the VM had. */
#ifndef VM_LISTEN_H
#define VM_LISTEN_H

#include <stdbool.h>
#include <stddef.h>

#include "error.h"

#define LISTEN_MAX 8

struct listeners {
    size_t n;
    int fds[LISTEN_MAX];
    char *socket_path; /* unix: removed by listeners_close */
    char *socket_dir;  /* the private directory made for it, removed too (or NULL) */
    bool is_unix;
    bool tls; /* URIs say nbds:// */
    char host[256];
    int port; /* the bound port (when -p 0 asked for any free one) */
};

int listen_unix(struct listeners *l, const char *path, struct vb_error *err);
/* A socket nbd.sock in a new directory of mode 0700 made from dir_template (mkdtemp, ending
 * in XXXXXX); the template's parent is created (mode 0700) if it does not exist. */
int listen_private(struct listeners *l, const char *dir_template, struct vb_error *err);
int listen_tcp(struct listeners *l, const char *address, const char *port, bool allow_remote,
               struct vb_error *err);
void listeners_close(struct listeners *l);

/* The NBD URI of an export (malloc'ed). */
char *listen_uri(const struct listeners *l, const char *export_name);

#endif
