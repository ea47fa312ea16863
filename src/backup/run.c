/* One run of virtbackup: resolve the level, prepare checkpoints, start the pull job, copy the
 * disks in parallel, commit, and leave nothing behind on any path (chains.md). */
#include "run.h"

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

#include "fileutil.h"
#include "job.h"
#include "log.h"
#include "metadata.h"
#include "progress.h"
#include "qemu_nbd.h"
#include "summary.h"

volatile sig_atomic_t backup_interrupted;

static void on_signal(int sig)
{
    (void)sig;
    backup_interrupted = 1;
}

const char *backup_level_name(enum backup_level level)
{
    static const char *const names[] = {"copy", "full", "inc", "diff", "auto"};
    return names[level];
}

struct run {
    struct backup_opts *o;
    virConnectPtr conn;
    virDomainPtr dom;
    struct vb_domain_info info;
    struct vb_lock dom_lock, dir_lock;
    enum backup_level level; /* resolved */
    bool new_base;           /* lost bitmap: a full recorded under an inc name */
    bool started_domain;     /* we started a shut-off domain (paused, auto-destroy) */
    bool offline;            /* reading the images through our own qemu-nbd */
    struct qemu_nbd **servers;
    bool job_running;
    bool checkpoint_created;
    char checkpoint[128]; /* the checkpoint this run creates (or names, for diff) */
    char parent[128];
    char ident[128]; /* suffix of the metadata files */
    struct cpt_list cpt;
    char *cpt_path, *checkpointdir, *jobdir, *socket;
    struct disk_job *jobs;
    size_t njobs;
    struct summary *summary;
};

static int prepare_offline_diff(struct run *r, struct vb_error *err);
static void prepare_jobs(struct run *r);

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

