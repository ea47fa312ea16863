/* qemu-nbd on a remote host, over the host's SSH session: qemu-nbd --fork with a pid file in
 * a private directory there, serving TCP at the host's NBD address and port (TLS with
 * --tls); stopped with SIGTERM (SIGKILL after a grace period), the directory removed. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "host.h"
#include "log.h"
#include "qemu_nbd_internal.h"

static void free_srv(struct qemu_nbd *srv)
{
    vb_host_rmdir(srv->host, srv->dir);
    free(srv->dir);
    free(srv->pidfile);
    free(srv->desc);
    free(srv);
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

struct qemu_nbd *qemu_nbd_start_ssh(struct vb_host *h, const struct qemu_nbd_opts *o,
                                    struct vb_error *err)
{
    struct qemu_nbd *srv = calloc(1, sizeof *srv);
    if (!srv) {
        vb_error_set(err, "out of memory");
        return NULL;
    }
    srv->stop = stop_remote;
    srv->errfd = -1;
    srv->host = h;
    vb_host_nbd_listen(h, NULL, o->port_offset, &srv->target);
    const char *bind = srv->target.host, *tls_dir = srv->target.tls_dir;
    int port = srv->target.port;
    srv->pid = -1;
    srv->exited = true; /* not our child */
    if (asprintf(&srv->desc, "%s:%d", bind ? bind : h->name, port) < 0)
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
    struct qemu_nbd_remote_args ra = {.pidfile = srv->pidfile, .bind = bind};
    snprintf(ra.port, sizeof ra.port, "%d", port);
    if (tls_dir) {
        /* verify-peer=on: a client must present a certificate signed by the directory's CA
         * (ours comes from the same --tls-cert directory); the port is reachable from the
         * network, and the export is the disk (read) or the image being restored (written). */
        char *esc = qemu_opt_escape(tls_dir);
        if (!esc ||
            asprintf(&ra.tls_object, "tls-creds-x509,id=tls0,endpoint=server,dir=%s,verify-peer=on",
                     esc) < 0)
            ra.tls_object = NULL;
        free(esc);
    }
    char *argv[40], *imageopts = NULL;
    char shared[16];
    int rc = (tls_dir && !ra.tls_object) ? vb_error_set(err, "out of memory")
                                         : qemu_nbd_build_argv(o, NULL, &ra, argv, 40, &imageopts,
                                                               shared, sizeof shared, err);
    if (rc == 0) {
        vb_debug("starting qemu-nbd for %s on %s, port %d", o->image, h->name, port);
        rc = vb_host_run(h, argv, NULL, NULL, err);
        if (rc < 0 && strstr(err->msg, "in use"))
            vb_error_prefix(err,
                            "port %d on %s is taken (another backup? choose a free one with "
                            "-P/--nbd-port)",
                            port, h->name);
        else if (rc < 0)
            vb_error_prefix(err, "qemu-nbd for %s on %s, port %d", o->image, h->name, port);
    }
    free(imageopts);
    free(ra.tls_object);
    if (rc < 0) {
        free_srv(srv);
        return NULL;
    }
    return srv;
}
