/* Copies a file of the backup set to the restore host (over SFTP for a remote one); with
 * adler non-NULL also its adler32, from the same reads. */
#ifndef VR_HOST_COPY_H
#define VR_HOST_COPY_H

#include <stdint.h>
#include <sys/types.h>

#include "backup_set.h"
#include "restore.h"

int restore_copy_to_host(const struct restore_opts *o, struct bset *set, const char *name,
                         const char *dest, mode_t mode, uint32_t *adler, struct vb_error *err);

#endif