static size_t count_glob(const char *dir, const char *pattern)
{
    char pat[4200];
    snprintf(pat, sizeof pat, "%s/%s", dir, pattern);
    glob_t g;
    size_t n = 0;
    if (glob(pat, 0, NULL, &g) == 0)
        n = g.gl_pathc;
    globfree(&g);
    return n;
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

static int take_locks(struct run *r, struct vb_error *err)
{
    char path[4200];
    snprintf(path, sizeof path, "%s/%s.lock", vb_lock_dir(), r->info.uuid);
    char what[512];
    snprintf(what, sizeof what, "domain %s", r->info.name);
    if (vb_lock_acquire(&r->dom_lock, path, what, err) < 0)
        return -1;
    struct stat st;
    if (stat(r->o->output, &st) < 0)
        return vb_error_errno(err, "%s", r->o->output);
    snprintf(path, sizeof path, "%s/dir-%llx-%llx.lock", vb_lock_dir(),
             (unsigned long long)st.st_dev, (unsigned long long)st.st_ino);
    snprintf(what, sizeof what, "output directory %s", r->o->output);
    return vb_lock_acquire(&r->dir_lock, path, what, err);
}

/* Which disks take part, and how (reference §4.1 step 5). */
static int select_disks(struct run *r, struct vb_error *err)
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
        if (raw && (r->level == LEVEL_INC || r->level == LEVEL_DIFF)) {
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

static bool has_qcow_disk(const struct run *r)
{
    for (size_t i = 0; i < r->njobs; i++)
        if (!r->jobs[i].raw_output)
            return true;
    return false;
}

/* -l auto and the directory rules (cli.md). */
static int resolve_level(struct run *r, struct vb_error *err)
{
    const char *out = r->o->output;
    size_t data = count_glob(out, "*.data");
    r->level = r->o->level;
    if (r->level == LEVEL_AUTO) {
        if (data == 0) {
            r->level = LEVEL_FULL;
        } else if (count_glob(out, "*.full.data") > 0) {
            r->level = LEVEL_INC;
        } else {
            return vb_error_set(err,
                                "-l auto: %s holds %zu data files but no full backup (*.full.data)"
                                "; use a new directory or -l full into an empty one",
                                out, data);
        }
        vb_info("auto level: %s", backup_level_name(r->level));
    }
    if ((r->level == LEVEL_FULL || r->level == LEVEL_COPY) && data > 0)
        return vb_error_set(err,
                            "%s already holds a backup (%zu data files): a %s backup needs "
                            "an empty directory",
                            out, data, backup_level_name(r->level));
    return 0;
}

static int prepare_checkpoints(struct run *r, struct vb_error *err)
{
    struct backup_opts *o = r->o;
    if (asprintf(&r->cpt_path, "%s/%s.cpt", o->output, r->info.name) < 0 ||
        asprintf(&r->checkpointdir, "%s", o->checkpointdir ? o->checkpointdir : "") < 0)
        return vb_error_set(err, "out of memory");
    if (!o->checkpointdir) {
        free(r->checkpointdir);
        if (asprintf(&r->checkpointdir, "%s/checkpoints", o->output) < 0)
            return vb_error_set(err, "out of memory");
    }
    if (cpt_load(r->cpt_path, &r->cpt, err) < 0)
        return -1;

    if (r->level == LEVEL_COPY) {
        snprintf(r->checkpoint, sizeof r->checkpoint, "%s.0", CHECKPOINT_PREFIX);
        snprintf(r->ident, sizeof r->ident, "copy");
        return 0;
    }
    if (r->offline)
        return prepare_offline_diff(r, err);
    char **names;
    size_t n;
    if (checkpoints_list(r->dom, &names, &n, err) < 0)
        return -1;
    int rc = 0;
    for (size_t i = 0; i < n && rc == 0; i++)
        if (strncmp(names[i], CHECKPOINT_PREFIX, strlen(CHECKPOINT_PREFIX)) != 0)
            rc = vb_error_set(err,
                              "domain %s has checkpoint %s, not made by virtbackup or "
                              "virtnbdbackup: remove it or use -l copy",
                              r->info.name, names[i]);
    if (rc < 0) {
        checkpoints_free(names, n);
        return -1;
    }

    if (r->level == LEVEL_FULL) {
        /* a new chain: forget the old checkpoints, with their bitmaps */
        for (size_t i = 0; i < n; i++) {
            if (checkpoint_delete(r->dom, names[i], false, err) < 0) {
                checkpoints_free(names, n);
                return -1;
            }
            vb_info("removed checkpoint %s of the previous chain", names[i]);
        }
        checkpoints_free(names, n);
        snprintf(r->checkpoint, sizeof r->checkpoint, "%s.0", CHECKPOINT_PREFIX);
        snprintf(r->ident, sizeof r->ident, "%s", r->checkpoint);
        return 0;
    }

    /* inc / diff */
    if (r->cpt.n == 0) {
        checkpoints_free(names, n);
        return vb_error_set(err,
                            "no checkpoints in %s: run a full backup first (-l full or "
                            "-l auto)",
                            r->cpt_path);
    }
    /* orphans: checkpoints of a crashed run, whose data was never committed */
    for (size_t i = 0; i < n; i++) {
        bool listed = false;
        for (size_t k = 0; k < r->cpt.n; k++)
            listed |= strcmp(names[i], r->cpt.names[k]) == 0;
        if (!listed) {
            vb_warn("removing checkpoint %s left by an interrupted run (no data file for it)",
                    names[i]);
            if (checkpoint_delete(r->dom, names[i], false, err) < 0) {
                checkpoints_free(names, n);
                return -1;
            }
        }
    }
    checkpoints_free(names, n);
    if (checkpoints_redefine(r->dom, r->checkpointdir, &r->cpt, err) < 0)
        return -1;

    long next = 0;
    for (size_t i = 0; i < r->cpt.n; i++) {
        long num = checkpoint_number(r->cpt.names[i]);
        if (num >= next)
            next = num + 1;
    }
    snprintf(r->checkpoint, sizeof r->checkpoint, "%s.%ld", CHECKPOINT_PREFIX, next);
    snprintf(r->parent, sizeof r->parent, "%s", r->cpt.names[r->cpt.n - 1]);

    struct vb_error verr = {0};
    if (!checkpoint_valid(r->dom, r->parent, &verr)) {
        if (r->level == LEVEL_DIFF)
            return vb_error_set(err, "cannot take a differential backup: %s; run a full backup",
                                verr.msg);
        /* lost bitmap (chains.md): a full, recorded as a new base under the inc's name */
        vb_warn("%s; switching to a full backup recorded as a new base (%s)", verr.msg,
                r->checkpoint);
        char **all;
        size_t na;
        if (checkpoints_list(r->dom, &all, &na, err) < 0)
            return -1;
        for (size_t i = 0; i < na; i++)
            checkpoint_delete(r->dom, all[i], true, &verr);
        checkpoints_free(all, na);
        r->new_base = true;
        r->parent[0] = '\0';
    }
    if (r->level == LEVEL_DIFF)
        snprintf(r->ident, sizeof r->ident, "%ld", (long)time(NULL));
    else
        snprintf(r->ident, sizeof r->ident, "%s", r->checkpoint);
    return 0;
}

static void prepare_jobs(struct run *r)
{
    bool inc = (r->level == LEVEL_INC || r->level == LEVEL_DIFF) && !r->new_base;
    for (size_t i = 0; i < r->njobs; i++) {
        struct disk_job *j = &r->jobs[i];
        const char *t = j->disk->target;
        if (j->raw_output || r->level == LEVEL_COPY)
            asprintf(&j->file, "%s/%s.copy.data", r->o->output, t);
        else if (r->level == LEVEL_FULL)
            asprintf(&j->file, "%s/%s.full.data", r->o->output, t);
        else if (r->level == LEVEL_DIFF)
            asprintf(&j->file, "%s/%s.diff.%s.data", r->o->output, t, r->ident);
        else
            asprintf(&j->file, "%s/%s.inc.%s.data", r->o->output, t, r->checkpoint);
        j->socket = r->socket ? strdup(r->socket) : NULL;
        j->export_name = strdup(t);
        j->incremental = inc;
        if (inc && asprintf((char **)&j->bitmap, "qemu:dirty-bitmap:backup-%s", t) < 0)
            j->bitmap = NULL;
        stream_meta_init(&j->meta);
        snprintf(j->meta.disk_name, sizeof j->meta.disk_name, "%s", t);
        snprintf(j->meta.disk_format, sizeof j->meta.disk_format, "%s",
                 j->disk->format ? j->disk->format : "raw");
        snprintf(j->meta.checkpoint_name, sizeof j->meta.checkpoint_name, "%s", r->checkpoint);
        snprintf(j->meta.parent_checkpoint, sizeof j->meta.parent_checkpoint, "%s",
                 inc ? r->parent : "");
        j->meta.incremental = inc;
        j->meta.compressed = r->o->compress;
    }
}

struct worker_ctx {
    struct run *r;
    size_t next;
    pthread_mutex_t lock;
};

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
        j->status = disk_copy_run(j, w->r->o, &j->err);
        if (j->status == 0)
            vb_info("%s: saved %s (%" PRIu64 " bytes, %.1f s)", j->disk->target, j->file,
                    j->bytes_written, j->seconds);
        else
            vb_error_log("%s", j->err.msg);
    }
    return NULL;
}

