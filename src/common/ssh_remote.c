/* The remote host of a qemu+ssh:// URI through libssh (see ssh_remote.h).
 *
 * The TCP connection is made here, not by libssh: every address of the host is tried with a
 * 10 s timeout each, and the failure is classified (does not resolve / refused / timed out)
 * from getaddrinfo's and connect's own codes instead of libssh's message text. The connected
 * socket is handed to libssh with SSH_OPTIONS_FD; libssh 0.10 does not close such a socket on
 * ssh_disconnect (it may close it itself after an I/O error), see session_end(). */
#include "ssh_remote.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pwd.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <libssh/libssh.h>
#include <libssh/sftp.h>

#include "log.h"
#include "util.h"

#define CONNECT_TIMEOUT_S 10
#define XFER_PIECE        (256 * 1024) /* local read/write unit */
#define XFER_REQUEST      (64 * 1024)  /* one SFTP read/write (OpenSSH allows < 256 KiB) */
#define XFER_INFLIGHT     16           /* pipelined SFTP reads (1 MiB) */
#define RUN_MAX_STDOUT    ((size_t)256 << 20)
#define RUN_MAX_STDERR    ((size_t)1 << 20)

struct vb_ssh {
    ssh_session session;
    sftp_session sftp; /* opened on first use */
    int fd;            /* our TCP socket, -1 once closed */
    bool fd_handed;    /* ssh_connect() was called with it */
    char *host;
    char *user;
    char *known_hosts;
    int port;
    char where[300]; /* "host:port" ("[v6]:port") for messages */
};

/* ---------------------------------------------------------------------------------------- */
/* Small helpers */

static char *xstrdup(const char *s)
{
    return s ? strdup(s) : NULL;
}

/* The current user's name and home directory (from the passwd database, as OpenSSH does). */
static int current_user(char **name, char **home, struct vb_error *err)
{
    struct passwd pw, *res = NULL;
    long sz = sysconf(_SC_GETPW_R_SIZE_MAX);
    size_t bufsz = sz > 0 ? (size_t)sz : 16384;
    char *buf = malloc(bufsz);
    if (!buf)
        return vb_error_errno(err, "out of memory");
    int rc = getpwuid_r(geteuid(), &pw, buf, bufsz, &res);
    if (rc != 0 || !res) {
        free(buf);
        if (rc)
            errno = rc;
        else
            errno = ENOENT;
        return vb_error_errno(err, "cannot look up the current user (uid %u)", (unsigned)geteuid());
    }
    *name = strdup(pw.pw_name);
    *home = strdup(pw.pw_dir);
    free(buf);
    if (!*name || !*home) {
        free(*name);
        free(*home);
        return vb_error_errno(err, "out of memory");
    }
    return 0;
}

static void session_end(struct vb_ssh *s)
{
    if (s->sftp) {
        sftp_free(s->sftp);
        s->sftp = NULL;
    }
    if (s->session) {
        /* libssh closes a socket given with SSH_OPTIONS_FD only after an I/O error (and then
         * forgets it: ssh_get_fd() is -1); ssh_disconnect() leaves it open. */
        bool ours = s->fd >= 0 && (!s->fd_handed || ssh_get_fd(s->session) == s->fd);
        ssh_disconnect(s->session);
        ssh_free(s->session);
        s->session = NULL;
        if (!ours)
            s->fd = -1;
    }
    if (s->fd >= 0) {
        close(s->fd);
        s->fd = -1;
    }
}

void vb_ssh_close(struct vb_ssh *s)
{
    if (!s)
        return;
    session_end(s);
    free(s->host);
    free(s->user);
    free(s->known_hosts);
    free(s);
}

const char *vb_ssh_host(const struct vb_ssh *s)
{
    return s->host;
}

/* ---------------------------------------------------------------------------------------- */
/* TCP connection */

/* Connects to one address within the timeout. Returns the socket or -1 with errno
 * (ETIMEDOUT for the timeout). */
static int connect_one(const struct addrinfo *ai, int timeout_ms)
{
    int fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC | SOCK_NONBLOCK, ai->ai_protocol);
    if (fd < 0)
        return -1;
    if (connect(fd, ai->ai_addr, ai->ai_addrlen) == 0)
        return fd;
    if (errno != EINPROGRESS) {
        int e = errno;
        close(fd);
        errno = e;
        return -1;
    }
    struct timespec start, now;
    clock_gettime(CLOCK_MONOTONIC, &start);
    for (;;) {
        clock_gettime(CLOCK_MONOTONIC, &now);
        long spent = (now.tv_sec - start.tv_sec) * 1000 + (now.tv_nsec - start.tv_nsec) / 1000000;
        if (spent >= timeout_ms) {
            close(fd);
            errno = ETIMEDOUT;
            return -1;
        }
        struct pollfd p = {.fd = fd, .events = POLLOUT};
        int n = poll(&p, 1, (int)(timeout_ms - spent));
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            int e = errno;
            close(fd);
            errno = e;
            return -1;
        }
        if (n == 0)
            continue; /* the loop notices the timeout */
        int soerr = 0;
        socklen_t len = sizeof soerr;
        if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &len) < 0)
            soerr = errno;
        if (soerr) {
            close(fd);
            errno = soerr;
            return -1;
        }
        return fd;
    }
}

