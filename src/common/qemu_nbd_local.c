/* qemu-nbd as our child serving a unix socket on this machine. The server is started with -t
 * (so that a readiness probe or a closing client does not end it), waited for until its
 * socket accepts, and stopped and reaped by qemu_nbd_stop on every path, so none is left
 * behind. */
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

#include "host.h"
#include "log.h"
#include "qemu_nbd_internal.h"

#define READY_TIMEOUT_MS 30000
#define STOP_GRACE_MS    10000

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

/* Our environment for qemu-nbd, with QEMU_NBD_TUNABLES ahead of any GLIBC_TUNABLES the user
 * set, user (later entries win, so theirs still do). One block: free the array only. */
static char **qemu_nbd_environ(const char *user)
{
    extern char **environ;
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

static int stop_local(struct qemu_nbd *srv, struct vb_error *err)
{
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

struct qemu_nbd *qemu_nbd_start_local(struct vb_host *h, const struct qemu_nbd_opts *o,
                                      struct vb_error *err)
{
    struct qemu_nbd *srv = calloc(1, sizeof *srv);
    char *imageopts = NULL;
    if (!srv) {
        vb_error_set(err, "out of memory");
        return NULL;
    }
    srv->stop = stop_local;
    srv->pid = -1;
    srv->errfd = -1;
    const char *tmp = h->tmpdir ? h->tmpdir : "/tmp";
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
    if (qemu_nbd_build_argv(o, srv->socket, NULL, argv, 40, &imageopts, shared, sizeof shared,
                            err) < 0) {
        free_srv(srv);
        return NULL;
    }
    char **envp = qemu_nbd_environ(h->glibc_tunables);
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
        if (socket_accepts(srv->socket)) {
            srv->target.socket = srv->socket;
            return srv;
        }
        if (waited >= READY_TIMEOUT_MS) {
            vb_error_set(err, "qemu-nbd for %s: socket %s not ready after %d s", o->image,
                         srv->socket, READY_TIMEOUT_MS / 1000);
            stop_local(srv, NULL);
            return NULL;
        }
        waited += backoff_sleep(&pause, 20);
    }
}
