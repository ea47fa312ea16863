#include "nbd_wire.h"

#include <errno.h>
#include <sys/socket.h>
#include <unistd.h>

int wire_read(int fd, void *buf, size_t len)
{
    char *p = buf;
    for (size_t done = 0; done < len;) {
        ssize_t n = recv(fd, p + done, len - done, 0);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            if (n == 0)
                errno = done ? EPIPE : 0;
            return -1;
        }
        done += (size_t)n;
    }
    return 0;
}

int wire_write(int fd, const void *buf, size_t len)
{
    const char *p = buf;
    for (size_t done = 0; done < len;) {
        ssize_t n = send(fd, p + done, len - done, MSG_NOSIGNAL);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return -1;
        done += (size_t)n;
    }
    return 0;
}

int wire_writev(int fd, struct iovec *iov, int iovcnt)
{
    while (iovcnt > 0) {
        struct msghdr msg = {.msg_iov = iov, .msg_iovlen = (size_t)iovcnt};
        ssize_t n = sendmsg(fd, &msg, MSG_NOSIGNAL);
        if (n < 0 && errno == EINTR)
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

int wire_discard(int fd, uint64_t len)
{
    char buf[65536];
    while (len) {
        size_t n = len < sizeof buf ? (size_t)len : sizeof buf;
        if (wire_read(fd, buf, n) < 0)
            return -1;
        len -= n;
    }
    return 0;
}
