#include "nbd_tls.h"

#include <ctype.h>
#include <errno.h>
#include <gnutls/gnutls.h>
#include <gnutls/x509.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

struct nbd_tls {
    gnutls_certificate_credentials_t x509;
    gnutls_psk_server_credentials_t psk;
    bool verify_peer;
};

const char *nbd_tls_kind(const struct nbd_tls *t)
{
    return t->psk ? "PSK" : "x509";
}

/* x509 credentials from DIR in qemu's layout. */
static int load_x509(struct nbd_tls *t, const char *dir, struct vb_error *err)
{
    char ca[4200], crl[4200], cert[4200], key[4200];
    snprintf(ca, sizeof ca, "%s/ca-cert.pem", dir);
    snprintf(crl, sizeof crl, "%s/ca-crl.pem", dir);
    snprintf(cert, sizeof cert, "%s/server-cert.pem", dir);
    snprintf(key, sizeof key, "%s/server-key.pem", dir);
    int rc = gnutls_certificate_allocate_credentials(&t->x509);
    if (rc < 0)
        return vb_error_set(err, "TLS: %s", gnutls_strerror(rc));
    const char *need[] = {cert, key, t->verify_peer ? ca : NULL};
    for (size_t i = 0; i < sizeof need / sizeof *need; i++)
        if (need[i] && access(need[i], R_OK) < 0)
            return vb_error_errno(err, "--tls-creds: %s", need[i]);
    if (access(ca, R_OK) == 0) {
        rc = gnutls_certificate_set_x509_trust_file(t->x509, ca, GNUTLS_X509_FMT_PEM);
        if (rc <= 0)
            return vb_error_set(err, "--tls-creds: %s: %s", ca,
                                rc < 0 ? gnutls_strerror(rc) : "no certificate in it");
    }
    if (access(crl, F_OK) == 0) {
        rc = gnutls_certificate_set_x509_crl_file(t->x509, crl, GNUTLS_X509_FMT_PEM);
        if (rc < 0)
            return vb_error_set(err, "--tls-creds: %s: %s", crl, gnutls_strerror(rc));
    }
    rc = gnutls_certificate_set_x509_key_file(t->x509, cert, key, GNUTLS_X509_FMT_PEM);
    if (rc < 0)
        return vb_error_set(err, "--tls-creds: %s with %s: %s", cert, key, gnutls_strerror(rc));
    gnutls_certificate_set_known_dh_params(t->x509, GNUTLS_SEC_PARAM_MEDIUM);
    return 0;
}

/* GnuTLS reads the key file at every handshake; it is checked once here so that a typo
 * fails at start: "username:hexkey" lines (blank lines allowed). Keys are never shown. */
static int check_psk_file(const char *path, struct vb_error *err)
{
    FILE *f = fopen(path, "re");
    if (!f)
        return vb_error_errno(err, "--tls-psk: %s", path);
    char *line = NULL;
    size_t cap = 0, keys = 0;
    int rc = 0;
    for (unsigned no = 1; rc == 0 && getline(&line, &cap, f) >= 0; no++) {
        line[strcspn(line, "\r\n")] = '\0';
        if (line[0] == '\0')
            continue;
        char *colon = strchr(line, ':');
        size_t hex = colon ? strlen(colon + 1) : 0;
        bool ok = colon && colon != line && hex >= 2 && hex % 2 == 0;
        for (size_t i = 0; ok && i < hex; i++)
            ok = isxdigit((unsigned char)colon[1 + i]);
        if (!ok)
            rc = vb_error_set(err,
                              "--tls-psk: %s, line %u: not 'username:hexkey' (an even number "
                              "of hex digits)",
                              path, no);
        keys++;
    }
    if (rc == 0 && ferror(f))
        rc = vb_error_errno(err, "--tls-psk: %s: read", path);
    if (rc == 0 && keys == 0)
        rc = vb_error_set(err, "--tls-psk: %s holds no key", path);
    free(line);
    fclose(f);
    return rc;
}

