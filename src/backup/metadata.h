#ifndef VB_BACKUP_METADATA_H
#define VB_BACKUP_METADATA_H

#include "backup.h"

/* Saves vmconfig.<ident>.xml, <dev>.<ident>.qcow.json, boot files and autostart.<ident>. */
/* Files go into outdir, or into zip when it is set. */
/* The image information and boot files are read on host (over SSH for a remote domain). */
int metadata_save(struct vb_host *host, virDomainPtr dom, const struct vb_domain_info *info,
                  struct disk_job **disks, size_t ndisks, const char *outdir,
                  struct vb_zip_writer *zip, const char *ident, bool is_copy, struct vb_error *err);

#endif
