/* virtmap's NBD server (handshake, limits, STARTTLS, the wire) against a stand-in export,
 * driven over socketpairs by a client written here: NBD_OPT_LIST and INFO with the longest
 * name and a description beyond the protocol's string limit, names above it refused, the
 * connection limit, the handshake deadline (and no deadline once serving), STARTTLS with and
 * without TLS configured (TLS_REQD before it, PSK through GnuTLS after it, a wrong key
 * refused, a stalled TLS handshake cut off by the deadline), large reads through TLS. */
#include <errno.h>
#include <gnutls/gnutls.h>
#include <poll.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "export.h"
#include "log.h"
#include "nbd_proto.h"
#include "nbd_server.h"
#include "nbd_tls.h"
#include "nbd_wire.h"
#include "testutil.h"

/* ---- the stand-in export: a pattern of the given size, read-only ---- */

struct map_export {
    char *name, *desc;
    uint64_t size;
};

static uint8_t pattern_at(uint64_t off)
{
    return (uint8_t)(off * 7 + (off >> 12));
}

void export_io_free(struct export_io *io)
{
    memset(io, 0, sizeof *io);
}
const char *export_name(const struct map_export *ex)
{
    return ex->name;
}
const char *export_description(const struct map_export *ex)
{
    return ex->desc;
}
uint64_t export_size(const struct map_export *ex)
{
    return ex->size;
}
bool export_readonly(const struct map_export *ex)
{
    (void)ex;
    return true;
}
int export_read(struct map_export *ex, struct export_io *io, uint64_t off, size_t len, void *dst,
                struct vb_error *err)
{
    (void)ex, (void)io, (void)err;
    for (size_t i = 0; i < len; i++)
        ((uint8_t *)dst)[i] = pattern_at(off + i);
    return 0;
}
static int refuse(struct vb_error *err)
{
    err->errnum = EPERM;
    return vb_error_set(err, "read-only");
}
int export_write(struct map_export *ex, struct export_io *io, uint64_t off, size_t len,
                 const void *src, bool fua, struct vb_error *err)
{
    (void)ex, (void)io, (void)off, (void)len, (void)src, (void)fua;
    return refuse(err);
}
int export_zero(struct map_export *ex, struct export_io *io, uint64_t off, uint64_t len, bool fua,
                struct vb_error *err)
{
    (void)ex, (void)io, (void)off, (void)len, (void)fua;
    return refuse(err);
}
int export_flush(struct map_export *ex, struct vb_error *err)
{
    (void)ex, (void)err;
    return 0;
}
int export_cache(struct map_export *ex, struct export_io *io, uint64_t off, uint64_t len,
                 struct vb_error *err)
{
    (void)ex, (void)io, (void)off, (void)len, (void)err;
    return 0;
}
int export_block_status(struct map_export *ex, uint64_t off, uint64_t len, size_t max_extents,
                        export_extent_fn fn, void *opaque, struct vb_error *err)
{
    (void)ex, (void)off, (void)max_extents, (void)err;
    fn(opaque, len, 0);
    return 0;
}

/* ---- a small client: plain socket or GnuTLS session ---- */

struct cli {
    int fd;
    gnutls_session_t tls;
};

static int cli_read(struct cli *c, void *buf, size_t len)
{
    for (size_t done = 0; done < len;) {
        ssize_t n = c->tls ? gnutls_record_recv(c->tls, (char *)buf + done, len - done)
                           : recv(c->fd, (char *)buf + done, len - done, 0);
        if (n <= 0)
            return -1;
        done += (size_t)n;
    }
    return 0;
}

static int cli_write(struct cli *c, const void *buf, size_t len)
{
    for (size_t done = 0; done < len;) {
        ssize_t n = c->tls ? gnutls_record_send(c->tls, (const char *)buf + done, len - done)
                           : send(c->fd, (const char *)buf + done, len - done, MSG_NOSIGNAL);
        if (n <= 0)
            return -1;
        done += (size_t)n;
    }
    return 0;
}

/* true once the server hung up (EOF or reset) within ms */
static bool cli_hung_up(struct cli *c, int ms)
{
    struct pollfd pf = {.fd = c->fd, .events = POLLIN};
    if (poll(&pf, 1, ms) <= 0)
        return false;
    char b;
    return recv(c->fd, &b, 1, MSG_DONTWAIT) <= 0;
}

