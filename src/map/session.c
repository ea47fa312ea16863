#include "session.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <inttypes.h>
#include <poll.h>
#include <pthread.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "backup_set.h"
#include "block_cache.h"
#include "boot.h"
#include "export.h"
#include "fileutil.h"
#include "kernel_attach.h"
#include "listen.h"
#include "log.h"
#include "nbd_server.h"
#include "nbd_tls.h"
#include "plan.h"
#include "repo_select.h"
#include "repo_source.h"

struct session {
    const struct map_options *o;
    struct bset *set;  /* the backup read (of a repository: its config and boot files) */
    struct repo *repo; /* a repository input, */
    struct repo_manifest manifest; /* the snapshot chosen */
    struct fetch_pool *pool;       /* its read-ahead workers */
    struct chunk_buffers *bufs;    /* the cache's spare chunk buffers */
    struct bset_chain *disks;
    size_t ndisks;
    struct block_cache *cache;
    char *tmp_dir; /* private directory we created (overlay, boot files, socket); removed */
    const char *overlay_dir;
    struct map_export **exports;
    size_t nexports;
    struct nbd_server *srv;
    struct nbd_tls *tls;
    struct listeners listeners;
    struct kernel_attach **devices;
    struct boot_vm *vm;
    int sigfd;
    int wake[2]; /* wakes the accepting thread at shutdown */
    pthread_t acceptor;
    bool acceptor_running;
    pid_t child;
    int child_status;
    bool vm_ended; /* the booted VM stopped by itself: vm_status is the exit status */
    int vm_status;
    bool pidfile_written;
};

/* Removes the files of our temporary directory (flat) and the directory. */
static void remove_tmp_dir(const char *dir)
{
    DIR *d = opendir(dir);
    if (d) {
        struct dirent *de;
        while ((de = readdir(d)))
            if (strcmp(de->d_name, ".") && strcmp(de->d_name, ".."))
                unlinkat(dirfd(d), de->d_name, 0);
        closedir(d);
    }
    if (rmdir(dir) < 0)
        vb_warn("%s: cannot remove: %s", dir, strerror(errno));
}

static int make_tmp_dir(struct session *s, struct vb_error *err)
{
    const char *base = s->o->tmpdir;
    if (!base || !*base)
        base = "/var/tmp"; /* not /tmp: an overlay can grow large */
    if (asprintf(&s->tmp_dir, "%s/virtmap.XXXXXX", base) < 0) {
        s->tmp_dir = NULL;
        return vb_error_set(err, "out of memory");
    }
    if (!mkdtemp(s->tmp_dir)) {
        int rc = vb_error_errno(err, "%s: cannot create a temporary directory", s->tmp_dir);
        free(s->tmp_dir);
        s->tmp_dir = NULL;
        return rc;
    }
    return 0;
}

static int plan(struct session *s, struct vb_error *err)
{
    const struct map_options *o = s->o;
    if (o->repository) { /* the snapshot chosen as virtrestore chooses it */
        struct repo_selection sel = {.vm = o->vm,
                                     .snapshot = o->snapshot,
                                     .until = o->until,
                                     .key_file = o->key_file,
                                     .key_passphrase = o->key_passphrase,
                                     .session = "map"};
        if (!(s->repo = repo_select_open(o->input, &sel, &s->manifest, err)) ||
            !(s->set = bset_open_repo_snapshot(s->repo, &s->manifest, err)))
            return -1;
        s->ndisks = s->manifest.n_disks;
        return 0;
    }
    if (o->input)
        return (s->set = bset_open(o->input, err))
                   ? bset_plan_chains(s->set, NULL, o->until, &s->disks, &s->ndisks, err)
                   : -1;
    if (!(s->set = bset_open_files(o->files, err)) || bset_plan_files(s->set, &s->disks, err) < 0)
        return -1;
    s->ndisks = 1;
    return 0;
}