/* Resolves and connects, trying every address. Errors say which of the usual cases it is. */
static int tcp_connect(const struct vb_ssh *s, struct vb_error *err)
{
    char port[16];
    snprintf(port, sizeof port, "%d", s->port);
    /* No AI_ADDRCONFIG: it hides 127.0.0.1 on a host with only a loopback interface. */
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM};
    struct addrinfo *res = NULL;
    int rc = getaddrinfo(s->host, port, &hints, &res);
    if (rc == EAI_SYSTEM)
        return vb_error_errno(err, "cannot resolve host %s", s->host);
    if (rc != 0)
        return vb_error_set(err, "host %s does not resolve (%s): check the host name", s->host,
                            gai_strerror(rc));
    int fd = -1, refused = 0, timedout = 0, other = 0;
    for (struct addrinfo *ai = res; ai && fd < 0; ai = ai->ai_next) {
        fd = connect_one(ai, CONNECT_TIMEOUT_S * 1000);
        if (fd >= 0)
            break;
        if (errno == ECONNREFUSED)
            refused = 1;
        else if (errno == ETIMEDOUT)
            timedout = 1;
        else if (!other)
            other = errno;
    }
    freeaddrinfo(res);
    if (fd >= 0) {
        int one = 1;
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        setsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &one, sizeof one);
        return fd;
    }
    if (other) {
        errno = other;
        return vb_error_errno(err, "cannot connect to %s", s->where);
    }
    if (timedout)
        return vb_error_set(err,
                            "connection to %s timed out after %d s: check the address, the port "
                            "and firewalls",
                            s->where, CONNECT_TIMEOUT_S);
    if (refused)
        return vb_error_set(err,
                            "connection to %s refused: is sshd running there and listening on "
                            "port %d?",
                            s->where, s->port);
    return vb_error_set(err, "cannot connect to %s: no usable address", s->where);
}

/* ---------------------------------------------------------------------------------------- */
/* Host key */

/* "ssh-ed25519 SHA256:..." of the server's key into buf (or "unknown key"). */
static void server_key_desc(ssh_session session, char *buf, size_t size)
{
    snprintf(buf, size, "an unknown key");
    ssh_key key = NULL;
    if (ssh_get_server_publickey(session, &key) != SSH_OK)
        return;
    unsigned char *hash = NULL;
    size_t hlen = 0;
    if (ssh_get_publickey_hash(key, SSH_PUBLICKEY_HASH_SHA256, &hash, &hlen) == 0) {
        char *fp = ssh_get_fingerprint_hash(SSH_PUBLICKEY_HASH_SHA256, hash, hlen);
        if (fp)
            snprintf(buf, size, "%s %s", ssh_key_type_to_char(ssh_key_type(key)), fp);
        ssh_string_free_char(fp);
        ssh_clean_pubkey_hash(&hash);
    }
    ssh_key_free(key);
}

/* Makes the directories above path (0700, as ~/.ssh). */
static int mkdir_parents(const char *path, struct vb_error *err)
{
    char *buf = strdup(path);
    if (!buf)
        return vb_error_errno(err, "out of memory");
    for (char *p = buf + 1; *p; p++) {
        if (*p != '/')
            continue;
        *p = '\0';
        if (mkdir(buf, 0700) < 0 && errno != EEXIST) {
            vb_error_errno(err, "cannot create directory %s for %s", buf, path);
            free(buf);
            return -1;
        }
        *p = '/';
    }
    free(buf);
    return 0;
}

