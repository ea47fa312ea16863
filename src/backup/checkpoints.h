/* libvirt's checkpoints of a domain (the chain's checkpoints: virtbackup-stream(5), CHAINS). */
#ifndef VB_BACKUP_CHECKPOINTS_H
#define VB_BACKUP_CHECKPOINTS_H

#include "backup.h"

/* Checkpoints known to libvirt. */
int checkpoints_list(virDomainPtr dom, char ***names, size_t *n, struct vb_error *err);
void checkpoints_free(char **names, size_t n);
/* Takes the repositories' checkpoints ("virtnbdbackup.<repo id>.<n>", virtbackup(1),
 * REPOSITORY OUTPUT) out of a list: a stream chain neither counts, refuses nor deletes them. */
void checkpoints_drop_repository(char **names, size_t *n);
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
