/* Phase two of the NBD protocol: requests and replies. Every request is checked in one
 * place (check_request) before any work: known command and flags, flags the export
 * advertised, range inside the disk, length limits, writes on a read-only export. A request
 * that fails the check gets an error reply (its write payload is consumed first, so the
 * stream stays in sync); only a broken frame (bad magic, EOF inside a request) ends the
 * connection. Requests of one connection are served in order; clients get parallelism from
 * several connections (multi-conn). What a large request made the connection allocate is
 * given back once it is answered (nbd_conn_trim). */
#include <errno.h>
#include <inttypes.h>
#include <string.h>

#include "log.h"
#include "nbd_conn.h"
#include "nbd_proto.h"
#include "nbd_wire.h"

#define MAX_EXTENTS 2048 /* descriptors per BLOCK_STATUS reply */

struct request {
    uint16_t flags, type;
    uint64_t cookie, offset;
    uint32_t length;
};

static const char *command_name(uint16_t type)
{
    static const char *const names[] = {"READ", "WRITE", "DISC",         "FLUSH",
                                        "TRIM", "CACHE", "WRITE_ZEROES", "BLOCK_STATUS"};
    return type < sizeof names / sizeof *names ? names[type] : "UNKNOWN";
}

/* The NBD error for a request, or 0 if it may be served. msg says why, for the log and
 * the structured error chunk. */
static uint32_t check_request(const struct nbd_conn *c, const struct request *r, const char **msg)
{
    const uint16_t tf = c->tflags;
    uint16_t allowed;
    switch (r->type) {
    case NBD_CMD_READ:
        allowed = NBD_CMD_FLAG_DF;
        break;
    case NBD_CMD_WRITE:
    case NBD_CMD_TRIM:
        allowed = NBD_CMD_FLAG_FUA;
        break;
    case NBD_CMD_WRITE_ZEROES:
        allowed = NBD_CMD_FLAG_FUA | NBD_CMD_FLAG_NO_HOLE | NBD_CMD_FLAG_FAST_ZERO;
        break;
    case NBD_CMD_BLOCK_STATUS:
        allowed = NBD_CMD_FLAG_REQ_ONE;
        break;
    case NBD_CMD_FLUSH:
    case NBD_CMD_CACHE:
    case NBD_CMD_DISC:
        allowed = 0;
        break;
    default:
        *msg = "unknown command";
        return NBD_EINVAL;
    }
    if (r->flags & ~allowed) {
        *msg = "flag not valid for this command";
        return NBD_EINVAL;
    }
    if ((r->flags & NBD_CMD_FLAG_DF) && !c->structured) {
        *msg = "DF needs structured replies";
        return NBD_EINVAL;
    }
    if ((r->flags & NBD_CMD_FLAG_FAST_ZERO) && !(tf & NBD_FLAG_SEND_FAST_ZERO)) {
        *msg = "FAST_ZERO was not advertised";
        return NBD_EINVAL;
    }
    bool writes =
        r->type == NBD_CMD_WRITE || r->type == NBD_CMD_TRIM || r->type == NBD_CMD_WRITE_ZEROES;
    if (writes && (tf & NBD_FLAG_READ_ONLY)) {
        *msg = "the export is read-only";
        return NBD_EPERM;
    }
    if (r->type == NBD_CMD_FLUSH || r->type == NBD_CMD_DISC)
        return 0;
    if ((r->type == NBD_CMD_READ || r->type == NBD_CMD_WRITE) && r->length > NBD_MAX_REQUEST) {
        *msg = "request larger than the 32 MiB maximum";
        return NBD_EINVAL;
    }
    if (r->type == NBD_CMD_BLOCK_STATUS) {
        if (!c->structured || !c->meta_alloc) {
            *msg = "no meta context was negotiated";
            return NBD_EINVAL;
        }
        if (r->length == 0) {
            *msg = "zero length";
            return NBD_EINVAL;
        }
    }
    uint64_t size = export_size(c->ex);
    if (r->offset > size || r->length > size - r->offset) {
        *msg = "range beyond the end of the disk";
        return writes ? NBD_ENOSPC : NBD_EINVAL;
    }
    return 0;
}

