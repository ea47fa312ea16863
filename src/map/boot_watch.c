#include "boot_watch.h"

#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <unistd.h>

#include "log.h"
#include "virt.h"

struct boot_watch {
    pthread_t thread;
    bool running;
    atomic_bool quit;
    int fd[2]; /* written by the callbacks, polled by the main loop */
    pthread_mutex_t lock;
    enum boot_end end;
    bool lost, lost_reported;
    virConnectPtr conn; /* not ours: the caller closes it */
    int callback_id;
    bool close_callback;
};

static pthread_once_t register_once = PTHREAD_ONCE_INIT;
static int register_rc;

static void register_impl(void)
{
    register_rc = virEventRegisterDefaultImpl();
}

static void *loop_main(void *arg)
{
    struct boot_watch *w = arg;
    while (!atomic_load(&w->quit))
        if (virEventRunDefaultImpl() < 0)
            break;
    return NULL;
}

/* The pipe is non-blocking: once it holds a byte, the main loop will look anyway. */
static void notify(struct boot_watch *w)
{
    char c = 1;
    ssize_t r = write(w->fd[1], &c, 1);
    (void)r;
}

static enum boot_end end_of(int event, int detail)
{
    if (event != VIR_DOMAIN_EVENT_STOPPED)
        return BOOT_RUNNING;
    switch (detail) {
    case VIR_DOMAIN_EVENT_STOPPED_SHUTDOWN:
        return BOOT_SHUTDOWN;
    case VIR_DOMAIN_EVENT_STOPPED_DESTROYED:
        return BOOT_DESTROYED;
    case VIR_DOMAIN_EVENT_STOPPED_CRASHED:
        return BOOT_CRASHED;
    case VIR_DOMAIN_EVENT_STOPPED_FAILED:
        return BOOT_FAILED;
    default:
        return BOOT_OTHER;
    }
}

static void set_end(struct boot_watch *w, enum boot_end e)
{
    pthread_mutex_lock(&w->lock);
    if (w->end == BOOT_RUNNING)
        w->end = e;
    pthread_mutex_unlock(&w->lock);
    notify(w);
}

static int on_lifecycle(virConnectPtr conn, virDomainPtr dom, int event, int detail, void *opaque)
{
    (void)conn;
    (void)dom;
    enum boot_end e = end_of(event, detail);
    if (e != BOOT_RUNNING)
        set_end(opaque, e);
    return 0;
}

static void on_close(virConnectPtr conn, int reason, void *opaque)
{
    (void)conn;
    (void)reason;
    struct boot_watch *w = opaque;
    pthread_mutex_lock(&w->lock);
    w->lost = true;
    pthread_mutex_unlock(&w->lock);
    notify(w);
}

struct boot_watch *boot_watch_new(struct vb_error *err)
{
    pthread_once(&register_once, register_impl);
    if (register_rc < 0) {
        vb_virt_error(err, "--boot: cannot set up libvirt's event loop");
        return NULL;
    }
    struct boot_watch *w = calloc(1, sizeof *w);
    if (!w) {
        vb_error_set(err, "out of memory");
        return NULL;
    }
    w->callback_id = -1;
    w->end = BOOT_RUNNING;
    atomic_init(&w->quit, false);
    pthread_mutex_init(&w->lock, NULL);
    if (pipe2(w->fd, O_CLOEXEC | O_NONBLOCK) < 0) {
        vb_error_errno(err, "pipe");
        w->fd[0] = w->fd[1] = -1;
        boot_watch_free(w);
        return NULL;
    }
    int e = pthread_create(&w->thread, NULL, loop_main, w);
    if (e != 0) {
        vb_error_set(err, "cannot start libvirt's event thread: error %d", e);
        boot_watch_free(w);
        return NULL;
    }
    w->running = true;
    return w;
}

int boot_watch_domain(struct boot_watch *w, virConnectPtr conn, virDomainPtr dom,
                      struct vb_error *err)
{
    w->conn = conn;
    /* With an event loop libvirt also sends keepalives, and a libvirtd that misses them for
     * 30 s would lose our connection, which destroys the auto-destroy domain: the VM lives
     * as long as virtmap, as without the loop. */
    if (virConnectSetKeepAlive(conn, -1, 0) < 0)
        vb_debug("--boot: cannot turn libvirt's keepalive off: %s", vb_virt_last_error());
    w->callback_id = virConnectDomainEventRegisterAny(
        conn, dom, VIR_DOMAIN_EVENT_ID_LIFECYCLE, VIR_DOMAIN_EVENT_CALLBACK(on_lifecycle), w, NULL);
    if (w->callback_id < 0)
        return vb_virt_error(err, "--boot: cannot watch the VM's lifecycle");
    w->close_callback = virConnectRegisterCloseCallback(conn, on_close, w, NULL) == 0;
    /* it may have ended before the callback was in place (a transient domain is then gone) */
    if (virDomainIsActive(dom) != 1)
        set_end(w, BOOT_UNKNOWN);
    return 0;
}

int boot_watch_fd(const struct boot_watch *w)
{
    return w ? w->fd[0] : -1;
}

enum boot_end boot_watch_poll(struct boot_watch *w, bool *lost)
{
    char buf[64];
    while (read(w->fd[0], buf, sizeof buf) > 0)
        ;
    pthread_mutex_lock(&w->lock);
    enum boot_end e = w->end;
    *lost = w->lost && !w->lost_reported;
    if (*lost)
        w->lost_reported = true;
    pthread_mutex_unlock(&w->lock);
    return e;
}

const char *boot_end_text(enum boot_end end)
{
    switch (end) {
    case BOOT_RUNNING:
        return "is running";
    case BOOT_SHUTDOWN:
        return "shut down";
    case BOOT_DESTROYED:
        return "was destroyed (virsh destroy, or by libvirt)";
    case BOOT_CRASHED:
        return "crashed";
    case BOOT_FAILED:
        return "failed: its qemu ended unexpectedly (libvirt's log of the domain says why)";
    case BOOT_OTHER:
        return "stopped (saved, migrated or reverted to a snapshot)";
    case BOOT_UNKNOWN:
        break;
    }
    return "stopped before virtmap could watch it (libvirt's log of the domain says why)";
}

void boot_watch_unregister(struct boot_watch *w)
{
    if (!w || !w->conn)
        return;
    if (w->callback_id >= 0)
        virConnectDomainEventDeregisterAny(w->conn, w->callback_id);
    if (w->close_callback)
        virConnectUnregisterCloseCallback(w->conn, on_close);
    w->callback_id = -1;
    w->close_callback = false;
    w->conn = NULL;
}

static void wake(int timer, void *opaque)
{
    (void)timer;
    (void)opaque;
}

void boot_watch_free(struct boot_watch *w)
{
    if (!w)
        return;
    boot_watch_unregister(w);
    if (w->running) {
        atomic_store(&w->quit, true);
        /* a due timer interrupts the loop's poll, so the thread sees quit */
        int timer = virEventAddTimeout(0, wake, NULL, NULL);
        pthread_join(w->thread, NULL);
        if (timer >= 0)
            virEventRemoveTimeout(timer);
    }
    for (int i = 0; i < 2; i++)
        if (w->fd[i] >= 0)
            close(w->fd[i]);
    pthread_mutex_destroy(&w->lock);
    free(w);
}
