#include "qemu_nbd.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "log.h"
#include "remote.h"

#define READY_TIMEOUT_MS 30000
#define STOP_GRACE_MS    10000

/* qemu-nbd allocates a buffer for every NBD request. glibc serves allocations of 128 KiB and
 * more with mmap, or returns the heap's top to the kernel once 2x the largest such block is
 * free, so with many requests in flight nearly every request gets fresh pages: a page fault
 * and a zeroed page per 4 KiB, about 30% of a restore's wall time here (bench/README.md).
 * These keep request buffers up to 32 MiB (the NBD maximum) in qemu-nbd's heap and the heap
 * at its high-water mark: measured, up to ~50 MiB more resident during a restore (more than
 * the 16 MiB in flight; fragmentation, presumably). Other C libraries ignore it. */
#define QEMU_NBD_TUNABLES                                                                          \
    "glibc.malloc.mmap_threshold=33554432:glibc.malloc.trim_threshold=268435456"

struct qemu_nbd {
    pid_t pid;
    char *socket;
    char *dir;     /* private directory we made, or NULL */
    char *errfile; /* qemu-nbd's stderr; unlinked once the child has it open */
    int errfd;     /* our descriptor of that file, read when the server fails */
    bool exited;   /* reaped already */
    int status;
    struct vb_host *host; /* remote: the server runs there, found by its pid file */
    char *pidfile;
    char *desc; /* host:port, for messages */
};

char *qemu_opt_escape(const char *value)
{
    size_t n = strlen(value), extra = 0;
    for (size_t i = 0; i < n; i++)
        extra += value[i] == ',';
    char *out = malloc(n + extra + 1);
    if (!out)
        return NULL;
    char *p = out;
    for (size_t i = 0; i < n; i++) {
        *p++ = value[i];
        if (value[i] == ',')
            *p++ = ',';
    }
    *p = '\0';
    return out;
}

static void sleep_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

/* One step of the waits for qemu-nbd to listen or to exit: they poll at 1 ms first and back
 * off to max_ms, since qemu-nbd usually takes a few milliseconds and a fixed 10-20 ms step
 * added half a step to every run. Returns the milliseconds slept. */
static int backoff_sleep(int *pause_ms, int max_ms)
{
    int slept = *pause_ms;
    sleep_ms(slept);
    *pause_ms = *pause_ms * 2 > max_ms ? max_ms : *pause_ms * 2;
    return slept;
}

/* The last line qemu-nbd wrote to stderr, for error messages. */
static void read_errfile(const struct qemu_nbd *srv, char *buf, size_t len)
{
    buf[0] = '\0';
    /* pread: the child's stdout and stderr share this descriptor's file offset. */
    struct stat st;
    if (srv->errfd < 0 || fstat(srv->errfd, &st) < 0)
        return;
    char text[4096];
    off_t from = st.st_size > (off_t)sizeof text - 1 ? st.st_size - (off_t)(sizeof text - 1) : 0;
    ssize_t n = pread(srv->errfd, text, sizeof text - 1, from);
    if (n <= 0)
        return;
    text[n] = '\0';
    /* the last non-empty line */
    char *end = text + n;
    while (end > text && (end[-1] == '\n' || end[-1] == '\r'))
        *--end = '\0';
    const char *line = strrchr(text, '\n');
    line = line ? line + 1 : text;
    size_t n_line = strlen(line) < len ? strlen(line) : len - 1;
    memcpy(buf, line, n_line);
    buf[n_line] = '\0';
}

#define PRIVATE_DIR_PREFIX "vb-qemu-nbd."

/* A tool killed with SIGKILL cannot remove its private directory (qemu-nbd, which gets
 * SIGTERM when its parent dies, removes only its socket). The directory's name carries the
 * owner's pid: remove those of our user whose owner is gone. Only the two names we create
 * are unlinked, so a directory that is not ours stays (rmdir fails on anything else). */