static int simple_reply(struct nbd_conn *c, uint64_t cookie, uint32_t error, const void *data,
                        size_t len)
{
    uint8_t h[16];
    put_be32(h, NBD_SIMPLE_REPLY_MAGIC);
    put_be32(h + 4, error);
    put_be64(h + 8, cookie);
    struct iovec iov[2] = {{h, sizeof h}, {(void *)data, len}};
    return wire_writev(&c->w, iov, error == 0 && len ? 2 : 1);
}

static int chunk(struct nbd_conn *c, uint64_t cookie, uint16_t flags, uint16_t type,
                 const void *pre, size_t prelen, const void *data, size_t len)
{
    uint8_t h[20];
    put_be32(h, NBD_STRUCTURED_REPLY_MAGIC);
    put_be16(h + 4, flags);
    put_be16(h + 6, type);
    put_be64(h + 8, cookie);
    put_be32(h + 16, (uint32_t)(prelen + len));
    struct iovec iov[3] = {{h, sizeof h}, {(void *)pre, prelen}, {(void *)data, len}};
    return wire_writev(&c->w, iov, len ? 3 : prelen ? 2 : 1);
}

static int error_reply(struct nbd_conn *c, const struct request *r, uint32_t error, const char *msg)
{
    vb_debug("%s: %s %" PRIu64 "+%" PRIu32 ": error %" PRIu32 ": %s", c->peer,
             command_name(r->type), r->offset, r->length, error, msg);
    /* reads must be answered with a structured error once structured replies are on;
     * the message helps whoever debugs the client */
    if (c->structured && (r->type == NBD_CMD_READ || r->type == NBD_CMD_BLOCK_STATUS)) {
        size_t ml = strlen(msg) > 1024 ? 1024 : strlen(msg);
        uint8_t pre[6];
        put_be32(pre, error);
        put_be16(pre + 4, (uint16_t)ml);
        return chunk(c, r->cookie, NBD_REPLY_FLAG_DONE, NBD_REPLY_TYPE_ERROR, pre, 6, msg, ml);
    }
    return simple_reply(c, r->cookie, error, NULL, 0);
}

static uint32_t errno_to_nbd(int e)
{
    switch (e) {
    case EPERM:
    case EROFS:
        return NBD_EPERM;
    case ENOMEM:
        return NBD_ENOMEM;
    case ENOSPC:
    case EDQUOT:
        return NBD_ENOSPC;
    default:
        return NBD_EIO;
    }
}

static int fail(struct nbd_conn *c, const struct request *r, struct vb_error *err)
{
    vb_warn("%s: %s %" PRIu64 "+%" PRIu32 " failed: %s", c->peer, command_name(r->type), r->offset,
            r->length, err->msg);
    return error_reply(c, r, errno_to_nbd(err->errnum), err->msg);
}

static int do_read(struct nbd_conn *c, const struct request *r)
{
    struct vb_error err = {0};
    if (nbd_conn_buffer(c, r->length ? r->length : 1) < 0) {
        vb_error_set(&err, "out of memory");
        err.errnum = ENOMEM;
        return fail(c, r, &err);
    }
    if (export_read(c->ex, &c->io, r->offset, r->length, c->buf, &err) < 0)
        return fail(c, r, &err);
    if (!c->structured)
        return simple_reply(c, r->cookie, 0, c->buf, r->length);
    uint8_t off[8];
    put_be64(off, r->offset);
    return chunk(c, r->cookie, NBD_REPLY_FLAG_DONE, NBD_REPLY_TYPE_OFFSET_DATA, off, 8, c->buf,
                 r->length);
}

struct status_out {
    uint8_t *p;
    size_t n, max;
};

