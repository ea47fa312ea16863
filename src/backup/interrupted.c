#include "interrupted.h"

#include <errno.h>
#include <glob.h>
#include <stdio.h>
#include <string.h>

#include "checkpoint_number.h"
#include "fileutil.h"
#include "log.h"
#include "util.h"

/* path -> path.interrupted; an older file of that name (an earlier run interrupted at the
 * same number) is replaced. A missing path is not an error (a .chksum may be missing). */
static int move_aside(const char *path, struct vb_error *err)
{
    char dest[4300];
    if ((size_t)snprintf(dest, sizeof dest, "%s.interrupted", path) >= sizeof dest)
        return vb_error_set(err, "%s: name too long", path);
    if (rename(path, dest) == 0 || errno == ENOENT)
        return 0;
    return vb_error_errno(err, "cannot move %s aside to %s", path, dest);
}

int interrupted_set_aside(const char *dir, const struct cpt_list *cpt, struct vb_error *err)
{
    long last = -1;
    for (size_t i = 0; i < cpt->n; i++) {
        long num = stream_checkpoint_number(cpt->names[i]);
        if (num > last)
            last = num;
    }
    if (last < 0)
        return 0;
    char pat[4200];
    snprintf(pat, sizeof pat, "%s/*.inc." CHECKPOINT_PREFIX ".*.data", dir);
    glob_t g;
    int moved = 0, rc = 0;
    if (glob(pat, 0, NULL, &g) != 0)
        return 0;
    for (size_t i = 0; rc == 0 && i < g.gl_pathc; i++) {
        const char *name = vb_base_name(g.gl_pathv[i]);
        const char *cp = strstr(name, ".inc." CHECKPOINT_PREFIX ".");
        char checkpoint[256];
        size_t len = cp ? strlen(cp + 5) : 0;
        if (!cp || len <= 5 || len - 5 >= sizeof checkpoint)
            continue;
        memcpy(checkpoint, cp + 5, len - 5); /* without ".data" */
        checkpoint[len - 5] = '\0';
        if (stream_checkpoint_number(checkpoint) <= last)
            continue;
        vb_warn("%s holds checkpoint %s, which the chain's list does not: a run interrupted "
                "after committing it and before its bookkeeping; moved aside to %s.interrupted "
                "(the chain goes on without it)",
                g.gl_pathv[i], checkpoint, name);
        char chksum[4200];
        if ((size_t)snprintf(chksum, sizeof chksum, "%s.chksum", g.gl_pathv[i]) >= sizeof chksum) {
            rc = vb_error_set(err, "%s: name too long", g.gl_pathv[i]);
            break;
        }
        if ((rc = move_aside(g.gl_pathv[i], err)) == 0 && (rc = move_aside(chksum, err)) == 0)
            moved++;
    }
    if (moved && rc == 0)
        rc = vb_fsync_dir_of(g.gl_pathv[0], err);
    globfree(&g);
    return rc < 0 ? -1 : moved;
}
