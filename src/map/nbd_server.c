#include "nbd_server.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "log.h"
#include "nbd_conn.h"
#include "nbd_proto.h"
#include "nbd_tls.h"

struct conn_slot {
    struct nbd_conn conn;
    pthread_t thread;
    atomic_bool finished;
    struct conn_slot *next;
};

struct nbd_server {
    struct map_export **exports;
    size_t nexports;
    struct nbd_server_config cfg;
    pthread_mutex_t lock;
    struct conn_slot *conns;
    size_t clients; /* network connections whose thread has not ended (under lock) */
};

uint16_t nbd_export_flags(const struct map_export *ex)
{
    /* multi-conn is safe in both modes: read-only needs nothing, and writes of every
     * connection go through the one overlay, under one lock, and any flush syncs it */
    uint16_t f = NBD_FLAG_HAS_FLAGS | NBD_FLAG_SEND_FLUSH | NBD_FLAG_CAN_MULTI_CONN |
                 NBD_FLAG_SEND_CACHE | NBD_FLAG_SEND_DF;
    if (export_readonly(ex))
        f |= NBD_FLAG_READ_ONLY;
    else
        f |= NBD_FLAG_SEND_FUA | NBD_FLAG_SEND_TRIM | NBD_FLAG_SEND_WRITE_ZEROES |
             NBD_FLAG_SEND_FAST_ZERO; /* zeroing only updates the map: always fast */
    return f;
}

struct nbd_server *nbd_server_new(struct map_export **exports, size_t n,
                                  const struct nbd_server_config *cfg, struct vb_error *err)
{
    /* names travel in option replies whose strings the protocol limits to 4096 bytes */
    for (size_t i = 0; i < n; i++)
        if (strlen(export_name(exports[i])) > NBD_MAX_STRING) {
            vb_error_set(err, "export name of %zu bytes: NBD allows at most %d",
                         strlen(export_name(exports[i])), NBD_MAX_STRING);
            return NULL;
        }
    struct nbd_server *srv = calloc(1, sizeof *srv);
    if (!srv) {
        vb_error_set(err, "out of memory");
        return NULL;
    }
    srv->exports = exports;
    srv->nexports = n;
    srv->cfg = cfg ? *cfg
                   : (struct nbd_server_config){.max_connections = NBD_DEFAULT_MAX_CONNECTIONS,
                                                .handshake_timeout_ms = NBD_DEFAULT_HANDSHAKE_MS};
    pthread_mutex_init(&srv->lock, NULL);
    return srv;
}

const struct nbd_tls *nbd_server_tls(const struct nbd_server *srv)
{
    return srv->cfg.tls;
}

struct map_export *nbd_server_find(struct nbd_server *srv, const char *name)
{
    if (name[0] == '\0') /* the default export */
        return srv->nexports ? srv->exports[0] : NULL;
    for (size_t i = 0; i < srv->nexports; i++)
        if (strcmp(export_name(srv->exports[i]), name) == 0)
            return srv->exports[i];
    return NULL;
}

size_t nbd_server_count(const struct nbd_server *srv)
{
    return srv->nexports;
}

struct map_export *nbd_server_export(const struct nbd_server *srv, size_t i)
{
    return i < srv->nexports ? srv->exports[i] : NULL;
}

int nbd_conn_buffer(struct nbd_conn *c, size_t len)
{
    if (len <= c->cap)
        return 0;
    free(c->buf);
    c->buf = malloc(len);
    c->cap = c->buf ? len : 0;
    return c->buf ? 0 : -1;
}

void nbd_conn_trim(struct nbd_conn *c)
{
    if (c->cap > NBD_CONN_KEEP_BUFFER) {
        free(c->buf);
        c->buf = NULL;
        c->cap = 0;
    }
    /* the read scratch grows with the compressed frames a request touched */
    if (c->io.rb.ccap + c->io.rb.ucap + c->io.lz.cap > NBD_CONN_KEEP_BUFFER)
        export_io_free(&c->io);
}