static int check_host_key(struct vb_ssh *s, bool accept_new, struct vb_error *err)
{
    char key[200];
    enum ssh_known_hosts_e state = ssh_session_is_known_server(s->session);
    switch (state) {
    case SSH_KNOWN_HOSTS_OK:
        return 0;
    case SSH_KNOWN_HOSTS_CHANGED:
        server_key_desc(s->session, key, sizeof key);
        return vb_error_set(err,
                            "host key for %s has CHANGED (the server now offers %s): possible "
                            "attack; remove the old key from %s only if the change is expected",
                            s->where, key, s->known_hosts);
    case SSH_KNOWN_HOSTS_OTHER:
        server_key_desc(s->session, key, sizeof key);
        return vb_error_set(err,
                            "host key for %s has CHANGED (%s has a key of another type, the "
                            "server offers %s): possible attack; remove the old key from %s only "
                            "if the change is expected",
                            s->where, s->known_hosts, key, s->known_hosts);
    case SSH_KNOWN_HOSTS_NOT_FOUND:
    case SSH_KNOWN_HOSTS_UNKNOWN:
        server_key_desc(s->session, key, sizeof key);
        if (!accept_new)
            return vb_error_set(err,
                                "host key of %s is not in %s (add it with ssh-keyscan, or pass "
                                "--ssh-accept-new-key); the server offers %s",
                                s->where, s->known_hosts, key);
        if (mkdir_parents(s->known_hosts, err) < 0)
            return -1;
        if (ssh_session_update_known_hosts(s->session) != SSH_OK)
            return vb_error_set(err, "cannot record the host key of %s in %s: %s", s->where,
                                s->known_hosts, ssh_get_error(s->session));
        vb_info("accepted new host key of %s (%s), recorded in %s", s->where, key, s->known_hosts);
        return 0;
    case SSH_KNOWN_HOSTS_ERROR:
    default:
        return vb_error_set(err, "cannot check the host key of %s against %s: %s", s->where,
                            s->known_hosts, ssh_get_error(s->session));
    }
}

/* ---------------------------------------------------------------------------------------- */
/* Authentication */

static int authenticate(struct vb_ssh *s, const char *private_key, struct vb_error *err)
{
    int rc;
    if (private_key) {
        if (access(private_key, R_OK) < 0)
            return vb_error_errno(err, "cannot read private key %s", private_key);
        ssh_key key = NULL;
        /* No passphrase and no prompt: an encrypted key fails here. */
        if (ssh_pki_import_privkey_file(private_key, NULL, NULL, NULL, &key) != SSH_OK)
            return vb_error_set(err,
                                "cannot load private key %s: not a private key, or protected by "
                                "a passphrase (use an unencrypted key or ssh-agent)",
                                private_key);
        rc = ssh_userauth_publickey(s->session, NULL, key);
        ssh_key_free(key);
    } else {
        rc = ssh_userauth_publickey_auto(s->session, NULL, NULL);
    }
    switch (rc) {
    case SSH_AUTH_SUCCESS:
        return 0;
    case SSH_AUTH_PARTIAL:
        return vb_error_set(err,
                            "authentication as %s@%s failed (the server wants a further method "
                            "after the key, which is not supported)",
                            s->user, s->where);
    case SSH_AUTH_DENIED:
        if (private_key)
            return vb_error_set(err,
                                "authentication as %s@%s failed (key %s not accepted: is its "
                                "public key in %s's authorized_keys?)",
                                s->user, s->where, private_key, s->user);
        return vb_error_set(err,
                            "authentication as %s@%s failed (no key from ssh-agent or "
                            "~/.ssh/id_* was accepted: give a key file, e.g. keyfile= in the URI)",
                            s->user, s->where);
    default:
        return vb_error_set(err, "authentication as %s@%s failed (key %s): %s", s->user, s->where,
                            private_key ? private_key : "auto", ssh_get_error(s->session));
    }
}

/* ---------------------------------------------------------------------------------------- */

struct vb_ssh *vb_ssh_open(const struct vb_ssh_opts *opts, struct vb_error *err)
{
    if (!opts || !opts->host || !opts->host[0]) {
        vb_error_set(err, "ssh: no host given");
        return NULL;
    }
    int port = opts->port ? opts->port : 22;
    if (port < 1 || port > 65535) {
        vb_error_set(err, "ssh: invalid port %d for host %s", opts->port, opts->host);
        return NULL;
    }
    struct vb_ssh *s = calloc(1, sizeof *s);
    if (!s) {
        vb_error_errno(err, "out of memory");
        return NULL;
    }
    s->fd = -1;
    s->port = port;
    s->host = strdup(opts->host);
    if (strchr(opts->host, ':'))
        snprintf(s->where, sizeof s->where, "[%s]:%d", opts->host, port);
    else
        snprintf(s->where, sizeof s->where, "%s:%d", opts->host, port);

    /* The passwd entry is needed only for what the caller left out. */
    char *me = NULL, *home = NULL;
    if ((!opts->user || !opts->known_hosts) && current_user(&me, &home, err) < 0)
        goto fail;
    s->user = opts->user ? xstrdup(opts->user) : xstrdup(me);
    if (opts->known_hosts) {
        s->known_hosts = strdup(opts->known_hosts);
    } else {
        size_t n = strlen(home) + sizeof "/.ssh/known_hosts";
        s->known_hosts = malloc(n);
        if (s->known_hosts)
            snprintf(s->known_hosts, n, "%s/.ssh/known_hosts", home);
    }
    free(me);
    free(home);
    if (!s->host || !s->user || !s->known_hosts) {
        vb_error_errno(err, "out of memory");
        goto fail;
    }

    s->fd = tcp_connect(s, err);
    if (s->fd < 0)
        goto fail;

