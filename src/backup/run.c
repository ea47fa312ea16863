/* One run of virtbackup: resolve the level, prepare checkpoints, start the pull job, copy the
 * disks in parallel, commit, and leave nothing behind on any path (virtbackup-stream(5), "The order
 * of a run"). */
#include "run.h"
#include "run_internal.h"

#include <dirent.h>
#include <errno.h>
#include <glob.h>
#include <inttypes.h>
#include <libvirt/virterror.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "backup_job.h"
#include "checkpoints.h"
#include "fileutil.h"
#include "keyfile.h"
#include "log.h"
#include "metadata.h"
#include "progress.h"
#include "qemu_nbd.h"
#include "repo.h"
#include "repo_session.h"
#include "summary.h"
#include "util.h"

volatile sig_atomic_t backup_interrupted;

static void on_signal(int sig)
{
    (void)sig;
    backup_interrupted = 1;
}

/* Removes *.partial files a crashed run left (we hold the locks, so nobody writes them). */
static void clean_partials(const char *dir)
{
    char pat[4200];
    snprintf(pat, sizeof pat, "%s/*.partial", dir);
    glob_t g;
    if (glob(pat, 0, NULL, &g) == 0) {
        for (size_t i = 0; i < g.gl_pathc; i++) {
            vb_warn("removing %s, left by an interrupted run", g.gl_pathv[i]);
            unlink(g.gl_pathv[i]);
        }
    }
    globfree(&g);
}

static int take_locks(struct backup_run *r, struct vb_error *err)
{
    char path[4200];
    snprintf(path, sizeof path, "%s/%s.lock", vb_lock_dir(r->o->lock_dir), r->info.uuid);
    char what[512];
    snprintf(what, sizeof what, "domain %s", r->info.name);
    if (vb_lock_acquire(&r->dom_lock, path, what, err) < 0)
        return -1;
    /* a repository takes writers of several VMs at once (virtbackup-repository(5)) */
    if (r->repo)
        return 0;
    struct stat st;
    if (stat(r->o->output, &st) < 0)
        return vb_error_errno(err, "%s", r->o->output);
    snprintf(path, sizeof path, "%s/dir-%llx-%llx.lock", vb_lock_dir(r->o->lock_dir),
             (unsigned long long)st.st_dev, (unsigned long long)st.st_ino);
    snprintf(what, sizeof what, "output directory %s", r->o->output);
    return vb_lock_acquire(&r->dir_lock, path, what, err);
}

static void open_log_file(struct backup_run *r)
{
    char stamp[64], path[4300];
    time_t now = time(NULL);
    struct tm tm;
    localtime_r(&now, &tm);
    strftime(stamp, sizeof stamp, "%m%d%Y%H%M%S", &tm);
    snprintf(path, sizeof path, "%s/backup.%s.%s.log", r->o->output, r->o->level_arg, stamp);
    for (int i = 1; access(path, F_OK) == 0 && i < 100; i++)
        snprintf(path, sizeof path, "%s/backup.%s.%s.%d.log", r->o->output, r->o->level_arg, stamp,
                 i);
    snprintf(r->logpath, sizeof r->logpath, "%s", path);
    vb_log_set_file(path);
}

static void fill_summary(struct backup_run *r)
{
    for (size_t i = 0; i < r->njobs; i++) {
        struct disk_job *j = &r->jobs[i];
        struct summary_disk *d = summary_add_disk(r->summary, j->disk->target);
        if (!d)
            continue;
        const char *level = r->new_base ? "full" : backup_level_name(r->level);
        if (r->repo) /* each disk of a repository inc is copied from its base or read in full */
            level = j->base ? "inc" : r->o->level == LEVEL_COPY || r->offline ? "copy" : "full";
        snprintf(d->level, sizeof d->level, "%s", level);
        snprintf(d->file, sizeof d->file, "%s", j->file ? j->file : "");
        d->extents = j->extents;
        d->bytes_read = j->bytes_read;
        d->bytes_written = j->bytes_written;
        d->repository = r->repo != NULL;
        d->bytes_new = j->bytes_new;
        d->bytes_stored = j->bytes_stored;
        d->chunks_copied = j->chunks_copied;
        d->seconds = j->seconds;
        d->have_checksum = j->status == 0 && j->file && !r->repo; /* chunks have digests */
        d->checksum = j->checksum;
        d->incremental = j->incremental;
        snprintf(d->checkpoint, sizeof d->checkpoint, "%s", j->meta.checkpoint_name);
        snprintf(d->parent, sizeof d->parent, "%s", j->meta.parent_checkpoint);
        d->status = j->status == 0 && j->file ? SUMMARY_OK : SUMMARY_ERROR;
        if (j->status != 0)
            snprintf(d->error, sizeof d->error, "%s", j->err.msg);
    }
}