static int open_exports(struct session *s, struct vb_error *err)
{
    const struct map_options *o = s->o;
    s->cache = block_cache_new((size_t)o->cache_mb << 20);
    s->exports = calloc(s->ndisks, sizeof *s->exports);
    if (!s->cache || !s->exports)
        return vb_error_set(err, "out of memory");
    if (s->repo) {
        /* a few spare buffers: an evicted chunk's is the next fetched chunk's */
        if (!(s->bufs = chunk_buffers_new(repo_chunk_size(s->repo), 4)))
            return vb_error_set(err, "out of memory");
        block_cache_set_release(s->cache, chunk_buffers_put, s->bufs);
        if (!(s->pool = fetch_pool_new(o->threads, err)))
            return -1;
    }
    if (!o->readonly) {
        if (o->overlay_dir) {
            if (vb_mkdir_p(o->overlay_dir, err) < 0)
                return -1;
            s->overlay_dir = o->overlay_dir;
        } else {
            s->overlay_dir = s->tmp_dir;
        }
    }
    for (size_t i = 0; i < s->ndisks; i++) {
        const char *name = o->files  ? o->export_name
                           : s->repo ? s->manifest.disks[i].target
                                     : s->disks[i].dev;
        if (s->repo) {
            struct map_source *src = repo_source_open(s->repo, &s->manifest, &s->manifest.disks[i],
                                                      s->cache, s->pool, s->bufs, err);
            s->exports[i] = src ? export_open_source(name, src, s->overlay_dir, err) : NULL;
        } else {
            s->exports[i] = export_open(name, s->set, &s->disks[i], s->overlay_dir, s->cache, err);
        }
        if (!s->exports[i])
            return -1;
        if (o->verify && export_verify(s->exports[i], s->set, err) < 0) {
            export_close(s->exports[i], NULL);
            s->exports[i] = NULL;
            return -1;
        }
        if (s->overlay_dir && s->overlay_dir == s->tmp_dir) /* removed at exit */
            export_overlay_temporary(s->exports[i]);
        s->nexports++;
        vb_info("export %s: %" PRIu64 " bytes, %s%s", name, export_size(s->exports[i]),
                export_description(s->exports[i]), o->readonly ? ", read-only" : "");
    }
    struct nbd_server_config cfg = {.max_connections = o->max_connections,
                                    .handshake_timeout_ms = o->handshake_timeout_ms,
                                    .tls = s->tls};
    s->srv = nbd_server_new(s->exports, s->nexports, &cfg, err);
    return s->srv ? 0 : -1;
}

/* qemu runs as its own user: with --boot it must reach the socket. */
static void socket_for_qemu(const char *path)
{
    struct passwd *pw = getpwnam("libvirt-qemu");
    if (!pw)
        pw = getpwnam("qemu");
    if (pw && chown(path, pw->pw_uid, pw->pw_gid) < 0)
        vb_warn("%s: cannot hand the socket to the qemu user: %s", path, strerror(errno));
    chmod(path, 0660);
}

static int open_listeners(struct session *s, struct vb_error *err)
{
    const struct map_options *o = s->o;
    s->listeners.tls = s->tls != NULL;
    if (o->socket_path || o->boot) {
        char path[4200];
        if (o->socket_path)
            snprintf(path, sizeof path, "%s", o->socket_path);
        else
            snprintf(path, sizeof path, "%s/nbd.sock", s->tmp_dir);
        if (listen_unix(&s->listeners, path, err) < 0)
            return -1;
        if (o->boot)
            socket_for_qemu(path);
        return 0;
    }
    if (!o->listen_tcp) /* private by default: only our user can connect */
        return listen_private(&s->listeners, o->private_socket_dir, err);
    return listen_tcp(&s->listeners, o->listen_address, o->listen_port, o->allow_remote, err);
}

/* Credentials are read before anything else is done, so that a mistake there costs nothing. */
static int load_tls(struct session *s, struct vb_error *err)
{
    const struct map_options *o = s->o;
    if (!o->tls_creds && !o->tls_psk)
        return 0;
    struct nbd_tls_options to = {
        .creds_dir = o->tls_creds, .psk_file = o->tls_psk, .verify_peer = o->tls_verify_peer};
    if (!(s->tls = nbd_tls_new(&to, err)))
        return -1;
    vb_info("TLS (%s) required of every client", nbd_tls_kind(s->tls));
    return 0;
}

