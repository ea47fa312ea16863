#include "nbd_wire.h"

#include <errno.h>
#include <poll.h>
#include <stdbool.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "nbd_tls.h"

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void wire_set_deadline(struct nbd_wire *w, unsigned ms)
{
    w->deadline_ms = ms ? now_ms() + ms : 0;
}

int wire_time_left(const struct nbd_wire *w)
{
    if (!w->deadline_ms)
        return -1;
    int64_t left = w->deadline_ms - now_ms();
    return left <= 0 ? 0 : left > 1000000000 ? 1000000000 : (int)left;
}

/* Waits until the socket is ready for ev or the deadline passes (ETIMEDOUT). Without a
 * deadline the blocking call that follows does the waiting. */
static int wait_ready(const struct nbd_wire *w, short ev)
{
    for (;;) {
        int left = wire_time_left(w);
        if (left < 0)
            return 0;
        if (left == 0) {
            errno = ETIMEDOUT;
            return -1;
        }
        struct pollfd pf = {.fd = w->fd, .events = ev};
        int r = poll(&pf, 1, left);
        if (r > 0)
            return 0; /* ready, or an error/hang-up that the call itself reports */
        if (r < 0 && errno != EINTR)
            return -1;
    }
}

/* With a deadline the socket is used without blocking: poll decides how long we wait. */
static int io_flags(const struct nbd_wire *w)
{
    return w->deadline_ms ? MSG_DONTWAIT : 0;
}

static bool retry(const struct nbd_wire *w, ssize_t n)
{
    return n < 0 &&
           (errno == EINTR || (w->deadline_ms && (errno == EAGAIN || errno == EWOULDBLOCK)));
}

ssize_t wire_recv_raw(struct nbd_wire *w, void *buf, size_t len)
{
    for (;;) {
        if (wait_ready(w, POLLIN) < 0)
            return -1;
        ssize_t n = recv(w->fd, buf, len, io_flags(w));
        if (!retry(w, n))
            return n;
    }
}

ssize_t wire_send_raw(struct nbd_wire *w, const void *buf, size_t len)
{
    for (;;) {
        if (wait_ready(w, POLLOUT) < 0)
            return -1;
        ssize_t n = send(w->fd, buf, len, io_flags(w) | MSG_NOSIGNAL);
        if (!retry(w, n))
            return n;
    }
}

int wire_read(struct nbd_wire *w, void *buf, size_t len)
{
    char *p = buf;
    for (size_t done = 0; done < len;) {
        ssize_t n =
            w->tls ? nbd_tls_recv(w, p + done, len - done) : wire_recv_raw(w, p + done, len - done);
        if (n <= 0) {
            if (n == 0)
                errno = done ? EPIPE : 0;
            return -1;
        }
        done += (size_t)n;
    }
    return 0;
}

int wire_write(struct nbd_wire *w, const void *buf, size_t len)
{
    struct iovec iov = {(void *)buf, len};
    return wire_writev(w, &iov, 1);
}

static int send_all(struct nbd_wire *w, const char *p, size_t len)
{
    for (size_t done = 0; done < len;) {
        ssize_t n =
            w->tls ? nbd_tls_send(w, p + done, len - done) : wire_send_raw(w, p + done, len - done);
        if (n < 0)
            return -1;
        done += (size_t)n;
    }
    return 0;
}

/* TLS: small pieces (reply headers) are gathered into one record with the start of the
 * payload; what is left of a large payload goes out directly, without a copy. */
static int tls_writev(struct nbd_wire *w, const struct iovec *iov, int iovcnt)
{
    char stage[16384]; /* the largest TLS record */
    size_t used = 0;
    for (int i = 0; i < iovcnt; i++) {
        const char *p = iov[i].iov_base;
        size_t len = iov[i].iov_len;
        while (len) {
            if (used == 0 && len >= sizeof stage) {
                size_t direct = len - len % sizeof stage;
                if (send_all(w, p, direct) < 0)
                    return -1;
                p += direct;
                len -= direct;
                continue;
            }
            size_t n = sizeof stage - used < len ? sizeof stage - used : len;
            memcpy(stage + used, p, n);
            used += n;
            p += n;
            len -= n;
            if (used == sizeof stage) {
                if (send_all(w, stage, used) < 0)
                    return -1;
                used = 0;
            }
        }
    }
    return used ? send_all(w, stage, used) : 0;
}

int wire_writev(struct nbd_wire *w, struct iovec *iov, int iovcnt)
{
    if (w->tls)
        return tls_writev(w, iov, iovcnt);
    while (iovcnt > 0) {
        if (wait_ready(w, POLLOUT) < 0)
            return -1;
        struct msghdr msg = {.msg_iov = iov, .msg_iovlen = (size_t)iovcnt};
        ssize_t n = sendmsg(w->fd, &msg, io_flags(w) | MSG_NOSIGNAL);
        if (retry(w, n))
            continue;
        if (n < 0)
            return -1;
        while (iovcnt > 0 && (size_t)n >= iov->iov_len) {
            n -= (ssize_t)iov->iov_len;
            iov++;
            iovcnt--;
        }
        if (iovcnt > 0) {
            iov->iov_base = (char *)iov->iov_base + n;
            iov->iov_len -= (size_t)n;
        }
    }
    return 0;
}

int wire_discard(struct nbd_wire *w, uint64_t len)
{
    char buf[65536];
    while (len) {
        size_t n = len < sizeof buf ? (size_t)len : sizeof buf;
        if (wire_read(w, buf, n) < 0)
            return -1;
        len -= n;
    }
    return 0;
}
