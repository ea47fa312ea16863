/* The libvirt side of a run: the pull-mode backup job and the checkpoints (reference §4.2, §4.3).
 */
#ifndef VB_BACKUP_JOB_H
#define VB_BACKUP_JOB_H

#include "backup.h"

struct job_spec {
    const char *socket;   /* unix socket, or NULL for TCP: */
    const char *tcp_host; /* the address qemu's NBD server listens on */
    int tcp_port;
    bool tls;
    const char *dir;         /* for scratch files */
    struct disk_job **disks; /* the disks in the job */
    size_t ndisks;
    const struct vb_domain_info *info; /* every disk of the domain (others are excluded) */
    const char *incremental;           /* parent checkpoint, or NULL */
    const char *checkpoint;            /* checkpoint to create, or NULL */
    const char **bitmap_disks;         /* disks that get a bitmap in the checkpoint */
    size_t nbitmap_disks;
};

char *job_backup_xml(const struct job_spec *spec);
char *job_checkpoint_xml(const struct job_spec *spec);

/* What job_begin returns when libvirt found the incremental parent's bitmap missing or broken
 * (VIR_ERR_CHECKPOINT_INCONSISTENT): err says "cannot use checkpoint <parent>: ...". The
 * caller may fall back to a full backup (chains.md, lost bitmap). */
#define JOB_BEGIN_INCONSISTENT (-2)

/* virDomainBackupBegin with the checkpoint; explains the usual failures. 0, -1 or
 * JOB_BEGIN_INCONSISTENT. */
int job_begin(virDomainPtr dom, const struct job_spec *spec, struct vb_error *err);
/* Ends the pull job (virDomainAbortJob is how a pull job is finished). */
int job_end(virDomainPtr dom, struct vb_error *err);
/* What identifies the domain's running backup job: its socket path, or for a TCP job its
 * first scratch file (both inside our job directory when the job is ours); "" if neither is
 * known, NULL if no job runs. */
char *job_running_socket(virDomainPtr dom);

/* Checkpoints known to libvirt. */
int checkpoints_list(virDomainPtr dom, char ***names, size_t *n, struct vb_error *err);
void checkpoints_free(char **names, size_t n);
int checkpoint_delete(virDomainPtr dom, const char *name, bool metadata_only, struct vb_error *err);
/* True if libvirt knows the checkpoint and its bitmaps are consistent (REDEFINE_VALIDATE). */
bool checkpoint_valid(virDomainPtr dom, const char *name, struct vb_error *err);
/* Redefines checkpoints from XML files (as saved in checkpoints/) that libvirt forgot. */
int checkpoints_redefine(virDomainPtr dom, const char *dir, const struct cpt_list *cpt,
                         struct vb_error *err);
int checkpoint_save_xml(virDomainPtr dom, const char *name, const char *dir, struct vb_error *err);
/* Sum of the disk sizes libvirt reports for changes since the checkpoint. */
int checkpoint_size(virDomainPtr dom, const char *name, unsigned long long *bytes,
                    struct vb_error *err);

#endif
