#include "kernel_attach.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <linux/nbd.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "log.h"
#include "nbd_device.h"

/* The kernel's logical block size for our devices: with 4096 it reads a partition table in
 * 4 KiB sectors (an MBR's partition sizes come out 8 times too large), so 512 as qemu-nbd. */
#define DEVICE_BLOCK 512
/* How long the kernel may take to size a started device before we give up on opening it
 * for the partition scan (it takes milliseconds). */
#define SIZE_WAIT_MS 10000

struct kernel_attach {
    char device[256];
    char sysdir[64];
    long number; /* N of /dev/nbdN chosen by -d auto, else -1 */
    int fd;
    bool sock_set; /* our NBD_SET_SOCK succeeded: the device's setup is ours to clear */
    pthread_t thread;
    bool running;
    atomic_bool ended; /* NBD_DO_IT returned */
    int do_it_errno;
};

static int busy_error(struct vb_error *err, const char *device, const struct nbd_owner *owner)
{
    char who[128];
    nbd_owner_describe(owner, who, sizeof who);
    return vb_error_set(err,
                        "%s: in use by %s: an attached device is never taken over; choose "
                        "a free one (-d /dev/nbdN) or let virtmap pick one (-d auto)",
                        device, who);
}

int kernel_attach_check(const char *device, struct vb_error *err)
{
    struct stat st;
    bool module = stat("/sys/module/nbd", &st) == 0;
    if (strcmp(device, "auto") == 0) {
        if (!module)
            return vb_error_set(err,
                                "-d auto: no NBD devices: the nbd kernel module is not loaded; "
                                "run 'modprobe nbd', or use -d none to serve the export "
                                "without a device");
        return 0;
    }
    if (stat(device, &st) < 0) {
        if (errno == ENOENT && !module)
            return vb_error_set(err,
                                "%s: no such device: the nbd kernel module is not loaded; run "
                                "'modprobe nbd' (e.g. 'modprobe nbd max_part=8'), or use -d none "
                                "to serve the export without a device",
                                device);
        return vb_error_errno(err, "%s: cannot use the device (use -d none to serve only)", device);
    }
    char sysdir[64];
    if (nbd_device_sysfs_dir(device, sysdir, sizeof sysdir, err) < 0)
        return -1;
    struct nbd_owner owner;
    if (nbd_device_owner(sysdir, &owner) == 1)
        return busy_error(err, device, &owner);
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

const char *kernel_attach_device(const struct kernel_attach *ka)
{
    return ka->device;
}

long kernel_attach_number(const struct kernel_attach *ka)
{
    return ka->number;
}

static void *do_it(void *arg)
{
    struct kernel_attach *ka = arg;
    /* returns when the device is disconnected (NBD_DISCONNECT or the socket closing) */
    if (ioctl(ka->fd, NBD_DO_IT) < 0)
        ka->do_it_errno = errno;
    atomic_store(&ka->ended, true);
    return NULL;
}

/* Takes the device by giving the kernel our socket: it refuses (EBUSY) a device that another
 * task set up or is setting up. Returns 1 (err says who holds it) for a device in use. */
static int claim(struct kernel_attach *ka, int sock, struct vb_error *err)
{
    struct nbd_owner owner;
    if (nbd_device_owner(ka->sysdir, &owner) == 1) {
        busy_error(err, ka->device, &owner);
        return 1;
    }
    ka->fd = open(ka->device, O_RDWR | O_CLOEXEC);
    if (ka->fd < 0)
        return vb_error_errno(err, "%s: cannot open", ka->device);
    if (ioctl(ka->fd, NBD_SET_SOCK, sock) == 0) {
        ka->sock_set = true;
        return 0;
    }
    if (errno != EBUSY)
        return vb_error_errno(err, "%s: cannot attach (NBD_SET_SOCK)", ka->device);
    if (nbd_device_owner(ka->sysdir, &owner) == 1)
        busy_error(err, ka->device, &owner);
    else
        vb_error_set(err,
                     "%s: in use: the kernel refuses a second setup (EBUSY) while another "
                     "process sets the device up; choose a free one or use -d auto",
                     ka->device);
    return 1;
}

static int configure(struct kernel_attach *ka, struct map_export *ex, struct vb_error *err)
{
    uint64_t size = export_size(ex);
    if (size % DEVICE_BLOCK)
        vb_warn("%s: the export's last %" PRIu64 " bytes are beyond the device's last "
                "%d-byte block and cannot be reached through it",
                ka->device, size % DEVICE_BLOCK, DEVICE_BLOCK);
    if (ioctl(ka->fd, NBD_SET_BLKSIZE, (unsigned long)DEVICE_BLOCK) < 0 ||
        ioctl(ka->fd, NBD_SET_SIZE_BLOCKS, (unsigned long)(size / DEVICE_BLOCK)) < 0 ||
        ioctl(ka->fd, NBD_SET_FLAGS, (unsigned long)nbd_export_flags(ex)) < 0)
        return vb_error_errno(err, "%s: cannot configure the device", ka->device);
    return 0;
}

/* The kernel scans the partition table at the first open after it sized the device (qemu-nbd
 * opens the device for this reason; udev would on a full system): wait for the size, open. */
static int scan_partitions(struct kernel_attach *ka, struct vb_error *err)
{
    struct timespec pause = {0, 10 * 1000 * 1000};
    for (int waited = 0; waited < SIZE_WAIT_MS; waited += 10) {
        uint64_t sectors = 0;
        if (atomic_load(&ka->ended)) {
            if (!ka->do_it_errno)
                return vb_error_set(err, "%s: the kernel ended the device at once", ka->device);
            errno = ka->do_it_errno;
            return vb_error_errno(err, "%s: the kernel ended the device at once (NBD_DO_IT)",
                                  ka->device);
        }
        if (nbd_device_sectors(ka->sysdir, &sectors) == 0 && sectors > 0) {
            int fd = open(ka->device, O_RDONLY | O_CLOEXEC);
            if (fd < 0)
                vb_warn("%s: cannot open for the partition scan: %s", ka->device, strerror(errno));
            else
                close(fd);
            return 0;
        }
        nanosleep(&pause, NULL);
    }
    vb_warn("%s: the kernel has not sized the device after %d s: partitions may not show",
            ka->device, SIZE_WAIT_MS / 1000);
    return 0;
}

/* Attaches ex to one device. Returns NULL with *busy set when another process holds it. */
static struct kernel_attach *attach_one(const char *device, struct nbd_server *srv,
                                        struct map_export *ex, bool *busy, struct vb_error *err)
{
    *busy = false;
    struct kernel_attach *ka = calloc(1, sizeof *ka);
    int sv[2] = {-1, -1};
    if (!ka) {
        vb_error_set(err, "out of memory");
        return NULL;
    }
    ka->fd = -1;
    ka->number = -1;
    snprintf(ka->device, sizeof ka->device, "%s", device);
    if (nbd_device_sysfs_dir(device, ka->sysdir, sizeof ka->sysdir, err) < 0)
        goto fail;
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0) {
        vb_error_errno(err, "socketpair");
        goto fail;
    }
    int c = claim(ka, sv[0], err);
    if (c != 0) {
        *busy = c == 1;
        goto fail;
    }
    if (configure(ka, ex, err) < 0)
        goto fail;
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
    sv[0] = -1;
    if (scan_partitions(ka, err) < 0)
        goto fail;
    vb_info("%s: attached export %s (%" PRIu64 " bytes)", device, export_name(ex), export_size(ex));
    return ka;
fail:
    if (sv[0] >= 0)
        close(sv[0]);
    if (sv[1] >= 0)
        close(sv[1]);
    kernel_detach(ka);
    return NULL;
}