static int load_psk(struct nbd_tls *t, const char *path, struct vb_error *err)
{
    if (check_psk_file(path, err) < 0)
        return -1;
    int rc = gnutls_psk_allocate_server_credentials(&t->psk);
    if (rc == 0)
        rc = gnutls_psk_set_server_credentials_file(t->psk, path);
    if (rc < 0)
        return vb_error_set(err, "--tls-psk: %s: %s", path, gnutls_strerror(rc));
    gnutls_psk_set_server_known_dh_params(t->psk, GNUTLS_SEC_PARAM_MEDIUM);
    return 0;
}

struct nbd_tls *nbd_tls_new(const struct nbd_tls_options *o, struct vb_error *err)
{
    struct nbd_tls *t = calloc(1, sizeof *t);
    if (!t) {
        vb_error_set(err, "out of memory");
        return NULL;
    }
    t->verify_peer = o->verify_peer;
    int rc = o->psk_file ? load_psk(t, o->psk_file, err) : load_x509(t, o->creds_dir, err);
    if (rc < 0) {
        nbd_tls_free(t);
        return NULL;
    }
    return t;
}

void nbd_tls_free(struct nbd_tls *t)
{
    if (!t)
        return;
    if (t->x509)
        gnutls_certificate_free_credentials(t->x509);
    if (t->psk)
        gnutls_psk_free_server_credentials(t->psk);
    free(t);
}

/* The transport under the session: the connection's socket, through the deadline-bound
 * calls of nbd_wire.c. */
static ssize_t pull(gnutls_transport_ptr_t p, void *buf, size_t len)
{
    struct nbd_wire *w = p;
    ssize_t n = wire_recv_raw(w, buf, len);
    if (n < 0)
        gnutls_transport_set_errno(w->tls, errno);
    return n;
}

static ssize_t push(gnutls_transport_ptr_t p, const void *buf, size_t len)
{
    struct nbd_wire *w = p;
    ssize_t n = wire_send_raw(w, buf, len);
    if (n < 0)
        gnutls_transport_set_errno(w->tls, errno);
    return n;
}

static int pull_timeout(gnutls_transport_ptr_t p, unsigned int ms)
{
    struct nbd_wire *w = p;
    int left = wire_time_left(w);
    int wait = ms == GNUTLS_INDEFINITE_TIMEOUT ? -1 : (int)ms;
    if (left >= 0 && (wait < 0 || left < wait))
        wait = left;
    struct pollfd pf = {.fd = w->fd, .events = POLLIN};
    int r;
    while ((r = poll(&pf, 1, wait)) < 0 && errno == EINTR)
        ;
    return r;
}

static void describe_peer(gnutls_session_t s, const struct nbd_tls *t, char *who, size_t wholen)
{
    snprintf(who, wholen, "%s", nbd_tls_kind(t));
    if (t->psk) {
        const char *user = gnutls_psk_server_get_username(s);
        if (user)
            snprintf(who, wholen, "PSK user %s", user);
        return;
    }
    unsigned n = 0;
    const gnutls_datum_t *certs = gnutls_certificate_get_peers(s, &n);
    gnutls_x509_crt_t crt;
    if (!certs || n == 0 || gnutls_x509_crt_init(&crt) < 0)
        return;
    gnutls_datum_t dn = {NULL, 0};
    if (gnutls_x509_crt_import(crt, &certs[0], GNUTLS_X509_FMT_DER) == 0 &&
        gnutls_x509_crt_get_dn2(crt, &dn) == 0)
        snprintf(who, wholen, "x509 client %s", (const char *)dn.data);
    gnutls_free(dn.data);
    gnutls_x509_crt_deinit(crt);
}