static void *conn_main(void *arg)
{
    struct conn_slot *slot = arg;
    struct nbd_conn *c = &slot->conn;
    bool network = !c->ex;
    if (c->ex) { /* kernel client: already past the handshake */
        c->tflags = nbd_export_flags(c->ex);
        nbd_transmission(c);
    } else {
        /* one deadline for the whole handshake: a client dripping bytes cannot hold a
         * thread (and a connection slot) for longer */
        wire_set_deadline(&c->w, c->srv->cfg.handshake_timeout_ms);
        int rc = nbd_handshake(c);
        if (rc < 0 && wire_time_left(&c->w) == 0)
            vb_info("%s: handshake not finished within %u ms: disconnecting", c->peer,
                    c->srv->cfg.handshake_timeout_ms);
        if (rc == 0) {
            wire_set_deadline(&c->w, 0);
            c->tflags = nbd_export_flags(c->ex);
            vb_debug("%s: serving export %s%s%s", c->peer, export_name(c->ex),
                     c->structured ? ", structured replies" : "",
                     c->meta_alloc ? ", base:allocation" : "");
            nbd_transmission(c);
        }
    }
    vb_debug("%s: disconnected", c->peer);
    nbd_tls_end(&c->w);
    /* closing here (not at join) frees the client at once */
    shutdown(c->w.fd, SHUT_RDWR);
    /* and its memory: the slot itself is reaped later */
    free(c->buf);
    c->buf = NULL;
    c->cap = 0;
    export_io_free(&c->io);
    if (network) {
        pthread_mutex_lock(&c->srv->lock);
        c->srv->clients--;
        pthread_mutex_unlock(&c->srv->lock);
    }
    atomic_store(&slot->finished, true);
    return NULL;
}

static void slot_free(struct conn_slot *s)
{
    close(s->conn.w.fd);
    export_io_free(&s->conn.io);
    free(s->conn.buf);
    free(s);
}

int nbd_server_serve(struct nbd_server *srv, int fd, struct map_export *preset, const char *peer,
                     struct vb_error *err)
{
    struct conn_slot *s = calloc(1, sizeof *s);
    if (!s) {
        close(fd);
        return vb_error_set(err, "out of memory");
    }
    s->conn.srv = srv;
    s->conn.w.fd = fd;
    s->conn.ex = preset;
    snprintf(s->conn.peer, sizeof s->conn.peer, "%s", peer);
    pthread_mutex_lock(&srv->lock);
    /* the kernel's connections are ours, not clients': they never count */
    if (!preset && srv->cfg.max_connections && srv->clients >= srv->cfg.max_connections) {
        pthread_mutex_unlock(&srv->lock);
        vb_warn("%s: refused: the limit of %u connections is reached (--max-connections)", peer,
                srv->cfg.max_connections);
        close(fd);
        free(s);
        return 0;
    }
    int e = pthread_create(&s->thread, NULL, conn_main, s);
    if (e == 0) {
        s->next = srv->conns;
        srv->conns = s;
        if (!preset)
            srv->clients++;
    }
    pthread_mutex_unlock(&srv->lock);
    if (e != 0) {
        slot_free(s);
        errno = e;
        return vb_error_errno(err, "%s: cannot start a connection thread", peer);
    }
    return 0;
}

size_t nbd_server_reap(struct nbd_server *srv)
{
    size_t open = 0;
    pthread_mutex_lock(&srv->lock);
    for (struct conn_slot **pp = &srv->conns; *pp;) {
        struct conn_slot *s = *pp;
        if (atomic_load(&s->finished)) {
            pthread_join(s->thread, NULL);
            *pp = s->next;
            slot_free(s);
        } else {
            open++;
            pp = &s->next;
        }
    }
    pthread_mutex_unlock(&srv->lock);
    return open;
}

void nbd_server_free(struct nbd_server *srv)
{
    if (!srv)
        return;
    pthread_mutex_lock(&srv->lock);
    /* wakes threads blocked in recv: they see EOF and end */
    for (struct conn_slot *s = srv->conns; s; s = s->next)
        shutdown(s->conn.w.fd, SHUT_RDWR);
    struct conn_slot *list = srv->conns;
    srv->conns = NULL;
    pthread_mutex_unlock(&srv->lock);
    while (list) {
        struct conn_slot *next = list->next;
        pthread_join(list->thread, NULL);
        slot_free(list);
        list = next;
    }
    pthread_mutex_destroy(&srv->lock);
    free(srv);
}
