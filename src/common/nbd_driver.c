#include "nbd_driver.h"

#include <errno.h>
#include <libnbd.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

/* Completions and wake-ups end a wait; the timeout bounds how long a stop flag set while
 * another thread took the signal goes unseen. */
#define POLL_MS 500

int nbd_driver_init(struct nbd_driver *d, const char *name, const volatile sig_atomic_t *stop,
                    struct vb_error *err)
{
    *d = (struct nbd_driver){.wake_fd = -1, .stop = stop};
    snprintf(d->name, sizeof d->name, "%s", name ? name : "");
    d->wake_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (d->wake_fd < 0)
        return vb_error_errno(err, "eventfd");
    return 0;
}

int nbd_driver_add(struct nbd_driver *d, struct nbd_handle *h, struct vb_error *err)
{
    if (d->nconns == NBD_DRIVER_MAX_CONNS)
        return vb_error_set(err, "%s: more than %d NBD connections", d->name, NBD_DRIVER_MAX_CONNS);
    d->conn[d->nconns++] = h;
    return 0;
}

void nbd_driver_wake(struct nbd_driver *d)
{
    uint64_t one = 1;
    ssize_t r = write(d->wake_fd, &one, sizeof one);
    (void)r; /* a full counter still wakes the loop */
}

int nbd_driver_pick(struct nbd_driver *d, int limit)
{
    int best = -1, best_n = limit;
    for (int i = 0; i < d->nconns; i++) {
        int n = (int)nbd_aio_in_flight(d->conn[i]);
        if (n >= 0 && n < best_n) {
            best = i;
            best_n = n;
        }
    }
    return best;
}

int nbd_driver_in_flight(struct nbd_driver *d)
{
    int n = 0;
    for (int i = 0; i < d->nconns; i++) {
        int k = (int)nbd_aio_in_flight(d->conn[i]);
        n += k > 0 ? k : 0;
    }
    return n;
}

static int stopped(struct nbd_driver *d, struct vb_error *err)
{
    if (!d->stop_is_signal)
        return vb_error_set(err, "interrupted");
    const char *sig = sigabbrev_np((int)*d->stop);
    return vb_error_set(err, "interrupted by SIG%s", sig ? sig : "?");
}

int nbd_driver_run(struct nbd_driver *d, const struct nbd_driver_ops *ops, void *opaque,
                   struct vb_error *err)
{
    for (;;) {
        if (d->stop && *d->stop)
            return stopped(d, err);
        int next = ops->submit(opaque, d, err);
        if (next < 0)
            return -1;
        if (next == NBD_DRIVER_DONE && nbd_driver_in_flight(d) == 0)
            return 0;
        struct pollfd pfd[NBD_DRIVER_MAX_CONNS + 1];
        for (int i = 0; i < d->nconns; i++) {
            unsigned dir = nbd_aio_get_direction(d->conn[i]);
            pfd[i] = (struct pollfd){
                .fd = nbd_aio_get_fd(d->conn[i]),
                .events = (short)(((dir & LIBNBD_AIO_DIRECTION_READ) ? POLLIN : 0) |
                                  ((dir & LIBNBD_AIO_DIRECTION_WRITE) ? POLLOUT : 0))};
        }
        pfd[d->nconns] = (struct pollfd){.fd = d->wake_fd, .events = POLLIN};
        if (poll(pfd, (nfds_t)d->nconns + 1, POLL_MS) < 0) {
            if (errno == EINTR)
                continue;
            return vb_error_errno(err, "%s: poll", d->name);
        }
        if (pfd[d->nconns].revents & POLLIN) {
            uint64_t v;
            ssize_t r = read(d->wake_fd, &v, sizeof v);
            (void)r; /* another wake-up may have drained it */
        }
        for (int i = 0; i < d->nconns; i++) {
            int r = 0;
            if (pfd[i].revents & (POLLIN | POLLHUP | POLLERR))
                r = nbd_aio_notify_read(d->conn[i]);
            else if (pfd[i].revents & POLLOUT)
                r = nbd_aio_notify_write(d->conn[i]);
            if (r == -1)
                return vb_error_set(err, "%s: NBD connection %d: %s", d->name, i + 1,
                                    nbd_get_error());
        }
    }
}

void nbd_driver_close(struct nbd_driver *d, bool shutdown)
{
    for (int i = 0; i < d->nconns; i++) {
        if (shutdown)
            nbd_shutdown(d->conn[i], 0);
        nbd_close(d->conn[i]);
    }
    d->nconns = 0;
    if (d->wake_fd >= 0)
        close(d->wake_fd);
    d->wake_fd = -1;
}
