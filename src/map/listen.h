/* Listening sockets: a unix socket (--socket PATH) or TCP on -l ADDRESS -p PORT. TCP stays
 * on loopback unless --allow-remote: the NBD protocol has no authentication here and a
 * backup holds everything the VM had. */
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
    bool is_unix;
    char host[256];
    int port; /* the bound port (when -p 0 asked for any free one) */
};

int listen_unix(struct listeners *l, const char *path, struct vb_error *err);
int listen_tcp(struct listeners *l, const char *address, const char *port, bool allow_remote,
               struct vb_error *err);
void listeners_close(struct listeners *l);

/* The NBD URI of an export (malloc'ed). */
char *listen_uri(const struct listeners *l, const char *export_name);

#endif