static struct cli cli_connect(struct nbd_server *srv)
{
    int sv[2];
    struct cli c = {-1, NULL};
    struct vb_error err = {0};
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0)
        return c;
    if (nbd_server_serve(srv, sv[1], NULL, "test client", &err) < 0) {
        close(sv[0]);
        return c;
    }
    c.fd = sv[0];
    return c;
}

static void cli_close(struct cli *c)
{
    if (c->tls)
        gnutls_deinit(c->tls);
    c->tls = NULL;
    if (c->fd >= 0)
        close(c->fd);
    c->fd = -1;
}

static int hello(struct cli *c)
{
    uint8_t h[18], flags[4];
    if (cli_read(c, h, sizeof h) < 0 || get_be64(h) != NBD_MAGIC)
        return -1;
    put_be32(flags, NBD_FLAG_C_FIXED_NEWSTYLE | NBD_FLAG_C_NO_ZEROES);
    return cli_write(c, flags, 4);
}

static int option(struct cli *c, uint32_t opt, const void *data, uint32_t len)
{
    uint8_t h[16];
    put_be64(h, NBD_IHAVEOPT);
    put_be32(h + 8, opt);
    put_be32(h + 12, len);
    return cli_write(c, h, 16) < 0 || (len && cli_write(c, data, len) < 0) ? -1 : 0;
}

/* reply type, or 0 on a broken reply; data (malloc'ed) in *out */
static uint32_t opt_reply(struct cli *c, uint32_t want_opt, uint8_t **out, uint32_t *outlen)
{
    uint8_t h[20];
    *out = NULL;
    if (cli_read(c, h, 20) < 0 || get_be64(h) != NBD_REPLY_OPT || get_be32(h + 8) != want_opt)
        return 0;
    uint32_t len = get_be32(h + 16);
    *out = malloc(len ? len : 1);
    if (cli_read(c, *out, len) < 0) {
        free(*out);
        *out = NULL;
        return 0;
    }
    *outlen = len;
    return get_be32(h + 12);
}

static uint32_t simple_option(struct cli *c, uint32_t opt, const void *data, uint32_t len)
{
    uint8_t *out;
    uint32_t outlen;
    if (option(c, opt, data, len) < 0)
        return 0;
    uint32_t t = opt_reply(c, opt, &out, &outlen);
    free(out);
    return t;
}

static uint8_t *go_data(const char *name, uint32_t *len, const uint16_t *req, uint16_t nreq)
{
    size_t nl = strlen(name);
    *len = (uint32_t)(4 + nl + 2 + 2 * nreq);
    uint8_t *d = malloc(*len);
    put_be32(d, (uint32_t)nl);
    memcpy(d + 4, name, nl);
    put_be16(d + 4 + nl, nreq);
    for (uint16_t i = 0; i < nreq; i++)
        put_be16(d + 6 + nl + 2 * i, req[i]);
    return d;
}

/* NBD_OPT_GO; 0 once the export is chosen */
static int go(struct cli *c, const char *name)
{
    uint32_t len;
    uint8_t *d = go_data(name, &len, NULL, 0);
    int rc = option(c, NBD_OPT_GO, d, len);
    free(d);
    for (uint32_t t = 0; rc == 0;) {
        uint8_t *out;
        uint32_t outlen;
        t = opt_reply(c, NBD_OPT_GO, &out, &outlen);
        free(out);
        if (t == NBD_REP_ACK)
            return 0;
        if (t != NBD_REP_INFO)
            return -1;
    }
    return -1;
}

/* a simple-reply READ whose data must be the pattern */
static int read_check(struct cli *c, uint64_t off, uint32_t len)
{
    uint8_t r[NBD_REQUEST_LEN] = {0}, h[16];
    put_be32(r, NBD_REQUEST_MAGIC);
    put_be16(r + 6, NBD_CMD_READ);
    put_be64(r + 8, 42);
    put_be64(r + 16, off);
    put_be32(r + 24, len);
    if (cli_write(c, r, sizeof r) < 0 || cli_read(c, h, 16) < 0 ||
        get_be32(h) != NBD_SIMPLE_REPLY_MAGIC || get_be32(h + 4) != 0 || get_be64(h + 8) != 42)
        return -1;
    uint8_t *buf = malloc(len);
    int rc = cli_read(c, buf, len);
    for (uint32_t i = 0; rc == 0 && i < len; i++)
        if (buf[i] != pattern_at(off + i))
            rc = -1;
    free(buf);
    return rc;
}

