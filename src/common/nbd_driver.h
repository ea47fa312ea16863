/* One loop that drives asynchronous NBD requests (libnbd's aio API) over several connections
 * to one export. The caller's ops start requests while a connection has room; their
 * completions (libnbd callbacks, run inside this loop's thread) make room for the next ones;
 * other threads that make work available wake the loop through an eventfd. A stop flag set
 * by a signal handler ends the loop with an error.
 *
 * virtbackup reads a backup job's export with it (backup/disk_copy.c), virtrestore writes
 * into its qemu-nbd with it (restore/write_pipeline.c). */
#ifndef VB_NBD_DRIVER_H
#define VB_NBD_DRIVER_H

#include <signal.h>
#include <stdbool.h>

#include "error.h"

#define NBD_DRIVER_MAX_CONNS 16

struct nbd_handle;

struct nbd_driver {
    struct nbd_handle *conn[NBD_DRIVER_MAX_CONNS]; /* connected, owned by the driver */
    int nconns;
    int wake_fd;                       /* eventfd: nbd_driver_wake */
    const volatile sig_atomic_t *stop; /* nonzero: end the loop (NULL: no flag) */
    bool stop_is_signal;               /* *stop holds the signal number: name it */
    char name[640];                    /* what the errors name: the disk, the server */
};

/* What an ops->submit returns besides -1. */
enum nbd_driver_next {
    NBD_DRIVER_DONE = 0, /* every request is started: end once none is in flight */
    NBD_DRIVER_MORE = 1, /* more will come (on a completion or a wake-up) */
};

struct nbd_driver_ops {
    /* Starts requests (nbd_aio_*) on the connections nbd_driver_pick returns, while there
     * is work and room. Returns an enum nbd_driver_next, or -1 with err set to end the
     * loop. */
    int (*submit)(void *opaque, struct nbd_driver *d, struct vb_error *err);
};

/* An empty driver with its eventfd; name is what errors are prefixed with. */
int nbd_driver_init(struct nbd_driver *d, const char *name, const volatile sig_atomic_t *stop,
                    struct vb_error *err);
/* Hands a connected handle to the driver (closed by nbd_driver_close). */
int nbd_driver_add(struct nbd_driver *d, struct nbd_handle *h, struct vb_error *err);
/* Wakes the loop from another thread: work is available, or that thread failed. */
void nbd_driver_wake(struct nbd_driver *d);
/* The connection with the fewest requests in flight, fewer than limit; -1 if none. */
int nbd_driver_pick(struct nbd_driver *d, int limit);
/* Requests in flight on every connection together. */
int nbd_driver_in_flight(struct nbd_driver *d);
/* Runs until ops->submit says DONE and nothing is in flight (0), or until a failure: of
 * submit, poll, a connection, or the stop flag (-1, err set). On -1 requests may still be
 * in flight: their buffers must live until nbd_driver_close. */
int nbd_driver_run(struct nbd_driver *d, const struct nbd_driver_ops *ops, void *opaque,
                   struct vb_error *err);
/* Closes every connection (retiring what is in flight), after an NBD_CMD_DISC each when
 * shutdown is set, and the eventfd. */
void nbd_driver_close(struct nbd_driver *d, bool shutdown);

#endif
