/* Files of the backup (boot files, raw images) copied to the host the restore writes to. */
#include "host_copy.h"

#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

/* A backup file copied to the host: directly here; for a remote host through a file in a
 * private local directory (mode 0700, removed afterwards) and SFTP. */
int restore_copy_to_host(const struct restore_opts *o, struct bset *set, const char *name,
                         const char *dest, mode_t mode, uint32_t *adler, struct vb_error *err)
{
    if (!vb_host_is_remote(o->host))
        return bset_copy(set, name, dest, mode, adler, err);
    char dir[4096], tmp[4200];
    snprintf(dir, sizeof dir, "%s/virtrestore-copy.XXXXXX", vb_host_tmpdir(o->host));
    if (!mkdtemp(dir))
        return vb_error_errno(err, "cannot create a private directory in %s",
                              vb_host_tmpdir(o->host));
    snprintf(tmp, sizeof tmp, "%s/file", dir);
    int rc = bset_copy(set, name, tmp, mode, adler, err);
    if (rc == 0)
        rc = vb_host_put(o->host, tmp, dest, mode, err);
    unlink(tmp);
    rmdir(dir);
    return rc;
}