static int add_extent(void *opaque, uint64_t len, uint32_t flags)
{
    struct status_out *o = opaque;
    /* block status answers a request of at most 4 GiB - 1, so len fits in 32 bits */
    put_be32(o->p + 8 * o->n, (uint32_t)len);
    put_be32(o->p + 8 * o->n + 4, flags);
    return ++o->n >= o->max;
}

static int do_block_status(struct nbd_conn *c, const struct request *r)
{
    struct vb_error err = {0};
    size_t max = (r->flags & NBD_CMD_FLAG_REQ_ONE) ? 1 : MAX_EXTENTS;
    if (nbd_conn_buffer(c, 8 * MAX_EXTENTS) < 0) {
        vb_error_set(&err, "out of memory");
        err.errnum = ENOMEM;
        return fail(c, r, &err);
    }
    struct status_out o = {.p = c->buf, .max = max};
    if (export_block_status(c->ex, r->offset, r->length, max, add_extent, &o, &err) < 0)
        return fail(c, r, &err);
    uint8_t id[4];
    put_be32(id, NBD_META_ID_ALLOCATION);
    return chunk(c, r->cookie, NBD_REPLY_FLAG_DONE, NBD_REPLY_TYPE_BLOCK_STATUS, id, 4, c->buf,
                 8 * o.n);
}

/* Serves one checked request; returns -1 when the connection must end. */
static int serve(struct nbd_conn *c, const struct request *r)
{
    struct vb_error err = {0};
    int rc = 0;
    bool fua = r->flags & NBD_CMD_FLAG_FUA;
    switch (r->type) {
    case NBD_CMD_READ:
        return do_read(c, r);
    case NBD_CMD_BLOCK_STATUS:
        return do_block_status(c, r);
    case NBD_CMD_WRITE:
        rc = export_write(c->ex, &c->io, r->offset, r->length, c->buf, fua, &err);
        break;
    case NBD_CMD_TRIM:
    case NBD_CMD_WRITE_ZEROES:
        rc = export_zero(c->ex, &c->io, r->offset, r->length, fua, &err);
        break;
    case NBD_CMD_FLUSH:
        rc = export_flush(c->ex, &err);
        break;
    case NBD_CMD_CACHE:
        rc = export_cache(c->ex, &c->io, r->offset, r->length, &err);
        break;
    }
    if (rc < 0)
        return fail(c, r, &err);
    return simple_reply(c, r->cookie, 0, NULL, 0);
}

void nbd_transmission(struct nbd_conn *c)
{
    for (;;) {
        uint8_t h[NBD_REQUEST_LEN];
        if (wire_read(&c->w, h, sizeof h) < 0) {
            if (errno)
                vb_debug("%s: connection lost: %s", c->peer, strerror(errno));
            return;
        }
        if (get_be32(h) != NBD_REQUEST_MAGIC) {
            vb_info("%s: bad request magic 0x%08" PRIx32 ": disconnecting", c->peer, get_be32(h));
            return;
        }
        struct request r = {.flags = get_be16(h + 4),
                            .type = get_be16(h + 6),
                            .cookie = get_be64(h + 8),
                            .offset = get_be64(h + 16),
                            .length = get_be32(h + 24)};
        const char *msg = NULL;
        uint32_t error = check_request(c, &r, &msg);
        if (r.type == NBD_CMD_WRITE) {
            /* the payload follows whatever we think of the request */
            if (error || nbd_conn_buffer(c, r.length ? r.length : 1) < 0) {
                if (!error) {
                    error = NBD_ENOMEM;
                    msg = "out of memory";
                }
                if (wire_discard(&c->w, r.length) < 0)
                    return;
            } else if (wire_read(&c->w, c->buf, r.length) < 0) {
                return;
            }
        }
        if (r.type == NBD_CMD_DISC) /* never answered, whatever its flags */
            return;
        int rc = error ? error_reply(c, &r, error, msg) : serve(c, &r);
        nbd_conn_trim(c);
        if (rc < 0) {
            vb_debug("%s: cannot send a reply: %s", c->peer, strerror(errno));
            return;
        }
    }
}
