#ifndef VB_BACKUP_METADATA_H
#define VB_BACKUP_METADATA_H

#include "backup.h"
#include "image_info.h"

/* Saves vmconfig.<ident>.xml, <dev>.<ident>.qcow.json, boot files and autostart.<ident>. */
/* Files go into outdir, or into zip when it is set. */
/* Boot files are read on host (over SSH for a remote domain); the image information comes
 * from images, started with the same disks in the same order (image_info.h). */
int metadata_save(struct vb_host *host, virDomainPtr dom, const struct vb_domain_info *info,
                  struct disk_job **disks, size_t ndisks, struct image_info *images,
                  const char *outdir, struct vb_zip_writer *zip, const char *ident, bool is_copy,
                  struct vb_error *err);

#endif
