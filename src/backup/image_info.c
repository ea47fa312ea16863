/* qemu-img info of the saved images, fetched while the disks are copied (image_info.h). */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "image_info.h"
#include "log.h"

struct image {
    char *target, *path; /* NULL path: no information wanted */
    char *json;
    size_t len;
    int rc;
    struct vb_error err;
};

struct image_info {
    pthread_mutex_t lock;
    pthread_cond_t cond;
    int refs;      /* the caller's and the thread's */
    bool threaded; /* a thread fills the images */
    bool done;
    bool no_session;              /* the thread could not open its own SSH session */
    struct vb_remote_opts remote; /* strings owned */
    size_t n;
    struct image *v;
};

bool image_info_wanted(const struct vb_disk *d)
{
    return d->format && strncmp(d->format, "qcow", 4) == 0 && d->path;
}

static char *dup_or_null(const char *s)
{
    return s ? strdup(s) : NULL;
}

static void free_all(struct image_info *ii)
{
    for (size_t i = 0; i < ii->n; i++) {
        free(ii->v[i].target);
        free(ii->v[i].path);
        free(ii->v[i].json);
    }
    free(ii->v);
    free((char *)ii->remote.uri);
    free((char *)ii->remote.ssh_user);
    free((char *)ii->remote.ssh_key);
    free((char *)ii->remote.nbd_ip);
    free((char *)ii->remote.tls_cert);
    free((char *)ii->remote.tmpdir);
    pthread_mutex_destroy(&ii->lock);
    pthread_cond_destroy(&ii->cond);
    free(ii);
}

static void unref(struct image_info *ii)
{
    pthread_mutex_lock(&ii->lock);
    bool last = --ii->refs == 0;
    pthread_mutex_unlock(&ii->lock);
    if (last)
        free_all(ii);
}

static void run_one(struct vb_host *host, struct image *im)
{
    char *argv[] = {"qemu-img", "info", "--output", "json", "--force-share", im->path, NULL};
    im->rc = vb_host_run(host, argv, &im->json, &im->len, &im->err);
    if (im->rc < 0)
        vb_error_prefix(&im->err, "%s: image information", im->target);
}

static void *fetch_thread(void *arg)
{
    struct image_info *ii = arg;
    struct vb_host host = {0};
    struct vb_error err = {0};
    /* its own host session: a second SSH session for a remote host */
    bool have_host = vb_host_open(&ii->remote, &host, &err) == 0;
    if (!have_host)
        vb_debug("image information: no second SSH session (%s); it is read after the copy",
                 err.msg);
    for (size_t i = 0; have_host && i < ii->n; i++)
        if (ii->v[i].path)
            run_one(&host, &ii->v[i]);
    vb_host_close(&host); /* also after a failed open (host.h) */
    pthread_mutex_lock(&ii->lock);
    ii->no_session = !have_host;
    ii->done = true;
    pthread_cond_broadcast(&ii->cond);
    pthread_mutex_unlock(&ii->lock);
    unref(ii);
    return NULL;
}

struct image_info *image_info_start(const struct vb_remote_opts *remote,
                                    const struct vb_disk *const *disks, size_t n)
{
    struct image_info *ii = calloc(1, sizeof *ii);
    if (!ii)
        return NULL;
    pthread_mutex_init(&ii->lock, NULL);
    pthread_cond_init(&ii->cond, NULL);
    ii->refs = 1;
    ii->remote = *remote;
    ii->remote.uri = dup_or_null(remote->uri);
    ii->remote.ssh_user = dup_or_null(remote->ssh_user);
    ii->remote.ssh_key = dup_or_null(remote->ssh_key);
    ii->remote.nbd_ip = dup_or_null(remote->nbd_ip);
    ii->remote.tls_cert = dup_or_null(remote->tls_cert);
    ii->remote.tmpdir = dup_or_null(remote->tmpdir);
    ii->v = calloc(n ? n : 1, sizeof *ii->v);
    ii->n = ii->v ? n : 0;
    bool complete = ii->v != NULL;
    for (size_t i = 0; i < ii->n; i++) {
        bool want = image_info_wanted(disks[i]);
        ii->v[i].target = strdup(disks[i]->target);
        ii->v[i].path = want ? strdup(disks[i]->path) : NULL;
        complete = complete && ii->v[i].target && (!want || ii->v[i].path);
    }
    if (!complete || (remote->uri && !ii->remote.uri)) {
        free_all(ii);
        return NULL;
    }
    ii->refs = 2;
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    pthread_t t;
    ii->threaded = pthread_create(&t, &attr, fetch_thread, ii) == 0;
    pthread_attr_destroy(&attr);
    if (!ii->threaded)
        ii->refs = 1;
    return ii;
}

int image_info_get(struct image_info *ii, size_t i, struct vb_host *host, const char **json,
                   size_t *len, struct vb_error *err)
{
    if (!ii || i >= ii->n)
        return vb_error_set(err, "internal error: image information of disk %zu not started", i);
    struct image *im = &ii->v[i];
    if (!im->path)
        return vb_error_set(err, "%s: internal error: no image information wanted", im->target);
    pthread_mutex_lock(&ii->lock);
    while (ii->threaded && !ii->done)
        pthread_cond_wait(&ii->cond, &ii->lock);
    bool run_here = !ii->threaded || ii->no_session;
    pthread_mutex_unlock(&ii->lock);
    if (run_here && !im->json && im->rc == 0)
        run_one(host, im);
    if (im->rc < 0) {
        *err = im->err;
        return -1;
    }
    *json = im->json;
    *len = im->len;
    return 0;
}

void image_info_release(struct image_info *ii)
{
    if (!ii)
        return;
    /* A failed run ends soon after: give the thread a moment to end first, so that the
     * process's exit does not tear libssh down under it. Not longer: a command hanging on
     * the host must not hold up the exit. */
    struct timespec until;
    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_sec += 5;
    int rc = 0;
    pthread_mutex_lock(&ii->lock);
    while (ii->threaded && !ii->done && rc != ETIMEDOUT)
        rc = pthread_cond_timedwait(&ii->cond, &ii->lock, &until);
    pthread_mutex_unlock(&ii->lock);
    unref(ii);
}