static int copy_disks(struct run *r)
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

static int has_guest_agent(virDomainPtr dom)
{
    char *xml = virDomainGetXMLDesc(dom, 0);
    int yes = xml && strstr(xml, "org.qemu.guest_agent.0") != NULL;
    free(xml);
    return yes;
}

static int freeze(struct run *r, bool *frozen)
{
    *frozen = false;
    int state, reason;
    if (virDomainGetState(r->dom, &state, &reason, 0) < 0 || state != VIR_DOMAIN_RUNNING)
        return 0;
    if (!has_guest_agent(r->dom)) {
        vb_debug("no guest agent channel: filesystems are not frozen");
        return 0;
    }
    virDomainAgentSetResponseTimeout(r->dom, r->o->freeze_timeout, 0);
    const char *mounts[64];
    unsigned nm = 0;
    char *copy = r->o->freeze ? strdup(r->o->freeze) : NULL;
    for (char *s = copy ? strtok(copy, ",") : NULL; s && nm < 64; s = strtok(NULL, ","))
        mounts[nm++] = s;
    int n = virDomainFSFreeze(r->dom, nm ? mounts : NULL, nm, 0);
    free(copy);
    if (n < 0) {
        vb_warn("cannot freeze the guest's filesystems (guest agent): %s", vb_virt_last_error());
        return 0;
    }
    vb_info("froze %d guest filesystem(s)", n);
    *frozen = true;
    return 0;
}