/* Undo what a failed run did, in the order of virtbackup-stream(5), "The order of a run", step 4:
 * end the job, delete the run's checkpoint while the domain still runs, then stop a domain we
 * started. */
static void rollback(struct backup_run *r)
{
    struct vb_error e = {0};
    if (r->job_running && job_end(r->dom, &e) < 0)
        vb_warn("%s", e.msg);
    r->job_running = false;
    if (r->checkpoint_created) {
        if (checkpoint_delete(r->dom, r->checkpoint, false, &e) < 0)
            vb_warn("%s", e.msg);
        else
            vb_info("removed checkpoint %s of the failed run", r->checkpoint);
        r->checkpoint_created = false;
    }
}

static int save_metadata(struct backup_run *r, struct vb_error *err)
{
    if (r->repo)
        return repo_snapshot_save(r, err);
    struct disk_job **jp = calloc(r->njobs, sizeof *jp);
    if (!jp)
        return vb_error_set(err, "out of memory");
    for (size_t i = 0; i < r->njobs; i++)
        jp[i] = &r->jobs[i];
    int rc = metadata_save(&r->host, r->dom, &r->info, jp, r->njobs, r->images, r->o->output,
                           r->zip, r->ident, r->level == LEVEL_COPY, err);
    free(jp);
    return rc;
}

/* qemu-img info of the images, in the background from here on (image_info.h) */
static int start_image_info(struct backup_run *r, struct vb_error *err)
{
    const struct vb_disk **disks = calloc(r->njobs, sizeof *disks);
    if (!disks)
        return vb_error_set(err, "out of memory");
    for (size_t i = 0; i < r->njobs; i++)
        disks[i] = r->jobs[i].disk;
    r->images = image_info_start(&r->o->remote, disks, r->njobs);
    free(disks);
    return r->images ? 0 : vb_error_set(err, "out of memory");
}

/* The job directory of a job started by -s or left by a killed run (ours by its name). */
static void remove_job_dir_of(struct backup_run *r, const char *sock)
{
    char *dir = strdup(sock);
    char *slash = dir ? strrchr(dir, '/') : NULL;
    if (slash && strstr(dir, "/virtbackup.")) {
        *slash = '\0';
        vb_host_rmdir(&r->host, dir);
    }
    free(dir);
}

/* -o -: the chain's bookkeeping stays in "." (as the reference does) and is also added to
 * the archive, so that the archive alone restores. */
static int zip_chain_files(struct backup_run *r, struct vb_error *err)
{
    if (!r->zip || (r->level != LEVEL_FULL && r->level != LEVEL_INC))
        return 0;
    char name[4200];
    snprintf(name, sizeof name, "%s.cpt", r->info.name);
    if (vb_zip_add_file(r->zip, name, r->cpt_path, err) < 0)
        return -1;
    char path[4300];
    snprintf(path, sizeof path, "%s/%s.xml", r->checkpointdir, r->checkpoint);
    snprintf(name, sizeof name, "checkpoints/%s.xml", r->checkpoint);
    return vb_zip_add_file(r->zip, name, path, err);
}

