/* How the disks are read: a libvirt pull job on a running domain (started paused if it was
 * shut off), or our own read-only qemu-nbd on the images of a shut-off domain. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "debug_stall.h"
#include "job.h"
#include "log.h"
#include "run_internal.h"

/* A shut-off domain (cli.md "Shut-off domains"): copy reads the images offline; levels that
 * need a checkpoint start the domain paused and auto-destroyed; if that is not possible (or
 * not wanted), inc/diff read the images offline through the last checkpoint's persistent
 * bitmap and are recorded as a diff, and full becomes copy only with --no-start-domain. */
int choose_mode(struct run *r, struct vb_error *err)
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
    /* inc/diff offline: changes since the last checkpoint, recorded as a diff */
    if (r->level == LEVEL_INC)
        vb_warn("offline backups create no checkpoint: recording the changes as a diff");
    r->level = LEVEL_DIFF;
    r->offline = true;
    return 0;
}

int start_servers(struct run *r, struct vb_error *err)
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

void stop_servers(struct run *r)
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

/* The domain's qemu user and group, from the DAC label of the running domain (its XML was
 * read before we may have started it). */
static void qemu_owner(struct run *r, int *uid, int *gid)
{
    *uid = r->info.qemu_uid;
    *gid = r->info.qemu_gid;
    if (*uid >= 0)
        return;
    char *xml = virDomainGetXMLDesc(r->dom, 0);
    struct vb_domain_info live;
    struct vb_error e = {0};
    if (xml && vb_domain_info_parse(xml, NULL, &live, &e) == 0) {
        *uid = live.qemu_uid;
        *gid = live.qemu_gid;
        vb_domain_info_free(&live);
    }
    free(xml);
    if (*uid < 0)
        vb_warn("domain %s: no DAC label, the job directory stays root-only", r->info.name);
}

/* job_begin with the domain paused (--pause) and its file systems frozen around it. */
static int begin_quiesced(struct run *r, const struct job_spec *spec, struct vb_error *err)
{
    bool paused = false;
    if (r->o->pause) {
        if (virDomainSuspend(r->dom) < 0)
            vb_warn("cannot pause the domain: %s", vb_virt_last_error());
        else
            paused = true;
    }
    struct quiesce q;
    quiesce_freeze(r, &q);
    int rc = job_begin(r->dom, spec, err);
    /* for tests: the job has started and the guest is frozen, or a thaw is due after a freeze
     * the agent did not answer in time */
    if (rc == 0 && (q.frozen || q.unanswered))
        VB_DEBUG_STALL(&backup_interrupted);
    quiesce_thaw(r, &q);
    if (paused && virDomainResume(r->dom) < 0)
        vb_warn("cannot resume the domain: %s", vb_virt_last_error());
    return rc;
}

int start_job(struct run *r, struct vb_error *err)
{
    int uid, gid;
    qemu_owner(r, &uid, &gid);
    /* the directory only root and the domain's qemu user can enter, for the NBD socket and
     * the scratch files (qemu creates both) */
    r->jobdir = vb_host_mkdtemp(&r->host, r->o->scratchdir, "virtbackup", uid, gid, err);
    if (!r->jobdir)
        return vb_error_prefix(err, "job directory");
    char *socket = NULL;
    if (r->o->socketfile)
        socket = strdup(r->o->socketfile);
    else if (asprintf(&socket, "%s/nbd.sock", r->jobdir) < 0)
        socket = NULL;
    struct vb_nbd_target listen;
    vb_host_nbd_listen(&r->host, socket, 0, &listen);
    if (listen.socket)
        r->socket = socket;
    else
        free(socket); /* TCP: the host's NBD address and port */
    prepare_jobs(r);

    struct disk_job **jp = calloc(r->njobs, sizeof *jp);
    const char **bitmaps = calloc(r->njobs, sizeof *bitmaps);
    size_t nb = 0;
    for (size_t i = 0; i < r->njobs; i++) {
        jp[i] = &r->jobs[i];
        if (!r->jobs[i].raw_output)
            bitmaps[nb++] = r->jobs[i].disk->target;
    }
    bool make_checkpoint = r->level == LEVEL_FULL || r->level == LEVEL_INC;
    struct job_spec spec = {
        .socket = r->socket,
        .tcp_host = listen.host,
        .tcp_port = listen.port,
        .tls = listen.tls_dir != NULL,
        .dir = r->jobdir,
        .disks = jp,
        .ndisks = r->njobs,
        .info = &r->info,
        .incremental =
            (r->level == LEVEL_INC || r->level == LEVEL_DIFF) && !r->new_base ? r->parent : NULL,
        .checkpoint = make_checkpoint ? r->checkpoint : NULL,
        .bitmap_disks = bitmaps,
        .nbitmap_disks = nb,
    };
    int rc = begin_quiesced(r, &spec, err);
    if (rc == JOB_BEGIN_INCONSISTENT && spec.incremental) {
        /* libvirt found the parent's bitmap missing or broken (prepare_checkpoints leaves
         * that check to the job's start); nothing was started, so begin again as a full */
        char why[sizeof err->msg];
        snprintf(why, sizeof why, "%s", err->msg);
        rc = fall_back_to_new_base(r, why, err);
        if (rc == 0) {
            prepare_jobs(r);
            spec.incremental = NULL;
            rc = begin_quiesced(r, &spec, err);
        }
    }
    free(jp);
    free(bitmaps);
    if (rc < 0)
        return -1;
    r->job_running = true;
    r->checkpoint_created = make_checkpoint;
    vb_info("backup job started: level %s%s, checkpoint %s%s%s", backup_level_name(r->level),
            r->new_base ? " (new base)" : "", make_checkpoint ? r->checkpoint : "(none)",
            spec.incremental ? ", changes since " : "", spec.incremental ? spec.incremental : "");
    return 0;
}
