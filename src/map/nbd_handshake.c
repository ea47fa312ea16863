/* Phase one of the NBD protocol: the fixed newstyle handshake and option haggling
 * (NBD_OPT_*). Every option's payload is length-checked before it is parsed; a client that
 * breaks the framing (bad magic, truncated data) is disconnected, one that merely asks for
 * something we do not offer gets an error reply and may continue. With TLS configured,
 * NBD_OPT_STARTTLS must come first: every other option gets NBD_REP_ERR_TLS_REQD until
 * then (ABORT excepted), and the haggling goes on inside the TLS session. */
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "log.h"
#include "nbd_conn.h"
#include "nbd_proto.h"
#include "nbd_tls.h"
#include "nbd_wire.h"

#define MAX_OPTION_DATA 65536 /* any legal option fits (names and queries are <= 4 KiB) */
#define MAX_OPTIONS     1024  /* options per connection before we give up on the client */

static int reply(struct nbd_conn *c, uint32_t opt, uint32_t type, const void *data, uint32_t len)
{
    uint8_t hdr[20];
    put_be64(hdr, NBD_REPLY_OPT);
    put_be32(hdr + 8, opt);
    put_be32(hdr + 12, type);
    put_be32(hdr + 16, len);
    struct iovec iov[2] = {{hdr, sizeof hdr}, {(void *)data, len}};
    return wire_writev(&c->w, iov, len ? 2 : 1);
}