static int run_steps(struct backup_run *r, struct vb_error *err)
{
    struct backup_opts *o = r->o;
    r->conn = vb_virt_connect_as(o->uri, o->user, o->password, err);
    if (!r->conn)
        return -1;
    if (vb_host_open(&o->remote, &r->host, err) < 0)
        return -1;
    if (o->remote.tls && !vb_host_is_remote(&r->host))
        vb_warn("--tls is ignored: the NBD data of a local domain goes through a unix socket");
    else if (o->remote.tls && vb_tls_client_dir_check(r->host.tls_cert, err) < 0)
        return -1;
    r->dom = virDomainLookupByName(r->conn, o->domain);
    if (!r->dom)
        return vb_error_set(err, "domain '%s' not found at %s", o->domain,
                            o->uri ? o->uri : "qemu:///system");
    char *xml = virDomainGetXMLDesc(r->dom, 0);
    if (!xml)
        return vb_virt_error(err, "domain %s: cannot read its XML", o->domain);
    int rc = vb_domain_info_parse(xml, r->conn, &r->info, err);
    free(xml);
    if (rc < 0)
        return -1;

    if (o->killonly) {
        char *sock = job_running_socket(r->dom);
        if (!sock) {
            vb_info("domain %s has no backup job running", r->info.name);
            return 0;
        }
        int rc2 = job_end(r->dom, err);
        remove_job_dir_of(r, sock);
        free(sock);
        if (rc2 < 0)
            return -1;
        vb_info("backup job of domain %s ended", r->info.name);
        return 0;
    }
    if (o->printonly) {
        struct cpt_list cpt;
        char path[4200];
        snprintf(path, sizeof path, "%s/%s.cpt", o->output ? o->output : ".", r->info.name);
        if (cpt_load(path, &cpt, err) < 0)
            return -1;
        if (cpt.n == 0) {
            cpt_free(&cpt);
            return vb_error_set(err, "no checkpoints in %s: nothing to estimate", path);
        }
        unsigned long long bytes;
        int state, reason;
        if (virDomainGetState(r->dom, &state, &reason, 0) == 0 && state != VIR_DOMAIN_RUNNING &&
            state != VIR_DOMAIN_PAUSED) {
            cpt_free(&cpt);
            return vb_error_set(err,
                                "domain %s is not running: libvirt measures the changes "
                                "since a checkpoint only while the domain runs",
                                r->info.name);
        }
        rc = checkpoint_size(r->dom, cpt.names[cpt.n - 1], &bytes, err);
        cpt_free(&cpt);
        if (rc == 0)
            printf("%llu\n", bytes);
        return rc;
    }

    if (o->repository) {
        /* full and copy read every allocated extent; full and inc make the repository's
         * checkpoint; inc reads the chunks changed since its base (virtbackup(1), REPOSITORY
         * OUTPUT) */
        r->start_time = time(NULL);
        r->repo = repo_open_key_file(o->output, o->key_file, o->key_passphrase, err);
        struct repo_session *s = NULL;
        if (!r->repo || repo_need_key(r->repo, err) < 0 ||
            repo_session_begin(r->repo, "backup", r->info.uuid, &s, err) < 0)
            return -1;
        if (take_locks(r, err) < 0)
            return -1;
        r->level = o->level == LEVEL_FULL   ? LEVEL_FULL
                   : o->level == LEVEL_COPY ? LEVEL_COPY
                                            : LEVEL_INC;
        if (r->level == LEVEL_INC && repo_base_find(r, err) < 0)
            return -1;
    } else {
        if (vb_mkdir_p(o->output, err) < 0)
            return -1;
        if (take_locks(r, err) < 0)
            return -1;
        open_log_file(r);
        clean_partials(o->output);
        if (resolve_level(r, err) < 0)
            return -1;
    }
    if (select_disks(r, err) < 0)
        return -1;
    if (r->level != LEVEL_COPY && !has_qcow_disk(r)) {
        vb_info("no disk supports checkpoints: taking a copy backup");
        r->level = LEVEL_COPY;
        repo_base_free(r);
    }
    if (!o->startonly && start_image_info(r, err) < 0) /* -s saves no metadata */
        return -1;

    /* a leftover job of a killed run (we hold the domain lock, so its owner is gone) */
    char *sock = job_running_socket(r->dom);
    if (sock) {
        if (strstr(sock, "/virtbackup.") == NULL) {
            free(sock);
            return vb_error_set(err,
                                "domain %s already has a backup job running that virtbackup "
                                "did not start; end it with -k",
                                r->info.name);
        }
        vb_warn("ending a backup job left by an interrupted run (socket %s)", sock);
        int rc2 = job_end(r->dom, err);
        remove_job_dir_of(r, sock);
        free(sock);
        if (rc2 < 0)
            return -1;
    }

    if (choose_mode(r, err) < 0)
        return -1;
    if ((r->repo ? repo_checkpoint_prepare(r, err) : prepare_checkpoints(r, err)) < 0)
        return -1;
    /* a shut-off domain's inc reads offline (LEVEL_DIFF: no new checkpoint) */
    if (r->repo && (r->level == LEVEL_INC || r->level == LEVEL_DIFF) && repo_base_check(r, err) < 0)
        return -1;
    if (o->zip && !(r->zip = vb_zip_writer_open_fd(STDOUT_FILENO, err)))
        return -1;
    if (r->offline) {
        if (o->startonly)
            return vb_error_set(err, "-s needs a running domain");
        if (start_servers(r, err) < 0) {
            if (!r->base) /* else the base's persistent bitmap is missing or unusable */
                return -1;
            char why[sizeof err->msg];
            snprintf(why, sizeof why, "%s", err->msg);
            stop_servers(r);
            repo_base_drop(r, why);
            if (start_servers(r, err) < 0)
                return -1;
        }
        rc = copy_disks(r);
        stop_servers(r);
        if (rc < 0)
            return vb_error_set(err, "%s", backup_interrupted ? "interrupted" : "backup failed");
        return save_metadata(r, err);
    }
    if ((r->level == LEVEL_INC || r->level == LEVEL_DIFF) && !r->new_base && o->threshold >= 0) {
        unsigned long long bytes;
        if (checkpoint_size(r->dom, r->parent, &bytes, err) < 0)
            return -1;
        if (bytes < (unsigned long long)o->threshold) {
            vb_info("%llu bytes changed since %s, below the threshold of %lld: skipped", bytes,
                    r->parent, o->threshold);
            return 1; /* skipped */
        }
    }
    if (start_job(r, err) < 0)
        return -1;
    if (o->startonly) {
        if (r->socket) {
            printf("%s\n", r->socket);
            vb_info("job started, NBD socket %s (end it with -k)", r->socket);
        } else {
            printf("%s://%s:%d\n", r->host.tls ? "nbds" : "nbd", r->host.nbd_host,
                   r->host.nbd_port);
            vb_info("job started, NBD server %s:%d (end it with -k)", r->host.nbd_host,
                    r->host.nbd_port);
        }
        r->job_running = false;
        r->checkpoint_created = false;
        free(r->jobdir); /* the job goes on: its socket and scratch files stay */
        r->jobdir = NULL;
        return 0;
    }
    rc = copy_disks(r);
    if (rc == 0 && backup_interrupted)
        rc = -1;
    if (rc < 0) {
        vb_error_set(err, "%s", backup_interrupted ? "interrupted" : "backup failed");
        rollback(r);
        return -1;
    }
    if (job_end(r->dom, err) < 0) {
        r->job_running = false;
        rollback(r);
        return -1;
    }
    r->job_running = false;
    if (save_metadata(r, err) < 0)
        return -1;
    if (r->repo) {
        bool made = r->checkpoint_created;
        r->checkpoint_created = false;
        if (made)
            repo_checkpoint_forget_older(r);
        return 0;
    }
    if (commit_chain(r, err) < 0)
        return -1;
    r->checkpoint_created = false;
    return zip_chain_files(r, err);
}