static void thaw(struct run *r)
{
    if (virDomainFSThaw(r->dom, NULL, 0, 0) < 0)
        vb_warn("cannot thaw the guest's filesystems: %s", vb_virt_last_error());
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

static int start_job(struct run *r, struct vb_error *err)
{
    int uid, gid;
    qemu_owner(r, &uid, &gid);
    r->jobdir = job_dir_create(r->o->scratchdir, uid, gid, err);
    if (!r->jobdir)
        return -1;
    if (r->o->socketfile)
        r->socket = strdup(r->o->socketfile);
    else if (asprintf(&r->socket, "%s/nbd.sock", r->jobdir) < 0)
        r->socket = NULL;
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
    bool paused = false, frozen = false;
    if (r->o->pause) {
        if (virDomainSuspend(r->dom) < 0)
            vb_warn("cannot pause the domain: %s", vb_virt_last_error());
        else
            paused = true;
    }
    freeze(r, &frozen);
    int rc = job_begin(r->dom, &spec, err);
    if (frozen)
        thaw(r);
    if (paused && virDomainResume(r->dom) < 0)
        vb_warn("cannot resume the domain: %s", vb_virt_last_error());
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

/* A shut-off domain (cli.md "Shut-off domains"): copy reads the images offline; levels that
 * need a checkpoint start the domain paused and auto-destroyed; if that is not possible (or
 * not wanted), inc/diff read the images offline through the last checkpoint's persistent
 * bitmap and are recorded as a diff, and full becomes copy only with --no-start-domain. */
static int choose_mode(struct run *r, struct vb_error *err)
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

/* Offline diff: the chain's names without touching libvirt's checkpoints. */
static int prepare_offline_diff(struct run *r, struct vb_error *err)
{
    if (r->cpt.n == 0)
        return vb_error_set(err, "no checkpoints in %s: run a full backup first", r->cpt_path);
    long next = 0;
    for (size_t i = 0; i < r->cpt.n; i++) {
        long num = checkpoint_number(r->cpt.names[i]);
        if (num >= next)
            next = num + 1;
    }
    snprintf(r->checkpoint, sizeof r->checkpoint, "%s.%ld", CHECKPOINT_PREFIX, next);
    snprintf(r->parent, sizeof r->parent, "%s", r->cpt.names[r->cpt.n - 1]);
    snprintf(r->ident, sizeof r->ident, "%ld", (long)time(NULL));
    return 0;
}

static int start_servers(struct run *r, struct vb_error *err)
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
        };
        r->servers[i] = qemu_nbd_start(&qo, err);
        if (!r->servers[i])
            return vb_error_prefix(err, "%s: cannot serve %s offline", j->disk->target,
                                   j->disk->path);
        free(j->socket);
        j->socket = strdup(qemu_nbd_socket(r->servers[i]));
        if (j->bitmap) {
            free((char *)j->bitmap);
            if (asprintf((char **)&j->bitmap, "qemu:dirty-bitmap:%s", r->parent) < 0)
                j->bitmap = NULL;
        }
    }
    return 0;
}

static void stop_servers(struct run *r)
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

static int commit_chain(struct run *r, struct vb_error *err)
{
    if (r->level == LEVEL_FULL) {
        cpt_free(&r->cpt);
        /* a new chain: old checkpoint XML is of no use any more */
        char pat[4200];
        snprintf(pat, sizeof pat, "%s/*.xml", r->checkpointdir);
        glob_t g;
        if (glob(pat, 0, NULL, &g) == 0)
            for (size_t i = 0; i < g.gl_pathc; i++)
                unlink(g.gl_pathv[i]);
        globfree(&g);
    }
    if (r->level != LEVEL_FULL && r->level != LEVEL_INC)
        return 0;
    if (checkpoint_save_xml(r->dom, r->checkpoint, r->checkpointdir, err) < 0)
        return -1;
    char **names = realloc(r->cpt.names, (r->cpt.n + 1) * sizeof *names);
    if (!names)
        return vb_error_set(err, "out of memory");
    r->cpt.names = names;
    r->cpt.names[r->cpt.n++] = strdup(r->checkpoint);
    return cpt_save(r->cpt_path, &r->cpt, err);
}

static void open_log_file(struct run *r)
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
    vb_log_set_file(path);
}

static void fill_summary(struct run *r)
{
    for (size_t i = 0; i < r->njobs; i++) {
        struct disk_job *j = &r->jobs[i];
        struct summary_disk *d = summary_add_disk(r->summary, j->disk->target);
        if (!d)
            continue;
        snprintf(d->level, sizeof d->level, "%s",
                 r->new_base ? "full" : backup_level_name(r->level));
        snprintf(d->file, sizeof d->file, "%s", j->file ? j->file : "");
        d->extents = j->extents;
        d->bytes_read = j->bytes_read;
        d->bytes_written = j->bytes_written;
        d->seconds = j->seconds;
        d->have_checksum = j->status == 0 && j->file && !j->raw_output;
        d->checksum = j->checksum;
        d->incremental = j->incremental;
        snprintf(d->checkpoint, sizeof d->checkpoint, "%s", j->meta.checkpoint_name);
        snprintf(d->parent, sizeof d->parent, "%s", j->meta.parent_checkpoint);
        d->status = j->status == 0 && j->file ? SUMMARY_OK : SUMMARY_ERROR;
        if (j->status != 0)
            snprintf(d->error, sizeof d->error, "%s", j->err.msg);
    }
}