static struct map_export *export_new(size_t namelen, size_t desclen)
{
    struct map_export *ex = calloc(1, sizeof *ex);
    ex->name = malloc(namelen + 1);
    memset(ex->name, 'n', namelen);
    ex->name[namelen] = '\0';
    ex->desc = malloc(desclen + 1);
    memset(ex->desc, 'd', desclen);
    ex->desc[desclen] = '\0';
    ex->size = 64 << 20;
    return ex;
}

static void export_del(struct map_export *ex)
{
    free(ex->name);
    free(ex->desc);
    free(ex);
}

static struct nbd_server *server(struct map_export **ex, unsigned max, unsigned handshake_ms,
                                 const struct nbd_tls *tls)
{
    struct nbd_server_config cfg = {max, handshake_ms, tls};
    struct vb_error err = {0};
    struct nbd_server *srv = nbd_server_new(ex, 1, &cfg, &err);
    CHECK_MSG(srv, "nbd_server_new: %s", err.msg);
    return srv;
}

static bool all_bytes(const uint8_t *p, size_t n, uint8_t v)
{
    for (size_t i = 0; i < n; i++)
        if (p[i] != v)
            return false;
    return true;
}

/* LIST and INFO with the longest name the protocol allows and a description beyond its
 * string limit: every copy fits, the description is cut at 4096 bytes. */
static void test_list_longest(void)
{
    struct map_export *ex = export_new(NBD_MAX_STRING, 3 * NBD_MAX_STRING);
    struct nbd_server *srv = server(&ex, 4, 10000, NULL);
    struct cli c = cli_connect(srv);
    CHECK(hello(&c) == 0);
    CHECK(option(&c, NBD_OPT_LIST, NULL, 0) == 0);
    uint8_t *out;
    uint32_t len;
    CHECK(opt_reply(&c, NBD_OPT_LIST, &out, &len) == NBD_REP_SERVER);
    CHECK_MSG(out && len == 4 + 2 * NBD_MAX_STRING, "LIST reply of %u bytes", out ? len : 0);
    if (out && len == 4 + 2 * NBD_MAX_STRING) {
        CHECK(get_be32(out) == NBD_MAX_STRING);
        CHECK(all_bytes(out + 4, NBD_MAX_STRING, 'n'));
        CHECK(all_bytes(out + 4 + NBD_MAX_STRING, NBD_MAX_STRING, 'd'));
    }
    free(out);
    CHECK(opt_reply(&c, NBD_OPT_LIST, &out, &len) == NBD_REP_ACK);
    free(out);

    uint16_t req[] = {NBD_INFO_NAME, NBD_INFO_DESCRIPTION};
    uint32_t glen;
    uint8_t *g = go_data(ex->name, &glen, req, 2);
    CHECK(option(&c, NBD_OPT_INFO, g, glen) == 0);
    free(g);
    int seen = 0;
    for (uint32_t t; (t = opt_reply(&c, NBD_OPT_INFO, &out, &len)) == NBD_REP_INFO; free(out)) {
        uint16_t what = get_be16(out);
        if (what == NBD_INFO_NAME || what == NBD_INFO_DESCRIPTION) {
            CHECK(len == 2 + NBD_MAX_STRING);
            CHECK(all_bytes(out + 2, len - 2, what == NBD_INFO_NAME ? 'n' : 'd'));
            seen++;
        }
    }
    free(out);
    CHECK(seen == 2);
    CHECK(go(&c, ex->name) == 0);
    CHECK(read_check(&c, 4096, 65536) == 0);
    cli_close(&c);
    nbd_server_free(srv);

    /* one byte more is refused when the server is made */
    struct map_export *big = export_new(NBD_MAX_STRING + 1, 10);
    struct vb_error err = {0};
    CHECK(nbd_server_new(&big, 1, NULL, &err) == NULL);
    CHECK_MSG(strstr(err.msg, "4096"), "error: %s", err.msg);
    export_del(big);
    export_del(ex);
}

/* max_connections clients are served, the next is closed before the greeting, and a slot
 * that frees up is used again. */