static int reply_error(struct nbd_conn *c, uint32_t opt, uint32_t type, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static int reply_error(struct nbd_conn *c, uint32_t opt, uint32_t type, const char *fmt, ...)
{
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    vb_debug("%s: option %" PRIu32 ": %s", c->peer, opt, msg);
    return reply(c, opt, type, msg, (uint32_t)strlen(msg));
}

/* A length-prefixed string at data[*pos] (u32 length, bytes); NUL-terminated copy to out. */
static int take_string(const uint8_t *data, uint32_t len, uint32_t *pos, char *out, size_t outlen)
{
    if (len - *pos < 4)
        return -1;
    uint32_t n = get_be32(data + *pos);
    *pos += 4;
    if (n > len - *pos || n >= outlen || n > NBD_MAX_STRING)
        return -1;
    memcpy(out, data + *pos, n);
    out[n] = '\0';
    *pos += n;
    return memchr(out, '\0', n) ? -1 : 0; /* an embedded NUL is no valid name */
}

static int send_export_info(struct nbd_conn *c, uint32_t opt, struct map_export *ex,
                            const uint8_t *req, uint16_t nreq)
{
    uint8_t b[12];
    put_be16(b, NBD_INFO_EXPORT);
    put_be64(b + 2, export_size(ex));
    put_be16(b + 10, nbd_export_flags(ex));
    if (reply(c, opt, NBD_REP_INFO, b, 12) < 0)
        return -1;
    for (uint16_t i = 0; i < nreq; i++) {
        uint16_t what = get_be16(req + 2 * i);
        const char *s = what == NBD_INFO_NAME          ? export_name(ex)
                        : what == NBD_INFO_DESCRIPTION ? export_description(ex)
                                                       : NULL;
        if (!s)
            continue;
        uint8_t out[2 + NBD_MAX_STRING];
        size_t n = strnlen(s, NBD_MAX_STRING);
        put_be16(out, what);
        memcpy(out + 2, s, n);
        if (reply(c, opt, NBD_REP_INFO, out, (uint32_t)(2 + n)) < 0)
            return -1;
    }
    /* always sent: clients must know that requests above 32 MiB are refused */
    put_be16(b, NBD_INFO_BLOCK_SIZE);
    put_be32(b + 2, NBD_MIN_BLOCK);
    put_be32(b + 6, NBD_PREFERRED_BLOCK);
    uint8_t bs[14];
    memcpy(bs, b, 10);
    put_be32(bs + 10, NBD_MAX_REQUEST);
    if (reply(c, opt, NBD_REP_INFO, bs, 14) < 0)
        return -1;
    return reply(c, opt, NBD_REP_ACK, NULL, 0);
}

/* NBD_OPT_INFO and NBD_OPT_GO. Returns 1 when GO chose an export. */
static int opt_info_go(struct nbd_conn *c, uint32_t opt, const uint8_t *data, uint32_t len)
{
    char name[NBD_MAX_STRING + 1];
    uint32_t pos = 0;
    if (take_string(data, len, &pos, name, sizeof name) < 0 || len - pos < 2)
        return reply_error(c, opt, NBD_REP_ERR_INVALID, "malformed export name");
    uint16_t nreq = get_be16(data + pos);
    pos += 2;
    if ((uint32_t)nreq * 2 != len - pos)
        return reply_error(c, opt, NBD_REP_ERR_INVALID, "malformed information requests");
    struct map_export *ex = nbd_server_find(c->srv, name);
    if (!ex)
        return reply_error(c, opt, NBD_REP_ERR_UNKNOWN, "no export named '%s'", name);
    if (send_export_info(c, opt, ex, data + pos, nreq) < 0)
        return -1;
    if (opt == NBD_OPT_INFO)
        return 0;
    c->ex = ex;
    /* contexts selected for another export do not apply to this one */
    if (c->meta_alloc && strcmp(c->meta_export, export_name(ex)) != 0 &&
        !(c->meta_export[0] == '\0' && ex == nbd_server_export(c->srv, 0)))
        c->meta_alloc = false;
    return 1;
}

static int opt_list(struct nbd_conn *c, uint32_t len)
{
    if (len != 0)
        return reply_error(c, NBD_OPT_LIST, NBD_REP_ERR_INVALID, "LIST takes no data");
    for (size_t i = 0; i < nbd_server_count(c->srv); i++) {
        struct map_export *ex = nbd_server_export(c->srv, i);
        const char *name = export_name(ex), *desc = export_description(ex);
        /* names are checked when the server is made; both copies are capped regardless */
        size_t nl = strnlen(name, NBD_MAX_STRING), dl = strnlen(desc, NBD_MAX_STRING);
        uint8_t out[4 + 2 * NBD_MAX_STRING];
        put_be32(out, (uint32_t)nl);
        memcpy(out + 4, name, nl);
        memcpy(out + 4 + nl, desc, dl);
        if (reply(c, NBD_OPT_LIST, NBD_REP_SERVER, out, (uint32_t)(4 + nl + dl)) < 0)
            return -1;
    }
    return reply(c, NBD_OPT_LIST, NBD_REP_ACK, NULL, 0);
}

static int send_context(struct nbd_conn *c, uint32_t opt)
{
    uint8_t out[4 + sizeof NBD_META_BASE_ALLOCATION];
    put_be32(out, NBD_META_ID_ALLOCATION);
    memcpy(out + 4, NBD_META_BASE_ALLOCATION, strlen(NBD_META_BASE_ALLOCATION));
    return reply(c, opt, NBD_REP_META_CONTEXT, out,
                 (uint32_t)(4 + strlen(NBD_META_BASE_ALLOCATION)));
}

/* NBD_OPT_LIST_META_CONTEXT / NBD_OPT_SET_META_CONTEXT: we offer base:allocation only. */
static int opt_meta(struct nbd_conn *c, uint32_t opt, const uint8_t *data, uint32_t len)
{
    bool set = opt == NBD_OPT_SET_META_CONTEXT;
    if (set && !c->structured)
        return reply_error(c, opt, NBD_REP_ERR_INVALID, "structured replies not negotiated");
    char name[NBD_MAX_STRING + 1], query[NBD_MAX_STRING + 1];
    uint32_t pos = 0;
    if (take_string(data, len, &pos, name, sizeof name) < 0 || len - pos < 4)
        return reply_error(c, opt, NBD_REP_ERR_INVALID, "malformed meta context request");
    uint32_t nq = get_be32(data + pos);
    pos += 4;
    /* check the whole request before answering any of it */
    uint32_t p = pos;
    for (uint32_t i = 0; i < nq; i++)
        if (take_string(data, len, &p, query, sizeof query) < 0)
            return reply_error(c, opt, NBD_REP_ERR_INVALID, "malformed meta context query");
    if (p != len)
        return reply_error(c, opt, NBD_REP_ERR_INVALID, "trailing bytes after the queries");
    if (!nbd_server_find(c->srv, name))
        return reply_error(c, opt, NBD_REP_ERR_UNKNOWN, "no export named '%s'", name);
    bool selected = false;
    if (!set && nq == 0) {
        if (send_context(c, opt) < 0)
            return -1;
    }
    for (uint32_t i = 0; i < nq; i++) {
        take_string(data, len, &pos, query, sizeof query);
        bool match =
            strcmp(query, NBD_META_BASE_ALLOCATION) == 0 || (!set && strcmp(query, "base:") == 0);
        if (match && !selected) {
            selected = true;
            if (send_context(c, opt) < 0)
                return -1;
        }
    }
    if (set) {
        c->meta_alloc = selected;
        snprintf(c->meta_export, sizeof c->meta_export, "%s", name);
    }
    return reply(c, opt, NBD_REP_ACK, NULL, 0);
}

/* NBD_OPT_EXPORT_NAME: the old way to finish haggling, no error reply possible. */
static int opt_export_name(struct nbd_conn *c, const uint8_t *data, uint32_t len)
{
    char name[NBD_MAX_STRING + 1];
    if (len > NBD_MAX_STRING || memchr(data, '\0', len))
        return -1;
    memcpy(name, data, len);
    name[len] = '\0';
    struct map_export *ex = nbd_server_find(c->srv, name);
    if (!ex) {
        vb_info("%s: no export named '%s': disconnecting", c->peer, name);
        return -1;
    }
    uint8_t out[10 + 124] = {0};
    put_be64(out, export_size(ex));
    put_be16(out + 8, nbd_export_flags(ex));
    if (wire_write(&c->w, out, c->no_zeroes ? 10 : sizeof out) < 0)
        return -1;
    c->ex = ex;
    if (c->meta_alloc && strcmp(c->meta_export, name) != 0)
        c->meta_alloc = false;
    return 1;
}

/* NBD_OPT_STARTTLS: ack in plain text, then the TLS handshake; the options that follow
 * arrive through the session. */
static int opt_starttls(struct nbd_conn *c, uint32_t len)
{
    const struct nbd_tls *tls = nbd_server_tls(c->srv);
    if (!tls)
        return reply_error(c, NBD_OPT_STARTTLS, NBD_REP_ERR_UNSUP,
                           "TLS is not offered by this server");
    if (len != 0)
        return reply_error(c, NBD_OPT_STARTTLS, NBD_REP_ERR_INVALID, "STARTTLS takes no data");
    if (c->w.tls)
        return reply_error(c, NBD_OPT_STARTTLS, NBD_REP_ERR_INVALID, "TLS is already on");
    if (reply(c, NBD_OPT_STARTTLS, NBD_REP_ACK, NULL, 0) < 0)
        return -1;
    struct vb_error err = {0};
    char who[256];
    if (nbd_tls_start(tls, &c->w, who, sizeof who, &err) < 0) {
        if (wire_time_left(&c->w) != 0) /* else the deadline is reported */
            vb_info("%s: %s: disconnecting", c->peer, err.msg);
        return -1;
    }
    vb_debug("%s: TLS on (%s)", c->peer, who);
    return 0;
}

int nbd_handshake(struct nbd_conn *c)
{
    const struct nbd_tls *tls = nbd_server_tls(c->srv);
    uint8_t hello[18];
    put_be64(hello, NBD_MAGIC);
    put_be64(hello + 8, NBD_IHAVEOPT);
    put_be16(hello + 16, NBD_FLAG_FIXED_NEWSTYLE | NBD_FLAG_NO_ZEROES);
    if (wire_write(&c->w, hello, sizeof hello) < 0)
        return -1;
    uint8_t cf[4];
    if (wire_read(&c->w, cf, 4) < 0)
        return -1;
    uint32_t client_flags = get_be32(cf);
    if (client_flags & ~(uint32_t)(NBD_FLAG_C_FIXED_NEWSTYLE | NBD_FLAG_C_NO_ZEROES)) {
        vb_info("%s: unknown client flags 0x%" PRIx32 ": disconnecting", c->peer, client_flags);
        return -1;
    }
    c->no_zeroes = client_flags & NBD_FLAG_C_NO_ZEROES;

    for (int n = 0; n < MAX_OPTIONS; n++) {
        uint8_t h[16];
        if (wire_read(&c->w, h, sizeof h) < 0)
            return -1;
        if (get_be64(h) != NBD_IHAVEOPT) {
            vb_info("%s: bad option magic 0x%016" PRIx64 ": disconnecting", c->peer, get_be64(h));
            return -1;
        }
        uint32_t opt = get_be32(h + 8), len = get_be32(h + 12);
        if (len > MAX_OPTION_DATA) {
            /* consume it to stay in sync, then refuse: nothing we offer needs that much */
            if (opt == NBD_OPT_EXPORT_NAME || wire_discard(&c->w, len) < 0)
                return -1;
            if (reply_error(c, opt, NBD_REP_ERR_TOO_BIG, "option data too large") < 0)
                return -1;
            continue;
        }
        if (nbd_conn_buffer(c, len ? len : 1) < 0 || wire_read(&c->w, c->buf, len) < 0)
            return -1;
        int rc;
        if (tls && !c->w.tls && opt != NBD_OPT_STARTTLS && opt != NBD_OPT_ABORT) {
            if (opt == NBD_OPT_EXPORT_NAME) { /* no error reply possible */
                vb_info("%s: EXPORT_NAME without TLS, which this server requires: "
                        "disconnecting",
                        c->peer);
                return -1;
            }
            if (reply_error(c, opt, NBD_REP_ERR_TLS_REQD, "this server requires TLS") < 0)
                return -1;
            continue;
        }
        switch (opt) {
        case NBD_OPT_EXPORT_NAME:
            return opt_export_name(c, c->buf, len) == 1 ? 0 : -1;
        case NBD_OPT_ABORT:
            /* the client may already have closed: an error sending the ack is fine */
            reply(c, opt, NBD_REP_ACK, NULL, 0);
            return -1;
        case NBD_OPT_LIST:
            rc = opt_list(c, len);
            break;
        case NBD_OPT_INFO:
        case NBD_OPT_GO:
            rc = opt_info_go(c, opt, c->buf, len);
            if (rc == 1)
                return 0;
            break;
        case NBD_OPT_STRUCTURED_REPLY:
            if (len != 0) {
                rc = reply_error(c, opt, NBD_REP_ERR_INVALID, "STRUCTURED_REPLY takes no data");
            } else {
                c->structured = true;
                rc = reply(c, opt, NBD_REP_ACK, NULL, 0);
            }
            break;
        case NBD_OPT_LIST_META_CONTEXT:
        case NBD_OPT_SET_META_CONTEXT:
            rc = opt_meta(c, opt, c->buf, len);
            break;
        case NBD_OPT_STARTTLS:
            rc = opt_starttls(c, len);
            break;
        default:
            rc = reply_error(c, opt, NBD_REP_ERR_UNSUP, "option %" PRIu32 " not supported", opt);
            break;
        }
        if (rc < 0)
            return -1;
    }
    vb_info("%s: more than %d options: disconnecting", c->peer, MAX_OPTIONS);
    return -1;
}