static int attach_devices(struct session *s, struct vb_error *err)
{
    if (strcmp(s->o->device, "none") == 0)
        return 0;
    s->devices = calloc(s->nexports, sizeof *s->devices);
    if (!s->devices)
        return vb_error_set(err, "out of memory");
    bool autodev = strcmp(s->o->device, "auto") == 0;
    unsigned first = 0; /* -d auto: each disk takes the first free device after the last */
    for (size_t i = 0; i < s->nexports; i++) {
        char dev[256] = "auto";
        if (!autodev && kernel_device_nth(s->o->device, (unsigned)i, dev, sizeof dev, err) < 0)
            return -1;
        if (!(s->devices[i] = kernel_attach(dev, first, s->srv, s->exports[i], err)))
            return -1;
        first = (unsigned)(kernel_attach_number(s->devices[i]) + 1);
        if (i == 0) /* for --run, as $uri */
            setenv("device", kernel_attach_device(s->devices[i]), 1);
    }
    return 0;
}

static int write_pidfile(struct session *s, struct vb_error *err)
{
    if (!s->o->pidfile)
        return 0;
    char buf[32];
    int n = snprintf(buf, sizeof buf, "%ld\n", (long)getpid());
    if (vb_write_file_atomic(s->o->pidfile, buf, (size_t)n, err) < 0)
        return -1;
    s->pidfile_written = true;
    return 0;
}

/* nbdkit-style old qemu URI of the first export, for $nbd. */
static char *qemu_nbd_string(const struct session *s)
{
    char *v = NULL;
    const char *name = export_name(s->exports[0]);
    int r =
        s->listeners.is_unix
            ? asprintf(&v, "nbd:unix:%s:exportname=%s", s->listeners.socket_path, name)
            : asprintf(&v, "nbd:%s:%d:exportname=%s", s->listeners.host, s->listeners.port, name);
    return r < 0 ? NULL : v;
}

static int announce(struct session *s, struct vb_error *err)
{
    for (size_t i = 0; i < s->nexports; i++) {
        char *uri = listen_uri(&s->listeners, export_name(s->exports[i]));
        if (!uri)
            return vb_error_set(err, "out of memory");
        printf("%s\n", uri);
        if (i == 0)
            setenv("uri", uri, 1);
        free(uri);
    }
    fflush(stdout);
    char *nbd = qemu_nbd_string(s);
    if (nbd)
        setenv("nbd", nbd, 1);
    free(nbd);
    return write_pidfile(s, err);
}

static int start_child(struct session *s, const sigset_t *orig_mask, struct vb_error *err)
{
    pid_t pid = fork();
    if (pid < 0)
        return vb_error_errno(err, "--run: fork");
    if (pid == 0) {
        sigprocmask(SIG_SETMASK, orig_mask, NULL);
        signal(SIGPIPE, SIG_DFL);
        /* the command's output must not mix with our readiness lines on a pipe reader
         * expecting only URIs: it inherits stdout anyway, as nbdkit's --run does */
        execl("/bin/sh", "sh", "-c", s->o->run, (char *)NULL);
        _exit(127);
    }
    s->child = pid;
    vb_debug("--run: started pid %ld: %s", (long)pid, s->o->run);
    return 0;
}

/* Accepts clients in its own thread, so that connections are served while the main thread
 * is busy elsewhere: --boot's qemu connects during virDomainCreateXML. */
