#include "remote.h"

#include <libxml/uri.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

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
