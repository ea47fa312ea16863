/* A shut-off domain: started paused for the backup, or its images read offline through our
 * own read-only qemu-nbd on the domain's host. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "run_internal.h"

/* A shut-off domain (virtbackup(1)): copy reads the images offline; levels that
 * need a checkpoint start the domain paused and auto-destroyed; if that is not possible (or
 * not wanted), inc/diff read the images offline through the last checkpoint's persistent
 * bitmap and are recorded as a diff, and full becomes copy only with --no-start-domain. */
int choose_mode(struct backup_run *r, struct vb_error *err)
{
    int state, reason;
    if (virDomainGetState(r->dom, &state, &reason, 0) < 0)
        return vb_virt_error(err, "domain %s: state", r->info.name);
    if (state == VIR_DOMAIN_RUNNING || state == VIR_DOMAIN_PAUSED || state == VIR_DOMAIN_BLOCKED)
        return 0;
    if (r->level == LEVEL_COPY) {
        vb_info("domain %s is not running: reading its images offline", r->info.name);
        r->offline = true;
        return 0;
    }
    if (!r->o->no_start_domain) {
        vb_info("domain %s is shut off: starting it paused for the backup", r->info.name);
        if (virDomainCreateWithFlags(r->dom,
                                     VIR_DOMAIN_START_PAUSED | VIR_DOMAIN_START_AUTODESTROY) == 0) {
            r->started_domain = true;
            return 0;
        }
        if (r->level == LEVEL_FULL)
            return vb_virt_error(err, "cannot start domain %s paused for a full backup",
                                 r->info.name);
        vb_warn("cannot start domain %s paused (%s): reading its images offline", r->info.name,
                vb_virt_last_error());
    } else if (r->level == LEVEL_FULL) {
        vb_warn("domain %s is not running and --no-start-domain was given: taking a copy "
                "backup instead of a full one",
                r->info.name);
        r->level = LEVEL_COPY;
        r->offline = true;
        return 0;
    }
    /* inc/diff offline: changes since the last checkpoint, recorded as a diff; into a
     * repository an inc whose snapshot records the base's checkpoint, kept (virtbackup(1),
     * REPOSITORY OUTPUT) */
    if (r->level == LEVEL_INC && r->repo)
        vb_info("domain %s is shut off: reading the changes since the base's checkpoint "
                "offline, through its persistent bitmap (the checkpoint is kept)",
                r->info.name);
    else if (r->level == LEVEL_INC)
        vb_warn("offline backups create no checkpoint: recording the changes as a diff");
    r->level = LEVEL_DIFF;
    r->offline = true;
    return 0;
}

int start_servers(struct backup_run *r, struct vb_error *err)
{
    r->servers = calloc(r->njobs, sizeof *r->servers);
    if (!r->servers)
        return vb_error_set(err, "out of memory");
    prepare_jobs(r);
    for (size_t i = 0; i < r->njobs; i++) {
        struct disk_job *j = &r->jobs[i];
        if (!j->disk->path)
            return vb_error_set(err, "%s: the disk has no image path to read offline",
                                j->disk->target);
        struct qemu_nbd_opts qo = {
            .image = j->disk->path,
            .format = j->disk->format ? j->disk->format : "raw",
            .export_name = j->disk->target,
            .connections = 4,
            .read_only = true,
            .bitmap = j->bitmap ? r->parent : NULL,
            .port_offset = (int)i, /* as the reference: one server per disk */
        };
        r->servers[i] = qemu_nbd_start(&r->host, &qo, err);
        if (!r->servers[i])
            return vb_error_prefix(err, "%s: cannot serve %s offline", j->disk->target,
                                   j->disk->path);
        const struct vb_nbd_target *t = qemu_nbd_target(r->servers[i]);
        free(j->socket);
        j->socket = t->socket ? strdup(t->socket) : NULL;
        j->nbd_host = t->host;
        j->nbd_port = t->port;
        j->tls_dir = t->tls_dir;
        if (j->bitmap) {
            free((char *)j->bitmap);
            if (asprintf((char **)&j->bitmap, "qemu:dirty-bitmap:%s", r->parent) < 0)
                j->bitmap = NULL;
        }
    }
    return 0;
}

void stop_servers(struct backup_run *r)
{
    if (!r->servers)
        return;
    for (size_t i = 0; i < r->njobs; i++) {
        struct vb_error e = {0};
        if (r->servers[i] && qemu_nbd_stop(r->servers[i], &e) < 0)
            vb_warn("%s", e.msg);
    }
    free(r->servers);
    r->servers = NULL;
}