static void *acceptor_main(void *arg)
{
    struct session *s = arg;
    struct pollfd pf[LISTEN_MAX + 1];
    size_t n = s->listeners.n;
    for (size_t i = 0; i < n; i++)
        pf[i] = (struct pollfd){.fd = s->listeners.fds[i], .events = POLLIN};
    pf[n] = (struct pollfd){.fd = s->wake[0], .events = POLLIN};
    unsigned long serial = 0;
    for (;;) {
        int r = poll(pf, n + 1, 1000);
        if (r < 0 && errno != EINTR) {
            vb_error_log("poll: %s", strerror(errno));
            return NULL;
        }
        nbd_server_reap(s->srv);
        if (r <= 0)
            continue;
        if (pf[n].revents)
            return NULL;
        for (size_t i = 0; i < n; i++) {
            if (!(pf[i].revents & POLLIN))
                continue;
            int fd = accept4(pf[i].fd, NULL, NULL, SOCK_CLOEXEC);
            if (fd < 0) {
                if (errno != EAGAIN && errno != EINTR && errno != ECONNABORTED)
                    vb_warn("accept: %s", strerror(errno));
                continue;
            }
            char peer[64];
            struct vb_error err = {0};
            snprintf(peer, sizeof peer, "client %lu", ++serial);
            vb_debug("%s: connected", peer);
            if (nbd_server_serve(s->srv, fd, NULL, peer, &err) < 0)
                vb_warn("%s", err.msg);
        }
    }
}

static int start_acceptor(struct session *s, struct vb_error *err)
{
    if (pipe2(s->wake, O_CLOEXEC) < 0)
        return vb_error_errno(err, "pipe");
    int e = pthread_create(&s->acceptor, NULL, acceptor_main, s);
    if (e != 0) {
        errno = e;
        return vb_error_errno(err, "cannot start the accepting thread");
    }
    s->acceptor_running = true;
    return 0;
}

static void stop_acceptor(struct session *s)
{
    if (s->acceptor_running) {
        char c = 1;
        if (write(s->wake[1], &c, 1) < 0)
            vb_warn("cannot wake the accepting thread: %s", strerror(errno));
        pthread_join(s->acceptor, NULL);
        s->acceptor_running = false;
    }
    for (int i = 0; i < 2; i++)
        if (s->wake[i] >= 0)
            close(s->wake[i]);
}

/* Waits for SIGINT/SIGTERM/SIGHUP, the end of the --run command or of the booted VM. */
static int wait_for_stop(struct session *s, struct vb_error *err)
{
    struct pollfd pf[2] = {{.fd = s->sigfd, .events = POLLIN},
                           {.fd = boot_fd(s->vm), .events = POLLIN}}; /* -1: ignored */
    for (;;) {
        if (poll(pf, 2, -1) < 0) {
            if (errno == EINTR)
                continue;
            return vb_error_errno(err, "poll");
        }
        if (pf[1].revents && boot_ended(s->vm, &s->vm_status)) {
            s->vm_ended = true;
            return 0;
        }
        if (!pf[0].revents)
            continue;
        struct signalfd_siginfo si;
        ssize_t r = read(s->sigfd, &si, sizeof si);
        if (r < 0 && (errno == EINTR || errno == EAGAIN))
            continue;
        if (r != sizeof si)
            return vb_error_errno(err, "reading signals");
        if (si.ssi_signo != SIGCHLD) {
            vb_info("%s: stopping", strsignal((int)si.ssi_signo));
            return 0;
        }
        int st;
        if (s->child > 0 && waitpid(s->child, &st, WNOHANG) == s->child) {
            s->child = 0;
            s->child_status = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
            vb_info("--run command exited with status %d: stopping", s->child_status);
            return 0;
        }
    }
}

