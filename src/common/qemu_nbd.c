/* qemu-nbd on a host (host.h): the command line, the start with its io_uring fallback, and
 * the calls every server answers whichever host runs it. */
#include "qemu_nbd.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "host.h"
#include "log.h"
#include "qemu_nbd_internal.h"

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

int qemu_nbd_build_argv(const struct qemu_nbd_opts *o, const char *sock,
                        const struct qemu_nbd_remote_args *ra, char **argv, size_t max,
                        char **imageopts, char *shared, size_t sharedlen, struct vb_error *err)
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
        argv[n++] = (char *)ra->port;
        if (ra->bind) {
            argv[n++] = "-b";
            argv[n++] = (char *)ra->bind;
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

/* A qemu-nbd built without io_uring, or on a kernel or under a seccomp policy that refuses
 * it, exits at once saying so ("Unable to use io_uring", "... is not supported in this
 * build"): then it gets its thread pool. Any other failure is the caller's. */
static bool io_uring_refused(const struct qemu_nbd_opts *o, const struct vb_error *err)
{
    return o->io_uring && strstr(err->msg, "io_uring");
}

struct qemu_nbd *qemu_nbd_start(struct vb_host *h, const struct qemu_nbd_opts *o,
                                struct vb_error *err)
{
    struct qemu_nbd *srv = vb_host_ops(h)->qemu_nbd_start(h, o, err);
    if (srv || !io_uring_refused(o, err))
        return srv;
    vb_debug("%s; qemu-nbd started again without io_uring", err->msg);
    struct qemu_nbd_opts without = *o;
    without.io_uring = false;
    return vb_host_ops(h)->qemu_nbd_start(h, &without, err);
}

const struct vb_nbd_target *qemu_nbd_target(const struct qemu_nbd *srv)
{
    return &srv->target;
}

int qemu_nbd_stop(struct qemu_nbd *srv, struct vb_error *err)
{
    return srv ? srv->stop(srv, err) : 0;
}