    s->session = ssh_new();
    if (!s->session) {
        vb_error_set(err, "ssh: cannot create a libssh session (out of memory?)");
        goto fail;
    }
    long timeout = CONNECT_TIMEOUT_S;
    int no = 0;
    socket_t fd = s->fd;
    /* PROCESS_CONFIG off: ~/.ssh/config must not override what the caller gave. */
    if (ssh_options_set(s->session, SSH_OPTIONS_PROCESS_CONFIG, &no) < 0 ||
        ssh_options_set(s->session, SSH_OPTIONS_HOST, s->host) < 0 ||
        ssh_options_set(s->session, SSH_OPTIONS_PORT, &s->port) < 0 ||
        ssh_options_set(s->session, SSH_OPTIONS_USER, s->user) < 0 ||
        ssh_options_set(s->session, SSH_OPTIONS_KNOWNHOSTS, s->known_hosts) < 0 ||
        ssh_options_set(s->session, SSH_OPTIONS_TIMEOUT, &timeout) < 0 ||
        ssh_options_set(s->session, SSH_OPTIONS_FD, &fd) < 0) {
        vb_error_set(err, "ssh: cannot set options for %s: %s", s->where,
                     ssh_get_error(s->session));
        goto fail;
    }
    s->fd_handed = true;
    if (ssh_connect(s->session) != SSH_OK) {
        vb_error_set(err, "SSH handshake with %s failed: %s", s->where, ssh_get_error(s->session));
        goto fail;
    }
    if (check_host_key(s, opts->accept_new_host_key, err) < 0)
        goto fail;
    if (authenticate(s, opts->private_key, err) < 0)
        goto fail;
    vb_debug("ssh: connected to %s as %s", s->where, s->user);
    return s;

fail:
    vb_ssh_close(s);
    return NULL;
}

/* ---------------------------------------------------------------------------------------- */
/* Remote commands */

char *vb_shell_quote(const char *arg)
{
    size_t n = 2;
    for (const char *p = arg; *p; p++)
        n += *p == '\'' ? 4 : 1;
    char *q = malloc(n + 1);
    if (!q)
        return NULL;
    char *o = q;
    *o++ = '\'';
    for (const char *p = arg; *p; p++) {
        if (*p == '\'') {
            memcpy(o, "'\\''", 4);
            o += 4;
        } else {
            *o++ = *p;
        }
    }
    *o++ = '\'';
    *o = '\0';
    return q;
}

/* The command line: every argument quoted, separated by spaces. */
static char *command_line(char *const argv[])
{
    size_t len = 0, cap = 256;
    char *cmd = malloc(cap);
    if (!cmd)
        return NULL;
    cmd[0] = '\0';
    for (size_t i = 0; argv[i]; i++) {
        char *q = vb_shell_quote(argv[i]);
        if (!q) {
            free(cmd);
            return NULL;
        }
        size_t qlen = strlen(q);
        if (len + qlen + 2 > cap) {
            while (len + qlen + 2 > cap)
                cap *= 2;
            char *p = realloc(cmd, cap);
            if (!p) {
                free(q);
                free(cmd);
                return NULL;
            }
            cmd = p;
        }
        if (i)
            cmd[len++] = ' ';
        memcpy(cmd + len, q, qlen + 1);
        len += qlen;
        free(q);
    }
    return cmd;
}

struct growbuf {
    char *data;
    size_t len, cap, max;
    bool truncated;
};

static int growbuf_add(struct growbuf *b, const char *p, size_t n)
{
    if (b->len + n > b->max) {
        b->truncated = true;
        n = b->max - b->len;
    }
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 4096;
        while (b->len + n + 1 > cap)
            cap *= 2;
        char *d = realloc(b->data, cap);
        if (!d)
            return -1;
        b->data = d;
        b->cap = cap;
    }
    memcpy(b->data + b->len, p, n);
    b->len += n;
    b->data[b->len] = '\0';
    return 0;
}

/* Reads what is buffered on one stream without blocking. 1: got data, 0: none, -1: error. */
static int drain_nonblocking(ssh_channel ch, int is_stderr, struct growbuf *b, char *buf,
                             size_t size)
{
    int got = 0;
    for (;;) {
        int n = ssh_channel_read_nonblocking(ch, buf, (uint32_t)size, is_stderr);
        if (n == SSH_ERROR)
            return -1;
        if (n <= 0) /* 0: nothing now, SSH_EOF: nothing any more */
            return got;
        if (growbuf_add(b, buf, (size_t)n) < 0)
            return -1;
        got = 1;
    }
}

int vb_ssh_run(struct vb_ssh *s, char *const argv[], char **out, size_t *outlen,
               struct vb_error *err)
{
    if (out)
        *out = NULL;
    if (outlen)
        *outlen = 0;
    if (!argv || !argv[0])
        return vb_error_set(err, "ssh: no command to run on %s", s->host);
    char *cmd = command_line(argv);
    if (!cmd)
        return vb_error_errno(err, "out of memory");
    vb_debug("ssh %s: %s", s->where, cmd);