static int teardown(struct session *s, struct vb_error *err)
{
    int rc = 0;
    if (s->child > 0) { /* we are stopping for another reason: end the command too */
        kill(s->child, SIGTERM);
        int st;
        waitpid(s->child, &st, 0);
        s->child_status = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
        s->child = 0;
    }
    boot_stop(s->vm);
    stop_acceptor(s);
    for (size_t i = 0; s->devices && i < s->nexports; i++)
        kernel_detach(s->devices[i]);
    free(s->devices);
    listeners_close(&s->listeners);
    nbd_server_free(s->srv);
    nbd_tls_free(s->tls);
    fetch_pool_free(s->pool); /* no read-ahead job runs on an export being closed */
    for (size_t i = 0; i < s->nexports; i++) {
        struct vb_error e2 = {0};
        if (export_close(s->exports[i], &e2) < 0 && rc == 0) {
            *err = e2;
            rc = -1;
        }
    }
    free(s->exports);
    if (s->cache) {
        struct block_cache_stats st;
        block_cache_stats(s->cache, &st);
        if (st.hits + st.misses)
            vb_debug("block cache: %" PRIu64 " hits, %" PRIu64 " misses, %" PRIu64
                     " evictions, limit %zu MiB",
                     st.hits, st.misses, st.evictions, st.limit >> 20);
        block_cache_free(s->cache);
    }
    chunk_buffers_free(s->bufs); /* after the cache, which hands its entries' buffers back */
    bset_chains_free(s->disks, s->ndisks);
    bset_free(s->set);
    repo_manifest_free(&s->manifest);
    repo_close(s->repo);
    if (s->tmp_dir) {
        remove_tmp_dir(s->tmp_dir);
        free(s->tmp_dir);
    }
    if (s->pidfile_written)
        unlink(s->o->pidfile);
    if (s->sigfd >= 0)
        close(s->sigfd);
    return rc;
}

int map_session_run(const struct map_options *o)
{
    struct session s = {.o = o, .sigfd = -1, .wake = {-1, -1}};
    struct vb_error err = {0};
    int rc = -1;
    /* signals are taken from a signalfd in the main loop; every thread inherits the mask */
    sigset_t mask, orig;
    sigemptyset(&mask);
    sigaddset(&mask, SIGINT);
    sigaddset(&mask, SIGTERM);
    sigaddset(&mask, SIGHUP);
    sigaddset(&mask, SIGCHLD);
    pthread_sigmask(SIG_BLOCK, &mask, &orig);
    signal(SIGPIPE, SIG_IGN);
    s.sigfd = signalfd(-1, &mask, SFD_CLOEXEC);
    if (s.sigfd < 0) {
        vb_error_errno(&err, "signalfd");
        goto out;
    }
    if (load_tls(&s, &err) < 0)
        goto out;
    if (strcmp(o->device, "none") != 0 && kernel_attach_check(o->device, &err) < 0)
        goto out;
    if (plan(&s, &err) < 0)
        goto out;
    /* the default overlay, and --boot's socket and boot file copies, live in a private directory */
    if ((!o->readonly && !o->overlay_dir) || o->boot)
        if (make_tmp_dir(&s, &err) < 0)
            goto out;
    /* --boot: qemu must reach the boot file copies (and the default socket) in there */
    if (o->boot && chmod(s.tmp_dir, 0711) < 0) {
        vb_error_errno(&err, "%s: cannot make it traversable for qemu", s.tmp_dir);
        goto out;
    }
    if (open_exports(&s, &err) < 0 || open_listeners(&s, &err) < 0 ||
        start_acceptor(&s, &err) < 0 || attach_devices(&s, &err) < 0)
        goto out;
    char ident[256];
    if (s.repo)
        snprintf(ident, sizeof ident, "%s", s.manifest.id);
    if (o->boot &&
        !(s.vm = boot_start(o, s.set, s.tmp_dir, s.listeners.socket_path,
                            s.repo ? ident : bset_chain_ident(&s.disks[0], ident, sizeof ident),
                            s.exports, s.nexports, &err)))
        goto out;
    if (announce(&s, &err) < 0)
        goto out;
    if (o->run && start_child(&s, &orig, &err) < 0)
        goto out;
    rc = wait_for_stop(&s, &err);
out:;
    struct vb_error terr = {0};
    if (teardown(&s, &terr) < 0 && rc == 0) {
        err = terr;
        rc = -1;
    }
    if (rc < 0) {
        vb_error_log("%s", err.msg);
        return 1;
    }
    if (s.vm_ended)
        return s.vm_status;
    return o->run ? s.child_status : 0;
}