/* Undo what a failed run did, in the order chains.md asks: end the job, delete the run's
 * checkpoint while the domain still runs, then stop a domain we started. */
static void rollback(struct run *r)
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

static int save_metadata(struct run *r, struct vb_error *err)
{
    struct disk_job **jp = calloc(r->njobs, sizeof *jp);
    if (!jp)
        return vb_error_set(err, "out of memory");
    for (size_t i = 0; i < r->njobs; i++)
        jp[i] = &r->jobs[i];
    int rc = metadata_save(r->dom, &r->info, jp, r->njobs, r->o->output, r->ident,
                           r->level == LEVEL_COPY, err);
    free(jp);
    return rc;
}

static int run(struct run *r, struct vb_error *err)
{
    struct backup_opts *o = r->o;
    r->conn = vb_virt_connect(o->uri, err);
    if (!r->conn)
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
        free(sock);
        if (job_end(r->dom, err) < 0)
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
        rc = checkpoint_size(r->dom, cpt.names[cpt.n - 1], &bytes, err);
        cpt_free(&cpt);
        if (rc == 0)
            printf("%llu\n", bytes);
        return rc;
    }

    if (vb_mkdir_p(o->output, err) < 0)
        return -1;
    if (take_locks(r, err) < 0)
        return -1;
    open_log_file(r);
    clean_partials(o->output);
    if (resolve_level(r, err) < 0)
        return -1;
    if (select_disks(r, err) < 0)
        return -1;
    if (r->level != LEVEL_COPY && !has_qcow_disk(r)) {
        vb_info("no disk supports checkpoints: taking a copy backup");
        r->level = LEVEL_COPY;
    }

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
        free(sock);
        if (job_end(r->dom, err) < 0)
            return -1;
    }

    if (choose_mode(r, err) < 0)
        return -1;
    if (prepare_checkpoints(r, err) < 0)
        return -1;
    if (r->offline) {
        if (o->startonly)
            return vb_error_set(err, "-s needs a running domain");
        if (start_servers(r, err) < 0)
            return -1;
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
        printf("%s\n", r->socket);
        vb_info("job started, NBD socket %s (end it with -k)", r->socket);
        r->job_running = false;
        r->checkpoint_created = false;
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
    struct disk_job **jp = calloc(r->njobs, sizeof *jp);
    for (size_t i = 0; jp && i < r->njobs; i++)
        jp[i] = &r->jobs[i];
    rc = metadata_save(r->dom, &r->info, jp, r->njobs, o->output, r->ident, r->level == LEVEL_COPY,
                       err);
    free(jp);
    if (rc < 0)
        return -1;
    if (commit_chain(r, err) < 0)
        return -1;
    r->checkpoint_created = false;
    return 0;
}

static void cleanup(struct run *r)
{
    rollback(r);
    stop_servers(r);
    if (r->started_domain && r->dom) {
        if (virDomainDestroy(r->dom) < 0)
            vb_warn("cannot stop domain %s again: %s", r->info.name, vb_virt_last_error());
    }
    job_dir_remove(r->jobdir);
    for (size_t i = 0; i < r->njobs; i++) {
        free(r->jobs[i].file);
        free(r->jobs[i].socket);
        free(r->jobs[i].export_name);
        free((char *)r->jobs[i].bitmap);
    }
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
    vb_lock_release(&r->dom_lock);
    vb_lock_release(&r->dir_lock);
}

int backup_main(struct backup_opts *o)
{
    struct sigaction sa = {.sa_handler = on_signal};
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);

    struct run r = {.o = o, .dom_lock = {.fd = -1}, .dir_lock = {.fd = -1}};
    r.summary = summary_new("virtbackup");
    struct vb_error err = {0};
    int rc = run(&r, &err);
    bool skipped = rc == 1;
    if (rc < 0 && err.msg[0])
        vb_error_log("%s", err.msg);
    fill_summary(&r);
    cleanup(&r);
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
    if (status == 0 && !skipped)
        vb_info("backup of %s finished", o->domain);
    vb_log_close();
    return status;
}
