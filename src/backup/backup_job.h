/* The libvirt pull-mode backup job: its XML, start and end, and the job a domain runs. */
#ifndef VB_BACKUP_BACKUP_JOB_H
#define VB_BACKUP_BACKUP_JOB_H

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
 * caller may fall back to a full backup (virtbackup-stream(5), CHAINS: a lost bitmap). */
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

#endif