    struct growbuf ob = {.max = RUN_MAX_STDOUT}, eb = {.max = RUN_MAX_STDERR};
    int rc = -1;
    char *buf = malloc(XFER_REQUEST);
    ssh_channel ch = ssh_channel_new(s->session);
    if (!buf || !ch) {
        vb_error_set(err, "cannot run %s on %s: out of memory", argv[0], s->host);
        goto out;
    }
    if (ssh_channel_open_session(ch) != SSH_OK || ssh_channel_request_exec(ch, cmd) != SSH_OK) {
        vb_error_set(err, "cannot run %s on %s: %s", argv[0], s->where, ssh_get_error(s->session));
        goto out;
    }
    /* Nothing goes to the command's stdin: it reads end-of-file, as from /dev/null. */
    ssh_channel_send_eof(ch);

    /* stdout and stderr share the channel's window: keep reading both, or a command that
     * writes much to one while we wait on the other would stall. */
    for (;;) {
        int n = ssh_channel_read_timeout(ch, buf, XFER_REQUEST, 0, 100);
        if (n == SSH_ERROR) {
            vb_error_set(err, "running %s on %s: %s", argv[0], s->where, ssh_get_error(s->session));
            goto out;
        }
        if (n > 0 && growbuf_add(&ob, buf, (size_t)n) < 0) {
            vb_error_errno(err, "running %s on %s: out of memory", argv[0], s->host);
            goto out;
        }
        if (drain_nonblocking(ch, 1, &eb, buf, XFER_REQUEST) < 0 ||
            (n == 0 && ssh_channel_is_eof(ch) &&
             drain_nonblocking(ch, 0, &ob, buf, XFER_REQUEST) < 0)) {
            vb_error_set(err, "running %s on %s: %s", argv[0], s->where, ssh_get_error(s->session));
            goto out;
        }
        if (n == 0 && ssh_channel_is_eof(ch))
            break;
    }
    int status = ssh_channel_get_exit_status(ch);
    if (status != 0) {
        char line[512] = "";
        if (eb.data) {
            size_t l = strcspn(eb.data, "\n");
            snprintf(line, sizeof line, "%.*s", (int)l, eb.data);
        }
        if (status < 0)
            vb_error_set(err, "%s on %s failed (no exit status: killed by a signal?)%s%s", argv[0],
                         s->host, line[0] ? ": " : "", line);
        else
            vb_error_set(err, "%s on %s failed (exit %d): %s", argv[0], s->host, status,
                         line[0] ? line : "(no error output)");
        goto out;
    }
    if (ob.truncated) {
        vb_error_set(err, "%s on %s: output larger than %zu MiB", argv[0], s->host,
                     RUN_MAX_STDOUT >> 20);
        goto out;
    }
    /* No output at all still gives the caller an empty string, not NULL. */
    if (!ob.data && !(ob.data = calloc(1, 1))) {
        vb_error_errno(err, "out of memory");
        goto out;
    }
    if (outlen)
        *outlen = ob.len;
    if (out) {
        *out = ob.data;
        ob.data = NULL;
    }
    rc = 0;
out:
    if (ch) {
        ssh_channel_close(ch);
        ssh_channel_free(ch);
    }
    free(ob.data);
    free(eb.data);
    free(buf);
    free(cmd);
    return rc;
}

/* ---------------------------------------------------------------------------------------- */
/* SFTP */

static int sftp_ready(struct vb_ssh *s, struct vb_error *err)
{
    if (s->sftp)
        return 0;
    s->sftp = sftp_new(s->session);
    if (!s->sftp)
        return vb_error_set(err, "cannot start SFTP on %s: %s", s->where,
                            ssh_get_error(s->session));
    if (sftp_init(s->sftp) != SSH_OK) {
        vb_error_set(err,
                     "cannot start SFTP on %s (is the sftp subsystem enabled in its "
                     "sshd_config?): %s",
                     s->where, ssh_get_error(s->session));
        sftp_free(s->sftp);
        s->sftp = NULL;
        return -1;
    }
    return 0;
}

/* Why the last SFTP request failed. */
static const char *sftp_why(struct vb_ssh *s)
{
    if (ssh_get_error_code(s->session) == SSH_FATAL)
        return ssh_get_error(s->session);
    switch (sftp_get_error(s->sftp)) {
    case SSH_FX_EOF:
        return "unexpected end of file";
    case SSH_FX_NO_SUCH_FILE:
    case SSH_FX_NO_SUCH_PATH:
        return "No such file or directory";
    case SSH_FX_PERMISSION_DENIED:
        return "Permission denied";
    case SSH_FX_FILE_ALREADY_EXISTS:
        return "already exists";
    case SSH_FX_WRITE_PROTECT:
        return "read-only file system";
    case SSH_FX_NO_MEDIA:
        return "no medium";
    case SSH_FX_OP_UNSUPPORTED:
        return "operation not supported by the SFTP server";
    case SSH_FX_NO_CONNECTION:
    case SSH_FX_CONNECTION_LOST:
        return "connection lost";
    default: {
        const char *m = ssh_get_error(s->session);
        return m && m[0] ? m : "failed";
    }
    }
}