static struct kernel_attach *attach_auto(unsigned first, struct nbd_server *srv,
                                         struct map_export *ex, struct vb_error *err)
{
    unsigned *nums;
    size_t n;
    if (nbd_device_numbers(&nums, &n, err) < 0)
        return NULL;
    size_t tried = 0;
    for (size_t i = 0; i < n; i++) {
        if (nums[i] < first)
            continue;
        char dev[64];
        struct stat st;
        snprintf(dev, sizeof dev, "/dev/nbd%u", nums[i]);
        if (stat(dev, &st) < 0) /* sysfs has it but /dev does not (no devtmpfs) */
            continue;
        tried++;
        bool busy;
        struct vb_error e2 = {0};
        struct kernel_attach *ka = attach_one(dev, srv, ex, &busy, &e2);
        if (ka) {
            ka->number = nums[i];
            free(nums);
            return ka;
        }
        if (!busy) {
            *err = e2;
            free(nums);
            return NULL;
        }
        vb_debug("-d auto: %s", e2.msg);
    }
    free(nums);
    if (!tried)
        vb_error_set(err, "-d auto: no /dev/nbdN devices%s (is the nbd module loaded?)",
                     first ? " beyond those already taken" : "");
    else
        vb_error_set(err,
                     "-d auto: all %zu NBD devices%s are in use; detach one, or load the "
                     "module with more (modprobe nbd nbds_max=N)",
                     tried, first ? " left" : "");
    return NULL;
}

struct kernel_attach *kernel_attach(const char *device, unsigned first, struct nbd_server *srv,
                                    struct map_export *ex, struct vb_error *err)
{
    if (kernel_attach_check(device, err) < 0)
        return NULL;
    if (strcmp(device, "auto") == 0)
        return attach_auto(first, srv, ex, err);
    bool busy;
    return attach_one(device, srv, ex, &busy, err);
}

/* The kernel keeps a disconnected device's partitions (/dev/nbdNpK, their sysfs entries and
 * sizes) until the device is next opened, when it drops them (nbd_open marks a disconnected
 * device for a partition rescan): open it once, so that they go with the export they showed,
 * as they came with it (scan_partitions). Should another process have attached the device
 * meanwhile, the kernel rescans nothing for this open. */
static void drop_partitions(const struct kernel_attach *ka)
{
    int fd = open(ka->device, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        vb_warn("%s: cannot open to drop the partitions of the detached disk: %s", ka->device,
                strerror(errno));
    else
        close(fd);
}

void kernel_detach(struct kernel_attach *ka)
{
    if (!ka)
        return;
    if (ka->running) {
        if (!atomic_load(&ka->ended))
            ioctl(ka->fd, NBD_DISCONNECT);
        pthread_join(ka->thread, NULL);
        if (ka->do_it_errno && ka->do_it_errno != EPIPE)
            vb_debug("%s: NBD_DO_IT ended: %s", ka->device, strerror(ka->do_it_errno));
    }
    /* the device stays ours (the kernel refuses other tasks) until we clear our socket */
    if (ka->sock_set) {
        ioctl(ka->fd, NBD_CLEAR_QUE);
        ioctl(ka->fd, NBD_CLEAR_SOCK);
    }
    if (ka->fd >= 0)
        close(ka->fd);
    if (ka->running) {
        drop_partitions(ka);
        vb_info("%s: detached", ka->device);
    }
    free(ka);
}
