#ifndef VB_BACKUP_METADATA_H
#define VB_BACKUP_METADATA_H

#include "backup.h"

/* Saves vmconfig.<ident>.xml, <dev>.<ident>.qcow.json, boot files and autostart.<ident>. */
/* Files go into outdir, or into zip when it is set. */
int metadata_save(virDomainPtr dom, const struct vb_domain_info *info, struct disk_job **disks,
                  size_t ndisks, const char *outdir, struct vb_zip_writer *zip, const char *ident,
                  bool is_copy, struct vb_error *err);

#endif