static bool sftp_missing(struct vb_ssh *s)
{
    int e = sftp_get_error(s->sftp);
    return ssh_get_error_code(s->session) != SSH_FATAL &&
           (e == SSH_FX_NO_SUCH_FILE || e == SSH_FX_NO_SUCH_PATH);
}

int vb_ssh_exists(struct vb_ssh *s, const char *remote, struct vb_error *err)
{
    if (sftp_ready(s, err) < 0)
        return -1;
    sftp_attributes a = sftp_lstat(s->sftp, remote);
    if (a) {
        sftp_attributes_free(a);
        return 1;
    }
    if (sftp_missing(s))
        return 0;
    return vb_error_set(err, "cannot check %s:%s: %s", s->host, remote, sftp_why(s));
}

/* Pipelined download of an open remote file into fd: up to XFER_INFLIGHT read requests in
 * flight, answered in order. libssh 0.10's sftp_async_read() reads one packet before looking
 * for its answer in the queue, so answers must be collected in the order of the requests and
 * no other request may be made while some are in flight. A short answer (normally the end of
 * the file) stops the pipeline: the answers still in flight are collected and thrown away,
 * and reading resumes where the short one ended (an end-of-file answer then finishes). */
static int get_data(struct vb_ssh *s, sftp_file f, const char *remote, int fd, const char *partial,
                    struct vb_error *err)
{
    struct req {
        uint32_t id, len;
        uint64_t off;
    } q[XFER_INFLIGHT];
    size_t head = 0, count = 0, fill = 0;
    uint64_t next = 0, resume = 0;
    bool stop = false, eof = false;
    int rc = 0;
    char *piece = malloc(XFER_PIECE);
    if (!piece)
        return vb_error_errno(err, "out of memory");
    for (;;) {
        while (rc == 0 && !stop && count < XFER_INFLIGHT) {
            sftp_seek64(f, next);
            int id = sftp_async_read_begin(f, XFER_REQUEST);
            if (id < 0) {
                rc = vb_error_set(err, "cannot read %s:%s: %s", s->host, remote, sftp_why(s));
                break;
            }
            q[(head + count) % XFER_INFLIGHT] = (struct req){(uint32_t)id, XFER_REQUEST, next};
            count++;
            next += XFER_REQUEST;
        }
        if (count == 0) {
            if (rc || eof)
                break;
            stop = false; /* after a short answer: go on from its end */
            next = resume;
            continue;
        }
        struct req r = q[head];
        head = (head + 1) % XFER_INFLIGHT;
        count--;
        if (fill + r.len > XFER_PIECE) {
            if (rc == 0 && vb_write_all(fd, piece, fill) < 0)
                rc = vb_error_errno(err, "cannot write %s", partial);
            fill = 0;
        }
        /* The seek clears libssh's eof flag: after an end-of-file answer sftp_async_read()
         * returns 0 at once and would leave the next answers unread. */
        sftp_seek64(f, r.off);
        int n = sftp_async_read(f, piece + fill, r.len, r.id);
        if (rc || stop)
            continue; /* collected and dropped */
        if (n < 0) {
            rc = vb_error_set(err, "cannot read %s:%s: %s", s->host, remote, sftp_why(s));
            continue;
        }
        if (n == 0) {
            eof = stop = true;
            continue;
        }
        fill += (size_t)n;
        if ((uint32_t)n < r.len) {
            stop = true;
            resume = r.off + (uint64_t)n;
        }
    }
    if (rc == 0 && fill && vb_write_all(fd, piece, fill) < 0)
        rc = vb_error_errno(err, "cannot write %s", partial);
    free(piece);
    return rc;
}

