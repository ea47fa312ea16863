/* Which disks take part, their files and metadata, and the workers that copy them. */
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "run_internal.h"

struct worker_ctx {
    struct backup_run *r;
    size_t next;
    pthread_mutex_t lock;
};

static bool list_contains(const char *list, const char *item)
{
    if (!list)
        return false;
    size_t n = strlen(item);
    for (const char *p = list; *p;) {
        const char *comma = strchr(p, ',');
        size_t len = comma ? (size_t)(comma - p) : strlen(p);
        if (len == n && strncmp(p, item, n) == 0)
            return true;
        p += len + (comma ? 1 : 0);
    }
    return false;
}

/* Which disks take part, and how (virtbackup(1): --include, --exclude, --raw, --type): cdrom,
 * floppy and network disks never; raw ones only with --raw, and never in an inc or diff. */
int select_disks(struct backup_run *r, struct vb_error *err)
{
    r->jobs = calloc(r->info.ndisks ? r->info.ndisks : 1, sizeof *r->jobs);
    if (!r->jobs)
        return vb_error_set(err, "out of memory");
    for (size_t i = 0; i < r->info.ndisks; i++) {
        const struct vb_disk *d = &r->info.disks[i];
        if (r->o->include && strcmp(r->o->include, d->target) != 0)
            continue;
        if (list_contains(r->o->exclude, d->target)) {
            vb_info("%s: excluded", d->target);
            continue;
        }
        if (strcmp(d->device, "cdrom") == 0 || strcmp(d->device, "floppy") == 0) {
            vb_info("%s: %s device, skipped", d->target, d->device);
            continue;
        }
        if (d->kind == VB_DISK_NETWORK || d->kind == VB_DISK_OTHER) {
            vb_info("%s: network disks cannot be backed up, skipped", d->target);
            continue;
        }
        bool raw = !d->format || strcmp(d->format, "raw") == 0 || strcmp(d->device, "lun") == 0;
        if (raw && !r->o->raw) {
            vb_info("%s: raw disk, skipped (use --raw to include it as a full copy)", d->target);
            continue;
        }
        /* a repository's snapshots are complete: its raw disks are read in full */
        if (raw && !r->repo && (r->level == LEVEL_INC || r->level == LEVEL_DIFF)) {
            vb_warn("%s: raw disks have no checkpoints, not part of an incremental backup",
                    d->target);
            continue;
        }
        struct disk_job *j = &r->jobs[r->njobs++];
        j->disk = d;
        j->raw_output = raw || r->o->type_raw;
    }
    if (r->njobs == 0)
        return vb_error_set(err, "domain %s: no disk to back up", r->info.name);
    return 0;
}

bool has_qcow_disk(const struct backup_run *r)
{
    for (size_t i = 0; i < r->njobs; i++)
        if (!r->jobs[i].raw_output)
            return true;
    return false;
}

void prepare_jobs(struct backup_run *r)
{
    bool inc = (r->level == LEVEL_INC || r->level == LEVEL_DIFF) && !r->new_base;
    for (size_t i = 0; i < r->njobs; i++) {
        struct disk_job *j = &r->jobs[i];
        const char *t = j->disk->target;
        /* again after a lost bitmap turned the run into a new base (start_job) */
        free(j->file);
        free(j->socket);
        free(j->export_name);
        free((char *)j->bitmap);
        j->bitmap = NULL;
        char name[1024];
        if (j->raw_output || r->level == LEVEL_COPY)
            snprintf(name, sizeof name, "%s.copy.data", t);
        else if (r->level == LEVEL_FULL)
            snprintf(name, sizeof name, "%s.full.data", t);
        else if (r->level == LEVEL_DIFF)
            snprintf(name, sizeof name, "%s.diff.%s.data", t, r->ident);
        else
            snprintf(name, sizeof name, "%s.inc.%s.data", t, r->checkpoint);
        /* a repository's disks have no file of their own: they are its chunks and an index */
        if ((r->repo ? asprintf(&j->file, "%s", r->o->output)
                     : asprintf(&j->file, "%s/%s", r->o->output, name)) < 0)
            j->file = NULL; /* reported by the copy as a missing file name */
        struct vb_nbd_target where;
        vb_host_nbd_listen(&r->host, r->socket, 0, &where);
        j->socket = where.socket ? strdup(where.socket) : NULL;
        j->nbd_host = where.host;
        j->nbd_port = where.port;
        j->tls_dir = where.tls_dir;
        j->zip = r->zip;
        j->repo = r->repo;
        j->export_name = strdup(t);
        /* a repository inc's disk without a base is read in full (repo_base.c) */
        j->incremental = inc && (!r->repo || j->base);
        if (j->incremental && asprintf((char **)&j->bitmap, "qemu:dirty-bitmap:backup-%s", t) < 0)
            j->bitmap = NULL;
        stream_meta_init(&j->meta);
        snprintf(j->meta.disk_name, sizeof j->meta.disk_name, "%s", t);
        snprintf(j->meta.disk_format, sizeof j->meta.disk_format, "%s",
                 j->disk->format ? j->disk->format : "raw");
        snprintf(j->meta.checkpoint_name, sizeof j->meta.checkpoint_name, "%s", r->checkpoint);
        snprintf(j->meta.parent_checkpoint, sizeof j->meta.parent_checkpoint, "%s",
                 j->incremental ? r->parent : "");
        j->meta.incremental = j->incremental;
        j->meta.compressed = r->o->compress;
    }
}

static void *disk_worker(void *arg)
{
    struct worker_ctx *w = arg;
    for (;;) {
        pthread_mutex_lock(&w->lock);
        size_t i = w->next++;
        pthread_mutex_unlock(&w->lock);
        if (i >= w->r->njobs)
            break;
        struct disk_job *j = &w->r->jobs[i];
        if (backup_interrupted) {
            j->status = vb_error_set(&j->err, "%s: interrupted", j->disk->target);
            continue;
        }
        j->status = disk_copy_run(j, w->r->o, &backup_interrupted, &j->err);
        if (j->status == 0)
            vb_info("%s: saved %s (%" PRIu64 " bytes, %.1f s)", j->disk->target, j->file,
                    j->bytes_written, j->seconds);
        else
            vb_error_log("%s", j->err.msg);
    }
    return NULL;
}

int copy_disks(struct backup_run *r)
{
    int n = r->o->workers > 0 ? r->o->workers : (int)r->njobs;
    if (n > (int)r->njobs)
        n = (int)r->njobs;
    struct worker_ctx w = {.r = r};
    pthread_mutex_init(&w.lock, NULL);
    pthread_t *t = calloc((size_t)n, sizeof *t);
    int started = 0;
    for (int i = 0; t && i < n; i++)
        if (pthread_create(&t[i], NULL, disk_worker, &w) == 0)
            started++;
    if (started == 0)
        disk_worker(&w);
    for (int i = 0; i < started; i++)
        pthread_join(t[i], NULL);
    free(t);
    pthread_mutex_destroy(&w.lock);
    int failed = 0;
    for (size_t i = 0; i < r->njobs; i++)
        failed += r->jobs[i].status != 0;
    return failed ? -1 : 0;
}