static void cleanup(struct backup_run *r)
{
    image_info_release(r->images);
    rollback(r);
    stop_servers(r);
    if (r->started_domain && r->dom) {
        if (virDomainDestroy(r->dom) < 0)
            vb_warn("cannot stop domain %s again: %s", r->info.name, vb_virt_last_error());
    }
    vb_host_rmdir(&r->host, r->jobdir);
    for (size_t i = 0; i < r->njobs; i++) {
        free(r->jobs[i].file);
        free(r->jobs[i].socket);
        free(r->jobs[i].export_name);
        free((char *)r->jobs[i].bitmap);
    }
    repo_base_free(r);
    free(r->jobs);
    cpt_free(&r->cpt);
    free(r->cpt_path);
    free(r->checkpointdir);
    free(r->jobdir);
    free(r->socket);
    vb_domain_info_free(&r->info);
    if (r->dom)
        virDomainFree(r->dom);
    if (r->conn)
        virConnectClose(r->conn);
    vb_host_close(&r->host);
    repo_close(r->repo);
    vb_lock_release(&r->dom_lock);
    vb_lock_release(&r->dir_lock);
}

int backup_main(struct backup_opts *o)
{
    struct sigaction sa = {.sa_handler = on_signal};
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);

    struct backup_run r = {.o = o, .dom_lock = {.fd = -1}, .dir_lock = {.fd = -1}};
    r.summary = summary_new("virtbackup");
    struct vb_error err = {0};
    int rc = run_steps(&r, &err);
    bool skipped = rc == 1;
    if (rc < 0 && err.msg[0])
        vb_error_log("%s", err.msg);
    fill_summary(&r);
    cleanup(&r);
    if (r.zip) {
        struct vb_error zerr = {0};
        bool ok = rc == 0 && vb_log_count(VB_LOG_ERROR) == 0;
        if (ok) {
            vb_info("backup of %s finished", o->domain);
            vb_log_close();
            ok = vb_zip_add_file(r.zip, vb_base_name(r.logpath), r.logpath, &zerr) == 0;
        }
        if (vb_zip_writer_close(r.zip, ok, &zerr) < 0 || (!ok && zerr.msg[0])) {
            fprintf(stderr, "virtbackup: error: %s\n", zerr.msg);
            rc = -1;
        }
        if (!ok)
            fprintf(stderr, "virtbackup: error: the zip archive on stdout is incomplete "
                            "(no central directory): do not use it\n");
        r.zip = NULL;
    }
    int status = rc < 0 || vb_log_count(VB_LOG_ERROR) ? 1 : 0;
    if (status == 0 && o->strict && vb_log_count(VB_LOG_WARNING))
        status = 2;
    if (o->json) {
        struct vb_error jerr = {0};
        if (summary_write(r.summary, o->json_file,
                          status == 1 ? SUMMARY_ERROR
                          : skipped   ? SUMMARY_SKIPPED
                                      : SUMMARY_OK,
                          status, vb_log_count(VB_LOG_WARNING), &jerr) < 0) {
            fprintf(stderr, "virtbackup: %s\n", jerr.msg);
            status = 1;
        }
    }
    summary_free(r.summary);
    if (status == 0 && !skipped && !o->zip && !o->startonly && !o->killonly && !o->printonly)
        vb_info("backup of %s finished", o->domain);
    vb_log_close();
    return status;
}