int vb_ssh_get(struct vb_ssh *s, const char *remote, const char *local, struct vb_error *err)
{
    if (sftp_ready(s, err) < 0)
        return -1;
    sftp_file f = sftp_open(s->sftp, remote, O_RDONLY, 0);
    if (!f)
        return vb_error_set(err, "cannot open %s:%s: %s", s->host, remote, sftp_why(s));
    sftp_attributes a = sftp_fstat(f);
    if (!a) {
        vb_error_set(err, "cannot stat %s:%s: %s", s->host, remote, sftp_why(s));
        sftp_close(f);
        return -1;
    }
    bool regular = a->type == SSH_FILEXFER_TYPE_REGULAR;
    mode_t mode = (a->flags & SSH_FILEXFER_ATTR_PERMISSIONS) ? a->permissions & 0777 : 0600;
    sftp_attributes_free(a);
    if (!regular) {
        sftp_close(f);
        return vb_error_set(err, "%s:%s is not a regular file", s->host, remote);
    }

    size_t plen = strlen(local) + sizeof ".partial";
    char *partial = malloc(plen);
    if (!partial) {
        sftp_close(f);
        return vb_error_errno(err, "out of memory");
    }
    snprintf(partial, plen, "%s.partial", local);
    int rc = 0;
    /* The remote file's permission bits (less the umask), as cp does. */
    int fd = open(partial, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, mode);
    if (fd < 0) {
        rc = vb_error_errno(err, "cannot create %s", partial);
        sftp_close(f);
        free(partial);
        return rc;
    }
    rc = get_data(s, f, remote, fd, partial, err);
    sftp_close(f);
    if (rc == 0 && fsync(fd) < 0)
        rc = vb_error_errno(err, "cannot write %s (fsync)", partial);
    if (close(fd) < 0 && rc == 0)
        rc = vb_error_errno(err, "cannot write %s (close)", partial);
    if (rc == 0 && rename(partial, local) < 0)
        rc = vb_error_errno(err, "cannot rename %s to %s", partial, local);
    if (rc < 0)
        unlink(partial);
    free(partial);
    return rc;
}

int vb_ssh_put(struct vb_ssh *s, const char *local, const char *remote, mode_t mode,
               struct vb_error *err)
{
    if (sftp_ready(s, err) < 0)
        return -1;
    int ex = vb_ssh_exists(s, remote, err);
    if (ex < 0)
        return -1;
    if (ex)
        return vb_error_set(err, "%s:%s already exists: not overwriting it", s->host, remote);
    int fd = open(local, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return vb_error_errno(err, "cannot open %s", local);
    size_t plen = strlen(remote) + sizeof ".partial";
    char *partial = malloc(plen);
    char *piece = malloc(XFER_PIECE);
    int rc = 0;
    sftp_file f = NULL;
    if (!partial || !piece) {
        rc = vb_error_errno(err, "out of memory");
        goto out;
    }
    snprintf(partial, plen, "%s.partial", remote);
    /* A leftover of an interrupted upload goes; O_EXCL then never follows a planted link. */
    if (sftp_unlink(s->sftp, partial) < 0 && !sftp_missing(s)) {
        rc = vb_error_set(err, "cannot remove the leftover %s:%s: %s", s->host, partial,
                          sftp_why(s));
        goto out;
    }
    f = sftp_open(s->sftp, partial, O_WRONLY | O_CREAT | O_EXCL, 0600);
    if (!f) {
        rc = vb_error_set(err, "cannot create %s:%s: %s", s->host, partial, sftp_why(s));
        goto out;
    }
    for (;;) {
        ssize_t n = read(fd, piece, XFER_PIECE);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            rc = vb_error_errno(err, "cannot read %s", local);
            break;
        }
        if (n == 0)
            break;
        for (ssize_t off = 0; off < n && rc == 0;) {
            size_t len = (size_t)(n - off) < XFER_REQUEST ? (size_t)(n - off) : XFER_REQUEST;
            ssize_t w = sftp_write(f, piece + off, len);
            if (w < 0 || (size_t)w != len)
                rc = vb_error_set(err, "cannot write %s:%s: %s", s->host, partial, sftp_why(s));
            off += (ssize_t)len;
        }
        if (rc)
            break;
    }
    if (rc == 0 && sftp_extension_supported(s->sftp, "fsync@openssh.com", "1") && sftp_fsync(f) < 0)
        rc = vb_error_set(err, "cannot write %s:%s (fsync): %s", s->host, partial, sftp_why(s));
    if (sftp_close(f) < 0 && rc == 0)
        rc = vb_error_set(err, "cannot write %s:%s (close): %s", s->host, partial, sftp_why(s));
    f = NULL;
    /* Exact permissions: the server's umask applied to the open mode. */
    if (rc == 0 && sftp_chmod(s->sftp, partial, mode & 07777) < 0)
        rc = vb_error_set(err, "cannot chmod %s:%s: %s", s->host, partial, sftp_why(s));
    /* SFTP v3 rename (OpenSSH: link + unlink) refuses an existing target. */
    if (rc == 0 && sftp_rename(s->sftp, partial, remote) < 0) {
        struct vb_error tmp;
        if (vb_ssh_exists(s, remote, &tmp) == 1)
            rc = vb_error_set(err, "%s:%s already exists: not overwriting it", s->host, remote);
        else
            rc = vb_error_set(err, "cannot rename %s:%s to %s: %s", s->host, partial, remote,
                              sftp_why(s));
    }
    if (rc < 0 && ssh_get_error_code(s->session) != SSH_FATAL)
        sftp_unlink(s->sftp, partial);
out:
    if (f)
        sftp_close(f);
    close(fd);
    free(partial);
    free(piece);
    return rc;
}

