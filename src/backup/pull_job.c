/* The libvirt pull-mode backup job of a run: its job directory on the domain's host, where its
 * NBD server listens, and its start with the guest's file systems frozen (and the domain
 * paused with --pause) around it. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "backup_job.h"
#include "debug_stall.h"
#include "log.h"
#include "run_internal.h"

/* The domain's qemu user and group, from the DAC label of the running domain (its XML was
 * read before we may have started it). */
static void qemu_owner(struct backup_run *r, int *uid, int *gid)
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
static int begin_quiesced(struct backup_run *r, const struct job_spec *spec, struct vb_error *err)
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
        VB_DEBUG_STALL(r->o->debug_stall, &backup_interrupted);
    quiesce_thaw(r, &q);
    if (paused && virDomainResume(r->dom) < 0)
        vb_warn("cannot resume the domain: %s", vb_virt_last_error());
    return rc;
}

int start_job(struct backup_run *r, struct vb_error *err)
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
        if (r->repo)
            repo_base_drop(r, why);
        rc = r->repo ? 0 : fall_back_to_new_base(r, why, err);
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
