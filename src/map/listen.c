#include "listen.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#define BACKLOG 64

int listen_unix(struct listeners *l, const char *path, struct vb_error *err)
{
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    if (strlen(path) >= sizeof sa.sun_path)
        return vb_error_set(err, "%s: socket path too long (max %zu bytes)", path,
                            sizeof sa.sun_path - 1);
    strcpy(sa.sun_path, path);
    struct stat st;
    /* a socket left by a crashed run is replaced; any other file is not ours to remove */
    if (lstat(path, &st) == 0) {
        if (!S_ISSOCK(st.st_mode))
            return vb_error_set(err, "%s: exists and is not a socket", path);
        int probe = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (probe >= 0 && connect(probe, (struct sockaddr *)&sa, sizeof sa) == 0) {
            close(probe);
            return vb_error_set(err, "%s: another server is listening on this socket", path);
        }
        if (probe >= 0)
            close(probe);
        unlink(path);
    }
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return vb_error_errno(err, "socket");
    /* connecting needs write permission on the socket: only our user (and root) may; the
     * umask makes it so from the start (no other thread creates files at this point) */
    mode_t old = umask(0177);
    int b = bind(fd, (struct sockaddr *)&sa, sizeof sa);
    umask(old);
    if (b < 0 || listen(fd, BACKLOG) < 0) {
        int rc = vb_error_errno(err, "%s: cannot listen", path);
        close(fd);
        return rc;
    }
    l->fds[l->n++] = fd;
    l->socket_path = strdup(path);
    l->is_unix = true;
    return l->socket_path ? 0 : vb_error_set(err, "out of memory");
}

int listen_private(struct listeners *l, const char *dir_template, struct vb_error *err)
{
    char *dir = strdup(dir_template), *slash = dir ? strrchr(dir, '/') : NULL;
    if (!dir)
        return vb_error_set(err, "out of memory");
    if (slash && slash != dir) {
        *slash = '\0';
        struct stat st;
        if (mkdir(dir, 0700) < 0 && errno != EEXIST) {
            int rc = vb_error_errno(err, "%s: cannot create the directory for the socket", dir);
            free(dir);
            return rc;
        }
        if (lstat(dir, &st) < 0 || !S_ISDIR(st.st_mode)) {
            int rc = vb_error_set(err, "%s: not a directory", dir);
            free(dir);
            return rc;
        }
        *slash = '/';
    }
    if (!mkdtemp(dir)) {
        int rc = vb_error_errno(err,
                                "%s: cannot create a private directory for the socket "
                                "(or use --socket PATH)",
                                dir_template);
        free(dir);
        return rc;
    }
    char *path = NULL;
    if (asprintf(&path, "%s/nbd.sock", dir) < 0) {
        rmdir(dir);
        free(dir);
        return vb_error_set(err, "out of memory");
    }
    int rc = listen_unix(l, path, err);
    free(path);
    if (rc < 0) {
        rmdir(dir);
        free(dir);
        return rc;
    }
    l->socket_dir = dir;
    return 0;
}

static bool is_loopback(const struct sockaddr *sa)
{
    if (sa->sa_family == AF_INET)
        return (ntohl(((const struct sockaddr_in *)sa)->sin_addr.s_addr) >> 24) == 127;
    if (sa->sa_family == AF_INET6) {
        const struct in6_addr *a = &((const struct sockaddr_in6 *)sa)->sin6_addr;
        return IN6_IS_ADDR_LOOPBACK(a) || (IN6_IS_ADDR_V4MAPPED(a) && a->s6_addr[12] == 127);
    }
    return false;
}

int listen_tcp(struct listeners *l, const char *address, const char *port, bool allow_remote,
               struct vb_error *err)
{
    struct addrinfo hints = {.ai_family = AF_UNSPEC,
                             .ai_socktype = SOCK_STREAM,
                             .ai_flags = AI_PASSIVE | AI_NUMERICSERV};
    struct addrinfo *res = NULL;
    int e = getaddrinfo(address, port, &hints, &res);
    if (e != 0)
        return vb_error_set(err, "listen address %s port %s: %s", address, port, gai_strerror(e));
    int rc = 0;
    for (struct addrinfo *ai = res; ai; ai = ai->ai_next)
        if (!is_loopback(ai->ai_addr) && !allow_remote) {
            rc = vb_error_set(err,
                              "listen address %s is not a loopback address: anyone who can "
                              "reach it could read the backup; pass --allow-remote (with "
                              "--tls-creds or --tls-psk) if that is intended",
                              address);
            break;
        }
    for (struct addrinfo *ai = res; rc == 0 && ai && l->n < LISTEN_MAX; ai = ai->ai_next) {
        int fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC, ai->ai_protocol);
        if (fd < 0) {
            rc = vb_error_errno(err, "socket");
            break;
        }
        int one = 1;
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
        if (ai->ai_family == AF_INET6)
            setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof one);
        if (bind(fd, ai->ai_addr, ai->ai_addrlen) < 0 || listen(fd, BACKLOG) < 0) {
            rc = vb_error_errno(err, "cannot listen on %s port %s", address, port);
            close(fd);
            break;
        }
        struct sockaddr_storage ss;
        socklen_t sl = sizeof ss;
        if (l->port == 0 && getsockname(fd, (struct sockaddr *)&ss, &sl) == 0)
            l->port = ntohs(ss.ss_family == AF_INET ? ((struct sockaddr_in *)&ss)->sin_port
                                                    : ((struct sockaddr_in6 *)&ss)->sin6_port);
        l->fds[l->n++] = fd;
    }
    freeaddrinfo(res);
    if (rc == 0) {
        /* IPv6 literals go in brackets in URIs */
        bool v6 = strchr(address, ':') != NULL;
        snprintf(l->host, sizeof l->host, "%s%s%s", v6 ? "[" : "", address, v6 ? "]" : "");
    }
    return rc;
}

void listeners_close(struct listeners *l)
{
    for (size_t i = 0; i < l->n; i++)
        close(l->fds[i]);
    l->n = 0;
    if (l->socket_path) {
        unlink(l->socket_path);
        free(l->socket_path);
        l->socket_path = NULL;
    }
    if (l->socket_dir) {
        rmdir(l->socket_dir);
        free(l->socket_dir);
        l->socket_dir = NULL;
    }
}

char *listen_uri(const struct listeners *l, const char *export_name)
{
    char *uri = NULL;
    const char *s = l->tls ? "s" : "";
    int r = l->is_unix
                ? asprintf(&uri, "nbd%s+unix:///%s?socket=%s", s, export_name, l->socket_path)
                : asprintf(&uri, "nbd%s://%s:%d/%s", s, l->host, l->port, export_name);
    return r < 0 ? NULL : uri;
}