int nbd_tls_start(const struct nbd_tls *t, struct nbd_wire *w, char *who, size_t wholen,
                  struct vb_error *err)
{
    gnutls_session_t s;
    int rc = gnutls_init(&s, GNUTLS_SERVER);
    if (rc < 0)
        return vb_error_set(err, "TLS: %s", gnutls_strerror(rc));
    if (t->psk)
        rc = gnutls_set_default_priority_append(s, "+ECDHE-PSK:+DHE-PSK:+PSK", NULL, 0);
    else
        rc = gnutls_set_default_priority(s);
    if (rc == 0)
        rc = t->psk ? gnutls_credentials_set(s, GNUTLS_CRD_PSK, t->psk)
                    : gnutls_credentials_set(s, GNUTLS_CRD_CERTIFICATE, t->x509);
    if (rc < 0) {
        gnutls_deinit(s);
        return vb_error_set(err, "TLS: %s", gnutls_strerror(rc));
    }
    if (t->x509 && t->verify_peer) {
        gnutls_certificate_server_set_request(s, GNUTLS_CERT_REQUIRE);
        gnutls_session_set_verify_cert(s, NULL, 0);
    }
    gnutls_transport_set_ptr(s, w);
    gnutls_transport_set_pull_function(s, pull);
    gnutls_transport_set_push_function(s, push);
    gnutls_transport_set_pull_timeout_function(s, pull_timeout);
    /* the wire's deadline bounds the handshake, not GnuTLS's own timer */
    gnutls_handshake_set_timeout(s, GNUTLS_INDEFINITE_TIMEOUT);
    w->tls = s;
    do
        rc = gnutls_handshake(s);
    while (rc < 0 && !gnutls_error_is_fatal(rc));
    if (rc < 0) {
        const char *user = t->psk ? gnutls_psk_server_get_username(s) : NULL;
        if (wire_time_left(w) == 0) {
            vb_error_set(err, "TLS handshake: the deadline passed");
        } else if (rc == GNUTLS_E_CERTIFICATE_REQUIRED || rc == GNUTLS_E_NO_CERTIFICATE_FOUND) {
            vb_error_set(err, "TLS handshake: the client sent no certificate signed by the CA "
                              "of --tls-creds");
        } else if (rc == GNUTLS_E_CERTIFICATE_VERIFICATION_ERROR) {
            gnutls_datum_t out = {NULL, 0};
            unsigned status = gnutls_session_get_verify_cert_status(s);
            gnutls_certificate_verification_status_print(status, GNUTLS_CRT_X509, &out, 0);
            vb_error_set(err, "TLS handshake: client certificate refused: %s",
                         out.data ? (const char *)out.data : gnutls_strerror(rc));
            gnutls_free(out.data);
        } else if (t->psk) {
            /* GnuTLS does not say which: both end the handshake the same way */
            vb_error_set(err,
                         "TLS handshake with a PSK client%s%s: %s (an unknown user or a "
                         "wrong key)",
                         user && *user ? " as " : "", user && *user ? user : "",
                         gnutls_strerror(rc));
        } else {
            vb_error_set(err, "TLS handshake: %s", gnutls_strerror(rc));
        }
        w->tls = NULL;
        gnutls_deinit(s);
        return -1;
    }
    describe_peer(s, t, who, wholen);
    return 0;
}

void nbd_tls_end(struct nbd_wire *w)
{
    if (!w->tls)
        return;
    wire_set_deadline(w, 1000); /* a client that does not read must not hold us */
    gnutls_bye(w->tls, GNUTLS_SHUT_WR);
    gnutls_deinit(w->tls);
    w->tls = NULL;
}

static ssize_t tls_result(struct nbd_wire *w, ssize_t n)
{
    if (n >= 0)
        return n;
    if (n == GNUTLS_E_PREMATURE_TERMINATION)
        return 0; /* the client closed without a close notification: an ordinary EOF */
    int e = gnutls_error_is_fatal((int)n) ? 0 : EAGAIN;
    if (!e)
        e = wire_time_left(w) == 0 ? ETIMEDOUT : n == GNUTLS_E_PULL_ERROR ? ECONNRESET : EPROTO;
    errno = e;
    return -1;
}

ssize_t nbd_tls_recv(struct nbd_wire *w, void *buf, size_t len)
{
    for (;;) {
        ssize_t n = gnutls_record_recv(w->tls, buf, len);
        if (n != GNUTLS_E_INTERRUPTED && n != GNUTLS_E_AGAIN)
            return tls_result(w, n);
    }
}

ssize_t nbd_tls_send(struct nbd_wire *w, const void *buf, size_t len)
{
    for (;;) {
        ssize_t n = gnutls_record_send(w->tls, buf, len);
        if (n != GNUTLS_E_INTERRUPTED && n != GNUTLS_E_AGAIN)
            return tls_result(w, n);
    }
}
