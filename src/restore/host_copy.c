/* Files of the backup (boot files, raw images) copied to the host the restore writes to. */
#include "host_copy.h"

#include "host.h"

#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

/* A backup file copied to the host: written where the host stages it (host.h: the file
 * itself here; a private local directory, mode 0700, and SFTP for a remote host). */
int restore_copy_to_host(const struct restore_opts *o, struct bset *set, const char *name,
                         const char *dest, mode_t mode, uint32_t *adler, struct vb_error *err)
{
    char *local;
    if (vb_host_stage_open(o->host, "virtrestore-copy", dest, &local, err) < 0)
        return -1;
    int rc = bset_copy(set, name, local, mode, adler, err);
    struct vb_error cerr = {0};
    if (vb_host_stage_commit(o->host, local, dest, mode, rc == 0, &cerr) < 0 && rc == 0) {
        *err = cerr;
        rc = -1;
    }
    return rc;
}