int vb_ssh_mkdir(struct vb_ssh *s, const char *remote, mode_t mode, struct vb_error *err)
{
    if (sftp_ready(s, err) < 0)
        return -1;
    if (sftp_mkdir(s->sftp, remote, mode & 07777) < 0)
        return vb_error_set(err, "cannot create directory %s:%s: %s", s->host, remote, sftp_why(s));
    if (sftp_chmod(s->sftp, remote, mode & 07777) < 0)
        return vb_error_set(err, "cannot chmod %s:%s: %s", s->host, remote, sftp_why(s));
    return 0;
}

int vb_ssh_mkdtemp(struct vb_ssh *s, char *template_path, mode_t mode, struct vb_error *err)
{
    static const char chars[] = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
    size_t len = strlen(template_path);
    if (len < 6 || strcmp(template_path + len - 6, "XXXXXX") != 0)
        return vb_error_set(err, "remote temporary directory template %s does not end in XXXXXX",
                            template_path);
    if (sftp_ready(s, err) < 0)
        return -1;
    char *x = template_path + len - 6;
    for (int attempt = 0; attempt < 100; attempt++) {
        unsigned char rnd[6];
        if (getrandom(rnd, sizeof rnd, 0) != (ssize_t)sizeof rnd)
            return vb_error_errno(err, "getrandom");
        for (int i = 0; i < 6; i++)
            x[i] = chars[rnd[i] % (sizeof chars - 1)];
        if (sftp_mkdir(s->sftp, template_path, 0700) == 0) {
            if ((mode & 07777) != 0700 && sftp_chmod(s->sftp, template_path, mode & 07777) < 0) {
                vb_error_set(err, "cannot chmod %s:%s: %s", s->host, template_path, sftp_why(s));
                sftp_rmdir(s->sftp, template_path);
                return -1;
            }
            return 0;
        }
        if (sftp_get_error(s->sftp) != SSH_FX_FILE_ALREADY_EXISTS ||
            ssh_get_error_code(s->session) == SSH_FATAL)
            return vb_error_set(err, "cannot create directory %s:%s: %s", s->host, template_path,
                                sftp_why(s));
    }
    return vb_error_set(err, "cannot create a unique directory %s:%s (100 names taken)", s->host,
                        template_path);
}

int vb_ssh_chown(struct vb_ssh *s, const char *remote, int uid, int gid, struct vb_error *err)
{
    if (sftp_ready(s, err) < 0)
        return -1;
    if (sftp_chown(s->sftp, remote, (uid_t)uid, (gid_t)gid) < 0)
        return vb_error_set(err, "cannot chown %s:%s to %d:%d: %s", s->host, remote, uid, gid,
                            sftp_why(s));
    return 0;
}

int vb_ssh_unlink(struct vb_ssh *s, const char *remote, struct vb_error *err)
{
    if (sftp_ready(s, err) < 0)
        return -1;
    if (sftp_unlink(s->sftp, remote) < 0)
        return vb_error_set(err, "cannot remove %s:%s: %s", s->host, remote, sftp_why(s));
    return 0;
}

int vb_ssh_rmdir_files(struct vb_ssh *s, const char *remote, struct vb_error *err)
{
    if (sftp_ready(s, err) < 0)
        return -1;
    sftp_dir d = sftp_opendir(s->sftp, remote);
    if (!d)
        return vb_error_set(err, "cannot list %s:%s: %s", s->host, remote, sftp_why(s));
    int rc = 0;
    sftp_attributes a;
    while (rc == 0 && (a = sftp_readdir(s->sftp, d)) != NULL) {
        const char *name = a->name;
        if (name && strcmp(name, ".") != 0 && strcmp(name, "..") != 0 &&
            a->type != SSH_FILEXFER_TYPE_DIRECTORY) {
            size_t n = strlen(remote) + strlen(name) + 2;
            char *path = malloc(n);
            if (!path) {
                rc = vb_error_errno(err, "out of memory");
            } else {
                snprintf(path, n, "%s/%s", remote, name);
                if (sftp_unlink(s->sftp, path) < 0)
                    rc = vb_error_set(err, "cannot remove %s:%s: %s", s->host, path, sftp_why(s));
                free(path);
            }
        }
        sftp_attributes_free(a);
    }
    if (rc == 0 && !sftp_dir_eof(d))
        rc = vb_error_set(err, "cannot list %s:%s: %s", s->host, remote, sftp_why(s));
    sftp_closedir(d);
    if (rc == 0 && sftp_rmdir(s->sftp, remote) < 0)
        rc = vb_error_set(
            err, "cannot remove directory %s:%s: %s%s", s->host, remote, sftp_why(s),
            sftp_get_error(s->sftp) == SSH_FX_FAILURE ? " (does it hold a subdirectory?)" : "");
    return rc;
}