static void test_connection_limit(void)
{
    struct map_export *ex = export_new(3, 3);
    struct nbd_server *srv = server(&ex, 2, 10000, NULL);
    struct cli a = cli_connect(srv), b = cli_connect(srv), extra = cli_connect(srv);
    CHECK(hello(&a) == 0 && go(&a, "nnn") == 0);
    CHECK(hello(&b) == 0 && go(&b, "nnn") == 0);
    uint8_t h[18];
    CHECK_MSG(cli_read(&extra, h, sizeof h) < 0, "a third client got the greeting");
    CHECK(read_check(&a, 0, 4096) == 0 && read_check(&b, 0, 4096) == 0);
    cli_close(&extra);
    cli_close(&a);
    for (int i = 0; i < 5000 && nbd_server_reap(srv) > 1; i++)
        usleep(1000);
    struct cli d = cli_connect(srv);
    CHECK(hello(&d) == 0 && go(&d, "nnn") == 0 && read_check(&d, 8192, 512) == 0);
    cli_close(&b);
    cli_close(&d);
    nbd_server_free(srv);
    export_del(ex);
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

/* A client sending its handshake a byte at a time is cut off by the deadline of the whole
 * handshake; one past the handshake may idle longer than that. */
static void test_handshake_deadline(void)
{
    struct map_export *ex = export_new(3, 3);
    struct nbd_server *srv = server(&ex, 4, 300, NULL);
    struct cli c = cli_connect(srv);
    uint8_t h[18];
    CHECK(cli_read(&c, h, sizeof h) == 0);
    uint8_t drip[4 + 16] = {0, 0, 0, 3};
    put_be64(drip + 4, NBD_IHAVEOPT);
    put_be32(drip + 12, NBD_OPT_LIST);
    double t0 = now_s();
    bool hung_up = false;
    for (size_t i = 0; i < sizeof drip && !hung_up; i++) {
        send(c.fd, drip + i, 1, MSG_NOSIGNAL);
        hung_up = cli_hung_up(&c, 100);
    }
    /* 20 bytes at 100 ms would take 2 s: the 300 ms deadline must end it well before */
    CHECK_MSG(hung_up, "the dripping client was not disconnected");
    CHECK_MSG(now_s() - t0 < 1.9, "disconnected only after %.2f s", now_s() - t0);
    cli_close(&c);

    struct cli idle = cli_connect(srv);
    CHECK(hello(&idle) == 0 && go(&idle, "nnn") == 0);
    usleep(600 * 1000);
    CHECK_MSG(read_check(&idle, 0, 4096) == 0, "a served client was cut off by the deadline");
    cli_close(&idle);
    nbd_server_free(srv);
    export_del(ex);
}

static const char PSK_HEX[] = "00112233445566778899aabbccddeeff";

static int tls_client(struct cli *c, const char *user, const char *hex)
{
    gnutls_psk_client_credentials_t cred;
    gnutls_psk_allocate_client_credentials(&cred);
    gnutls_datum_t key = {(unsigned char *)hex, (unsigned)strlen(hex)};
    gnutls_psk_set_client_credentials(cred, user, &key, GNUTLS_PSK_KEY_HEX);
    gnutls_init(&c->tls, GNUTLS_CLIENT);
    gnutls_set_default_priority_append(c->tls, "+ECDHE-PSK:+DHE-PSK:+PSK", NULL, 0);
    gnutls_credentials_set(c->tls, GNUTLS_CRD_PSK, cred);
    gnutls_transport_set_int(c->tls, c->fd);
    int rc;
    do
        rc = gnutls_handshake(c->tls);
    while (rc < 0 && !gnutls_error_is_fatal(rc));
    /* the session keeps what it needs of the credentials until deinit */
    if (rc < 0) {
        gnutls_deinit(c->tls);
        c->tls = NULL;
    }
    gnutls_psk_free_client_credentials(cred);
    return rc < 0 ? -1 : 0;
}

/* Without TLS configured STARTTLS is unsupported and nothing else changes; with it, every
 * option but STARTTLS and ABORT gets TLS_REQD, STARTTLS starts a PSK session in which the
 * haggling and reads (large ones too) go on, and a wrong key gets no session. */
static void test_starttls(void)
{
    struct map_export *ex = export_new(3, 3);
    struct nbd_server *plain = server(&ex, 4, 10000, NULL);
    struct cli c = cli_connect(plain);
    CHECK(hello(&c) == 0);
    CHECK(simple_option(&c, NBD_OPT_STARTTLS, NULL, 0) == NBD_REP_ERR_UNSUP);
    CHECK(go(&c, "nnn") == 0 && read_check(&c, 0, 512) == 0);
    cli_close(&c);
    nbd_server_free(plain);

    const char *psk = test_path("keys.psk");
    char line[128];
    snprintf(line, sizeof line, "alice:%s\n", PSK_HEX);
    CHECK(test_write_file(psk, line, strlen(line)) == 0);
    struct vb_error err = {0};
    struct nbd_tls_options to = {.psk_file = psk};
    struct nbd_tls *tls = nbd_tls_new(&to, &err);
    CHECK_MSG(tls, "nbd_tls_new: %s", err.msg);
    if (!tls) {
        export_del(ex);
        return;
    }
    struct nbd_server *srv = server(&ex, 4, 10000, tls);
    c = cli_connect(srv);
    CHECK(hello(&c) == 0);
    CHECK(simple_option(&c, NBD_OPT_LIST, NULL, 0) == NBD_REP_ERR_TLS_REQD);
    uint32_t glen;
    uint8_t *g = go_data("nnn", &glen, NULL, 0);
    CHECK(simple_option(&c, NBD_OPT_GO, g, glen) == NBD_REP_ERR_TLS_REQD);
    CHECK(simple_option(&c, NBD_OPT_STRUCTURED_REPLY, NULL, 0) == NBD_REP_ERR_TLS_REQD);
    CHECK(simple_option(&c, NBD_OPT_STARTTLS, "x", 1) == NBD_REP_ERR_INVALID);
    CHECK(simple_option(&c, NBD_OPT_STARTTLS, NULL, 0) == NBD_REP_ACK);
    CHECK(tls_client(&c, "alice", PSK_HEX) == 0);
    CHECK(simple_option(&c, NBD_OPT_STARTTLS, NULL, 0) == NBD_REP_ERR_INVALID);
    CHECK(simple_option(&c, NBD_OPT_INFO, g, glen) == NBD_REP_INFO);
    uint8_t *out;
    uint32_t len;
    while (opt_reply(&c, NBD_OPT_INFO, &out, &len) == NBD_REP_INFO)
        free(out);
    free(out);
    CHECK(go(&c, "nnn") == 0);
    CHECK(read_check(&c, 123, 1000) == 0);
    CHECK(read_check(&c, 1 << 20, 5 << 20) == 0); /* above the kept buffer, through TLS */
    CHECK(read_check(&c, 0, 4096) == 0);
    cli_close(&c);

    /* the old way into transmission cannot get an error reply: a disconnect */
    c = cli_connect(srv);
    CHECK(hello(&c) == 0 && option(&c, NBD_OPT_EXPORT_NAME, "nnn", 3) == 0);
    CHECK(cli_hung_up(&c, 5000));
    cli_close(&c);

    c = cli_connect(srv);
    CHECK(hello(&c) == 0);
    CHECK(simple_option(&c, NBD_OPT_STARTTLS, NULL, 0) == NBD_REP_ACK);
    CHECK_MSG(tls_client(&c, "alice", "ffeeddccbbaa99887766554433221100") < 0,
              "a wrong key got a TLS session");
    cli_close(&c);
    free(g);
    nbd_server_free(srv);

    /* the deadline covers the TLS handshake: a client that stalls after STARTTLS is cut off */
    srv = server(&ex, 4, 300, tls);
    c = cli_connect(srv);
    CHECK(hello(&c) == 0);
    CHECK(simple_option(&c, NBD_OPT_STARTTLS, NULL, 0) == NBD_REP_ACK);
    double t0 = now_s();
    CHECK_MSG(cli_hung_up(&c, 5000), "a client stalling in the TLS handshake stayed");
    CHECK_MSG(now_s() - t0 < 4, "cut off only after %.2f s", now_s() - t0);
    cli_close(&c);
    nbd_server_free(srv);
    nbd_tls_free(tls);

    /* a key file that is no key file fails when loaded, without showing its content */
    CHECK(test_write_file(psk, "alice:secretnothex\n", 19) == 0);
    vb_error_clear(&err);
    CHECK(nbd_tls_new(&to, &err) == NULL);
    CHECK_MSG(strstr(err.msg, "line 1") && !strstr(err.msg, "secret"), "error: %s", err.msg);
    export_del(ex);
}

int main(void)
{
    vb_log_init("test_map_server", false, true);
    test_list_longest();
    test_connection_limit();
    test_handshake_deadline();
    test_starttls();
    test_cleanup();
    return test_finish("test_map_server");
}
