#include "kernel_attach.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <linux/nbd.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "log.h"

struct kernel_attach {
    char device[256];
    int fd;
    pthread_t thread;
    bool running;
};

int kernel_attach_check(const char *device, struct vb_error *err)
{
    struct stat st;
    bool module = stat("/sys/module/nbd", &st) == 0;
    if (stat(device, &st) < 0) {
        if (errno == ENOENT && !module)
            return vb_error_set(err,
                                "%s: no such device: the nbd kernel module is not loaded; run "
                                "'modprobe nbd' (e.g. 'modprobe nbd max_part=8'), or use -d none "
                                "to serve the export without a device",
                                device);
        return vb_error_errno(err, "%s: cannot use the device (use -d none to serve only)", device);
    }
    if (!S_ISBLK(st.st_mode))
        return vb_error_set(err, "%s: not a block device", device);
    return 0;
}

int kernel_device_nth(const char *device, unsigned n, char *out, size_t outlen,
                      struct vb_error *err)
{
    size_t l = strlen(device), d = l;
    while (d > 0 && device[d - 1] >= '0' && device[d - 1] <= '9')
        d--;
    if (n == 0 || d == l) {
        if (n != 0)
            return vb_error_set(err, "%s: cannot derive a device for export %u", device, n + 1);
        snprintf(out, outlen, "%s", device);
        return 0;
    }
    snprintf(out, outlen, "%.*s%lu", (int)d, device, strtoul(device + d, NULL, 10) + n);
    return 0;
}

static void *do_it(void *arg)
{
    struct kernel_attach *ka = arg;
    /* returns when the device is disconnected (NBD_DISCONNECT or the socket closing) */
    if (ioctl(ka->fd, NBD_DO_IT) < 0 && errno != EPIPE && errno != 0)
        vb_debug("%s: NBD_DO_IT ended: %s", ka->device, strerror(errno));
    ioctl(ka->fd, NBD_CLEAR_QUE);
    ioctl(ka->fd, NBD_CLEAR_SOCK);
    return NULL;
}

struct kernel_attach *kernel_attach(const char *device, struct nbd_server *srv,
                                    struct map_export *ex, struct vb_error *err)
{
    if (kernel_attach_check(device, err) < 0)
        return NULL;
    struct kernel_attach *ka = calloc(1, sizeof *ka);
    int sv[2] = {-1, -1};
    if (!ka) {
        vb_error_set(err, "out of memory");
        return NULL;
    }
    snprintf(ka->device, sizeof ka->device, "%s", device);
    ka->fd = open(device, O_RDWR | O_CLOEXEC);
    if (ka->fd < 0) {
        vb_error_errno(err, "%s: cannot open", device);
        goto fail;
    }
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0) {
        vb_error_errno(err, "socketpair");
        goto fail;
    }
    uint64_t size = export_size(ex);
    unsigned long blk = size % 4096 == 0 ? 4096 : 512;
    ioctl(ka->fd, NBD_CLEAR_SOCK); /* a device left attached by a crashed run */
    if (ioctl(ka->fd, NBD_SET_BLKSIZE, blk) < 0 ||
        ioctl(ka->fd, NBD_SET_SIZE_BLOCKS, (unsigned long)(size / blk)) < 0 ||
        ioctl(ka->fd, NBD_SET_FLAGS, (unsigned long)nbd_export_flags(ex)) < 0 ||
        ioctl(ka->fd, NBD_SET_SOCK, sv[0]) < 0) {
        vb_error_errno(err, "%s: cannot configure the device (is it in use?)", device);
        goto fail;
    }
    if (nbd_server_serve(srv, sv[1], ex, device, err) < 0) {
        sv[1] = -1; /* taken over, already closed */
        goto fail;
    }
    sv[1] = -1;
    int e = pthread_create(&ka->thread, NULL, do_it, ka);
    if (e != 0) {
        errno = e;
        vb_error_errno(err, "%s: cannot start the device thread", device);
        goto fail;
    }
    ka->running = true;
    close(sv[0]); /* the kernel holds its own reference */
    vb_info("%s: attached export %s (%" PRIu64 " bytes)", device, export_name(ex), size);
    return ka;
fail:
    if (sv[0] >= 0)
        close(sv[0]);
    if (sv[1] >= 0)
        close(sv[1]);
    if (ka->fd >= 0) {
        ioctl(ka->fd, NBD_CLEAR_SOCK);
        close(ka->fd);
    }
    free(ka);
    return NULL;
}

void kernel_detach(struct kernel_attach *ka)
{
    if (!ka)
        return;
    if (ka->running) {
        ioctl(ka->fd, NBD_DISCONNECT);
        pthread_join(ka->thread, NULL);
        vb_info("%s: detached", ka->device);
    }
    close(ka->fd);
    free(ka);
}
