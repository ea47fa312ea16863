#include "nbd_target.h"

#include <libnbd.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

int vb_nbd_target_connect(struct nbd_handle *h, const struct vb_nbd_target *t)
{
    if (t->socket)
        return nbd_connect_unix(h, t->socket);
    if (t->tls_dir &&
        (nbd_set_tls(h, LIBNBD_TLS_REQUIRE) == -1 ||
         nbd_set_tls_certificates(h, t->tls_dir) == -1 || nbd_set_tls_verify_peer(h, true) == -1))
        return -1;
    char port[16];
    snprintf(port, sizeof port, "%d", t->port);
    return nbd_connect_tcp(h, t->host, port);
}

const char *vb_nbd_target_describe(const struct vb_nbd_target *t, char *buf, size_t len)
{
    if (t->socket)
        snprintf(buf, len, "%s", t->socket);
    else
        snprintf(buf, len, "%s://%s:%d", t->tls_dir ? "nbds" : "nbd", t->host ? t->host : "?",
                 t->port);
    return buf;
}

const char *vb_nbd_target_hint(const struct vb_nbd_target *t, const char *nbd_error)
{
    if (t->socket || !nbd_error)
        return "";
    if (t->tls_dir && (strstr(nbd_error, "TLS") || strstr(nbd_error, "certificate") ||
                       strstr(nbd_error, "handshake")))
        return " (TLS: check --tls-cert and that the server's certificate is signed by its "
               "ca-cert.pem and names this host)";
    if (!t->tls_dir && strstr(nbd_error, "TLS"))
        return " (the server requires TLS: add --tls)";
    if (strstr(nbd_error, "refused"))
        return " (nothing listens there: check -I/--nbd-ip, -P/--nbd-port and firewalls)";
    return "";
}