static void sweep_dead_dirs(const char *tmpdir)
{
    DIR *d = opendir(tmpdir);
    if (!d)
        return;
    struct dirent *e;
    while ((e = readdir(d))) {
        if (strncmp(e->d_name, PRIVATE_DIR_PREFIX, strlen(PRIVATE_DIR_PREFIX)) != 0)
            continue;
        char *end;
        long pid = strtol(e->d_name + strlen(PRIVATE_DIR_PREFIX), &end, 10);
        if (*end != '.' || pid <= 0 || (kill((pid_t)pid, 0) == 0 || errno != ESRCH))
            continue;
        struct stat st;
        if (fstatat(dirfd(d), e->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0 || !S_ISDIR(st.st_mode) ||
            st.st_uid != geteuid())
            continue;
        int fd = openat(dirfd(d), e->d_name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        if (fd < 0)
            continue;
        unlinkat(fd, "nbd.sock", 0);
        unlinkat(fd, "qemu-nbd.err", 0);
        close(fd);
        if (unlinkat(dirfd(d), e->d_name, AT_REMOVEDIR) == 0)
            vb_info("removed %s/%s, left by a killed run (pid %ld)", tmpdir, e->d_name, pid);
    }
    closedir(d);
}

static bool socket_accepts(const char *path)
{
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    snprintf(sa.sun_path, sizeof sa.sun_path, "%s", path);
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return false;
    bool ok = connect(fd, (struct sockaddr *)&sa, sizeof sa) == 0;
    close(fd);
    return ok;
}

static void free_srv(struct qemu_nbd *srv)
{
    if (srv->host) {
        vb_host_rmdir(srv->host, srv->dir);
        free(srv->dir);
        free(srv->pidfile);
        free(srv->desc);
        free(srv);
        return;
    }
    if (srv->socket)
        unlink(srv->socket);
    if (srv->errfile)
        unlink(srv->errfile);
    if (srv->errfd >= 0)
        close(srv->errfd);
    if (srv->dir)
        rmdir(srv->dir);
    free(srv->socket);
    free(srv->errfile);
    free(srv->dir);
    free(srv);
}

/* The transport part of a remote server's command line: TCP, TLS, fork with a pid file. */
struct remote_args {
    const char *pidfile;
    char port[16];
    char *tls_object; /* malloc'ed */
};

static int build_argv(const struct qemu_nbd_opts *o, const char *sock, struct remote_args *ra,
                      char **argv, size_t max, char **imageopts, char *shared, size_t sharedlen,
                      struct vb_error *err)
{
    size_t n = 0;
    if (ra) {
        /* remote: through env(1), the remote shell's environment is not ours */
        argv[n++] = "env";
        argv[n++] = "GLIBC_TUNABLES=" QEMU_NBD_TUNABLES;
    }
    argv[n++] = "qemu-nbd";
    argv[n++] = "-t"; /* keep serving across clients; we stop it ourselves */
    if (ra) {
        argv[n++] = "--fork";
        argv[n++] = "--pid-file";
        argv[n++] = (char *)ra->pidfile;
        argv[n++] = "-p";
        argv[n++] = ra->port;
        if (o->bind) {
            argv[n++] = "-b";
            argv[n++] = (char *)o->bind;
        }
        if (ra->tls_object) {
            argv[n++] = "--object";
            argv[n++] = ra->tls_object;
            argv[n++] = "--tls-creds";
            argv[n++] = "tls0";
        }
    } else {
        argv[n++] = "-k";
        argv[n++] = (char *)sock;
    }
    argv[n++] = "-x";
    argv[n++] = (char *)(o->export_name ? o->export_name : "");
    snprintf(shared, sharedlen, "%d", o->connections > 0 ? o->connections : 1);
    argv[n++] = "-e";
    argv[n++] = shared;
    argv[n++] = "--cache=writeback";
    if (o->io_uring)
        argv[n++] = "--aio=io_uring";
    if (o->discard)
        argv[n++] = "--discard=unmap";
    if (o->read_only)
        argv[n++] = "-r";
    if (o->bitmap) {
        argv[n++] = "-B";
        argv[n++] = (char *)o->bitmap;
    }
    const char *format = o->format ? o->format : "qcow2";
    if (o->compress) {
        if (strcmp(format, "qcow2") != 0)
            return vb_error_set(err, "%s: --compress needs a qcow2 image, not %s", o->image,
                                format);
        char *esc = qemu_opt_escape(o->image);
        if (!esc || asprintf(imageopts,
                             "driver=compress,file.driver=qcow2,file.file.driver=file,"
                             "file.file.filename=%s",
                             esc) < 0) {
            free(esc);
            return vb_error_set(err, "out of memory");
        }
        free(esc);
        argv[n++] = "--image-opts";
        argv[n++] = "--";
        argv[n++] = *imageopts;
    } else {
        argv[n++] = "-f";
        argv[n++] = (char *)format;
        argv[n++] = "--";
        argv[n++] = (char *)o->image;
    }
    argv[n] = NULL;
    (void)max;
    return 0;
}

/* Our environment for qemu-nbd, with QEMU_NBD_TUNABLES ahead of any GLIBC_TUNABLES the user
 * set (later entries win, so theirs still do). One block: free the array only. */
static char **qemu_nbd_environ(void)
{
    extern char **environ;
    const char *user = getenv("GLIBC_TUNABLES");
    size_t n = 0;
    while (environ[n])
        n++;
    size_t vlen = sizeof "GLIBC_TUNABLES=" QEMU_NBD_TUNABLES + (user ? strlen(user) + 1 : 0);
    char **env = malloc((n + 2) * sizeof *env + vlen);
    if (!env)
        return NULL;
    char *var = (char *)(env + n + 2);
    snprintf(var, vlen, "GLIBC_TUNABLES=" QEMU_NBD_TUNABLES "%s%s", user ? ":" : "",
             user ? user : "");
    size_t k = 0;
    env[k++] = var;
    for (size_t i = 0; i < n; i++)
        if (strncmp(environ[i], "GLIBC_TUNABLES=", 15) != 0)
            env[k++] = environ[i];
    env[k] = NULL;
    return env;
}

static struct qemu_nbd *start_local(const struct qemu_nbd_opts *o, struct vb_error *err)
{
    struct qemu_nbd *srv = calloc(1, sizeof *srv);
    char *imageopts = NULL;
    if (!srv) {
        vb_error_set(err, "out of memory");
        return NULL;
    }
    srv->pid = -1;
    srv->errfd = -1;
    const char *tmp = getenv("TMPDIR");
    tmp = tmp && *tmp ? tmp : "/tmp";
    sweep_dead_dirs(tmp);
    char tmpl[4096];
    snprintf(tmpl, sizeof tmpl, "%s/" PRIVATE_DIR_PREFIX "%ld.XXXXXX", tmp, (long)getpid());
    /* The private directory holds qemu-nbd's stderr, and the socket unless the caller chose
     * one (-f): 0700, so no other user can connect to a writable export. */
    if (!mkdtemp(tmpl)) {
        vb_error_errno(err, "%s: cannot create a private directory", tmpl);
        free(srv);
        return NULL;
    }
    srv->dir = strdup(tmpl);
    if (o->socket_path) {
        srv->socket = strdup(o->socket_path);
        if (access(o->socket_path, F_OK) == 0) {
            vb_error_set(err, "%s: socket file exists already, refusing to replace it",
                         o->socket_path);
            free(srv->socket);
            srv->socket = NULL; /* not ours: do not unlink */
            free_srv(srv);
            return NULL;
        }
    } else if (asprintf(&srv->socket, "%s/nbd.sock", tmpl) < 0) {
        srv->socket = NULL;
    }
    if (asprintf(&srv->errfile, "%s/qemu-nbd.err", tmpl) < 0)
        srv->errfile = NULL;
    if (!srv->dir || !srv->socket || !srv->errfile) {
        vb_error_set(err, "out of memory");
        free_srv(srv);
        return NULL;
    }
    if (strlen(srv->socket) >= sizeof(((struct sockaddr_un *)0)->sun_path)) {
        vb_error_set(err, "%s: socket path too long", srv->socket);
        free_srv(srv);
        return NULL;
    }

    char *argv[40];
    char shared[16];
    if (build_argv(o, srv->socket, NULL, argv, 40, &imageopts, shared, sizeof shared, err) < 0) {
        free_srv(srv);
        return NULL;
    }
    char **envp = qemu_nbd_environ();
    int errfd = envp ? open(srv->errfile, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600) : -1;
    if (errfd < 0) {
        if (envp)
            vb_error_errno(err, "%s", srv->errfile);
        else
            vb_error_set(err, "out of memory");
        free(envp);
        free(imageopts);
        free_srv(srv);
        return NULL;
    }
    pid_t parent = getpid();
    pid_t pid = fork();
    if (pid == 0) {
        /* Its own process group (below) keeps it out of a terminal's Ctrl-C, so nothing
         * would stop it if we died without cleaning up (kill -9, a crash): it would serve
         * the half-written image forever. SIGTERM it when we die (it flushes and exits);
         * if we died already before prctl, exit at once. */
        if (prctl(PR_SET_PDEATHSIG, SIGTERM) < 0 || getppid() != parent)
            _exit(127);
        /* child: stdin from /dev/null, stdout and stderr into the error file */
        int nul = open("/dev/null", O_RDONLY);
        if (nul >= 0)
            dup2(nul, 0);
        dup2(errfd, 1);
        dup2(errfd, 2);
        /* Its own process group: a Ctrl-C on the terminal goes to the tool only, which
         * then stops the server in order (qemu-nbd would otherwise exit on SIGINT while
         * writes are in flight). */
        setpgid(0, 0);
        execvpe("qemu-nbd", argv, envp);
        fprintf(stderr, "cannot execute qemu-nbd: %s\n", strerror(errno));
        _exit(127);
    }
    /* Both the child and we hold the file open now: its name can go, so a killed run leaves
     * at most an empty directory (swept by the next run). */
    srv->errfd = errfd;
    unlink(srv->errfile);
    free(imageopts);
    free(envp);
    if (pid < 0) {
        vb_error_errno(err, "fork");
        free_srv(srv);
        return NULL;
    }
    srv->pid = pid;

    for (int waited = 0, pause = 1;;) {
        int status;
        if (waitpid(pid, &status, WNOHANG) == pid) {
            char msg[512];
            srv->exited = true;
            read_errfile(srv, msg, sizeof msg);
            vb_error_set(err, "qemu-nbd for %s exited before serving (status %d): %s", o->image,
                         WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status),
                         msg[0] ? msg : "no message");
            free_srv(srv);
            return NULL;
        }
        if (socket_accepts(srv->socket))
            return srv;
        if (waited >= READY_TIMEOUT_MS) {
            vb_error_set(err, "qemu-nbd for %s: socket %s not ready after %d s", o->image,
                         srv->socket, READY_TIMEOUT_MS / 1000);
            qemu_nbd_stop(srv, NULL);
            return NULL;
        }
        waited += backoff_sleep(&pause, 20);
    }
}

const char *qemu_nbd_socket(const struct qemu_nbd *srv)
{
    return srv->socket;
}

pid_t qemu_nbd_pid(const struct qemu_nbd *srv)
{
    return srv->pid;
}

static struct qemu_nbd *start_remote(struct vb_host *h, const struct qemu_nbd_opts *o,
                                     struct vb_error *err)
{
    struct qemu_nbd *srv = calloc(1, sizeof *srv);
    if (!srv) {
        vb_error_set(err, "out of memory");
        return NULL;
    }
    srv->errfd = -1;
    srv->host = h;
    srv->pid = -1;
    srv->exited = true; /* not our child */
    if (asprintf(&srv->desc, "%s:%d", o->bind ? o->bind : h->name, o->port) < 0)
        srv->desc = NULL;
    srv->dir = vb_host_mkdtemp(h, "/var/tmp", "virtbackup-nbd", -1, -1, err);
    if (!srv->dir) {
        free_srv(srv);
        return NULL;
    }
    if (asprintf(&srv->pidfile, "%s/qemu-nbd.pid", srv->dir) < 0) {
        srv->pidfile = NULL;
        vb_error_set(err, "out of memory");
        free_srv(srv);
        return NULL;
    }
    struct remote_args ra = {.pidfile = srv->pidfile};
    snprintf(ra.port, sizeof ra.port, "%d", o->port);
    if (o->tls_dir) {
        /* verify-peer=on: a client must present a certificate signed by the directory's CA
         * (ours comes from the same --tls-cert directory); the port is reachable from the
         * network, and the export is the disk (read) or the image being restored (written). */
        char *esc = qemu_opt_escape(o->tls_dir);
        if (!esc ||
            asprintf(&ra.tls_object, "tls-creds-x509,id=tls0,endpoint=server,dir=%s,verify-peer=on",
                     esc) < 0)
            ra.tls_object = NULL;
        free(esc);
    }
    char *argv[40], *imageopts = NULL;
    char shared[16];
    int rc = (o->tls_dir && !ra.tls_object)
                 ? vb_error_set(err, "out of memory")
                 : build_argv(o, NULL, &ra, argv, 40, &imageopts, shared, sizeof shared, err);
    if (rc == 0) {
        vb_debug("starting qemu-nbd for %s on %s, port %d", o->image, h->name, o->port);
        rc = vb_host_run(h, argv, NULL, NULL, err);
        if (rc < 0 && strstr(err->msg, "in use"))
            vb_error_prefix(err,
                            "port %d on %s is taken (another backup? choose a free one with "
                            "-P/--nbd-port)",
                            o->port, h->name);
        else if (rc < 0)
            vb_error_prefix(err, "qemu-nbd for %s on %s, port %d", o->image, h->name, o->port);
    }
    free(imageopts);
    free(ra.tls_object);
    if (rc < 0) {
        free_srv(srv);
        return NULL;
    }
    return srv;
}

/* SIGTERM (qemu-nbd flushes and exits), SIGKILL after 10 s; exit 3 if it had to be killed.
 * A zombie counts as gone: the forked server is init's child, and an init that reaps late
 * (containers) must not cost seconds. */
static const char stop_script[] =
    "p=$(cat \"$1\") || exit 2; kill \"$p\" 2>/dev/null || exit 0; i=0; "
    "alive() { kill -0 \"$p\" 2>/dev/null || return 1; st=; "
    "read -r _ _ st _ <\"/proc/$p/stat\" 2>/dev/null; [ \"$st\" != Z ]; }; "
    "while alive; do i=$((i+1)); "
    "if [ $i -gt 200 ]; then kill -9 \"$p\"; exit 3; fi; sleep 0.05; done";

static int stop_remote(struct qemu_nbd *srv, struct vb_error *err)
{
    char *argv[] = {"sh", "-c", (char *)stop_script, "sh", srv->pidfile, NULL};
    struct vb_error e = {0};
    int rc = vb_host_run(srv->host, argv, NULL, NULL, &e);
    if (rc < 0 && err)
        vb_error_set(err, "qemu-nbd on %s did not stop cleanly: %s", srv->desc ? srv->desc : "?",
                     e.msg);
    free_srv(srv);
    return rc;
}

int qemu_nbd_stop(struct qemu_nbd *srv, struct vb_error *err)
{
    if (!srv)
        return 0;
    if (srv->host)
        return stop_remote(srv, err);
    int rc = 0;
    if (!srv->exited && srv->pid > 0) {
        /* An exit before we asked is a crash as far as the image is concerned. */
        int status = 0;
        pid_t r = waitpid(srv->pid, &status, WNOHANG);
        bool early = r == srv->pid;
        if (!early) {
            kill(srv->pid, SIGTERM);
            for (int waited = 0, pause = 1;;) {
                r = waitpid(srv->pid, &status, WNOHANG);
                if (r == srv->pid || (r < 0 && errno != EINTR))
                    break;
                if (waited >= STOP_GRACE_MS) {
                    kill(srv->pid, SIGKILL);
                    waitpid(srv->pid, &status, 0);
                    status = -1;
                    break;
                }
                waited += backoff_sleep(&pause, 10);
            }
        }
        bool clean = !early && status != -1 &&
                     ((WIFEXITED(status) && WEXITSTATUS(status) == 0) ||
                      (WIFSIGNALED(status) && WTERMSIG(status) == SIGTERM));
        if (!clean) {
            char msg[512];
            read_errfile(srv, msg, sizeof msg);
            if (err)
                vb_error_set(err, "qemu-nbd (pid %d) %s: %s", (int)srv->pid,
                             early ? "exited unexpectedly" : "did not stop cleanly",
                             msg[0] ? msg : "no message");
            rc = -1;
        }
        srv->exited = true;
    }
    free_srv(srv);
    return rc;
}

/* A qemu-nbd built without io_uring, or on a kernel or under a seccomp policy that refuses
 * it, exits at once saying so ("Unable to use io_uring", "... is not supported in this
 * build"): then it gets its thread pool. Any other failure is the caller's. */
static bool io_uring_refused(const struct qemu_nbd_opts *o, const struct vb_error *err)
{
    return o->io_uring && strstr(err->msg, "io_uring");
}

struct qemu_nbd *qemu_nbd_start(const struct qemu_nbd_opts *o, struct vb_error *err)
{
    struct qemu_nbd *srv = start_local(o, err);
    if (srv || !io_uring_refused(o, err))
        return srv;
    vb_debug("%s; qemu-nbd started again without io_uring", err->msg);
    struct qemu_nbd_opts without = *o;
    without.io_uring = false;
    return start_local(&without, err);
}

struct qemu_nbd *qemu_nbd_start_remote(struct vb_host *h, const struct qemu_nbd_opts *o,
                                       struct vb_error *err)
{
    struct qemu_nbd *srv = start_remote(h, o, err);
    if (srv || !io_uring_refused(o, err))
        return srv;
    vb_debug("%s; qemu-nbd started again without io_uring", err->msg);
    struct qemu_nbd_opts without = *o;
    without.io_uring = false;
    return start_remote(h, &without, err);
}
