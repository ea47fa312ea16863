/* The state of one virtbackup run, shared by the files that make up a run:
 * run.c (the sequence and cleanup), levels.c (levels, checkpoints, chain bookkeeping),
 * offline.c (shut-off domains: started paused, or read through our own qemu-nbd), pull_job.c
 * (the libvirt backup job), quiesce.c (the guest agent's freeze and thaw),
 * disks.c (disk selection and workers), repo_snapshot.c (a repository run's snapshot),
 * repo_checkpoints.c (a repository run's checkpoint), repo_base.c (a repository inc's base). */
#ifndef VB_BACKUP_RUN_INTERNAL_H
#define VB_BACKUP_RUN_INTERNAL_H

#include <signal.h>
#include <time.h>

#include "backup.h"
#include "image_info.h"
#include "qemu_nbd.h"
#include "summary.h"

extern volatile sig_atomic_t backup_interrupted;

struct backup_run {
    struct backup_opts *o;
    virConnectPtr conn;
    struct vb_host host; /* where the domain runs: here or over SSH */
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
    struct vb_zip_writer *zip; /* -o - */
    struct image_info *images; /* qemu-img info, fetched while the disks are copied */
    char logpath[4300];
    struct repo *repo; /* -o REPO (virtbackup(1), REPOSITORY OUTPUT), */
    time_t start_time; /* when the run began: the snapshot's time */
    /* a repository inc (repo_base.c): the base snapshot, NULL when every disk is read in
     * full; its index of each job's disk (by job), to which that job's base points */
    struct repo_manifest *base;
    struct repo_index *base_index;
    time_t base_full_time; /* when the full read the base's chain started from was */
};

/* levels.c */
int resolve_level(struct backup_run *r, struct vb_error *err);
int prepare_checkpoints(struct backup_run *r, struct vb_error *err);
/* The parent checkpoint's bitmap is lost (why says how): an inc becomes a full recorded as a
 * new base, with libvirt's checkpoints and their bitmaps removed; a diff fails. */
int fall_back_to_new_base(struct backup_run *r, const char *why, struct vb_error *err);
int commit_chain(struct backup_run *r, struct vb_error *err);

/* offline.c */
int choose_mode(struct backup_run *r, struct vb_error *err);
int start_servers(struct backup_run *r, struct vb_error *err);
void stop_servers(struct backup_run *r);

/* pull_job.c */
int start_job(struct backup_run *r, struct vb_error *err);

/* quiesce.c: frozen is set when the agent froze the filesystems; unanswered when it did not
 * answer the freeze in time (it may still freeze them: quiesce_thaw thaws in both cases). */
struct quiesce {
    bool frozen, unanswered;
};
void quiesce_freeze(struct backup_run *r, struct quiesce *q);
void quiesce_thaw(struct backup_run *r, const struct quiesce *q);

/* disks.c */
int select_disks(struct backup_run *r, struct vb_error *err);
bool has_qcow_disk(const struct backup_run *r);
void prepare_jobs(struct backup_run *r);
int copy_disks(struct backup_run *r);

/* repo_snapshot.c: the boot files as blobs and the manifest, put last (the commit); call it
 * after every disk's copy succeeded. */
int repo_snapshot_save(struct backup_run *r, struct vb_error *err);

/* repo_checkpoints.c: a repository -l full's checkpoint (virtbackup(1), REPOSITORY OUTPUT).
 * prepare, before the job: names it (r->checkpoint) and removes this repository's checkpoints
 * that no snapshot records; describe: its name, creation time and XML into the manifest (the
 * XML malloc'ed, the name r->checkpoint's); forget_older, after the commit: removes this
 * repository's other checkpoints (failures are warnings: the snapshot is committed). */
struct repo_manifest;
int repo_checkpoint_prepare(struct backup_run *r, struct vb_error *err);
int repo_checkpoint_describe(struct backup_run *r, struct repo_manifest *m, struct vb_error *err);
void repo_checkpoint_forget_older(struct backup_run *r);
/* <creationTime> of a checkpoint's XML into *t. */
int repo_checkpoint_creation_time(const char *xml, int64_t *t, struct vb_error *err);

/* repo_base.c: the base of a repository inc (virtbackup(1), REPOSITORY OUTPUT). find, before
 * the disks are chosen: r->base, or without one -l inc fails and -l auto becomes a full;
 * check, once the domain runs and the checkpoints are prepared: the base's checkpoint (taken
 * back from the manifest when libvirt lost it), its age (--full-every) and each disk's index
 * and chunks; sets r->parent and each usable job's base, or turns the run into a full read.
 * drop: libvirt refused the base's bitmap at the job's start (why): every disk in full. */
int repo_base_find(struct backup_run *r, struct vb_error *err);
/* The domain's newest snapshot that records one of this repository's checkpoints, into
 * *base (of the snapshots of one second, ids sort at random: the one of the highest n);
 * base->id[0] == 0 when none does. A manifest that cannot be read is passed over, warned. */
int repo_base_newest(struct backup_run *r, struct repo_manifest *base, struct vb_error *err);
int repo_base_check(struct backup_run *r, struct vb_error *err);
void repo_base_drop(struct backup_run *r, const char *why);
void repo_base_free(struct backup_run *r);

#endif
