/* The dump action on a repository snapshot: its manifest (virtbackup-repository(5)) as JSON
 * on stdout, as read and checked. */
#include <stdio.h>
#include <stdlib.h>

#include "log.h"
#include "repo_select.h"
#include "restore.h"

int restore_repo_dump(const struct restore_opts *o)
{
    struct vb_error err = {0};
    struct repo_manifest m = {0};
    struct repo_selection sel = {.vm = o->vm,
                                 .snapshot = o->snapshot,
                                 .until = o->until,
                                 .key_file = o->key_file,
                                 .key_passphrase = o->key_passphrase};
    struct repo *r = repo_select_open(o->input, &sel, &m, &err);
    char *json = r ? repo_manifest_to_json(&m, &err) : NULL;
    int rc = 0;
    if (!json) {
        vb_error_log("%s", err.msg);
        rc = -1;
    } else if (printf("%s\n", json) < 0 || fflush(stdout) != 0) {
        vb_error_log("stdout: write failed");
        rc = -1;
    }
    free(json);
    repo_manifest_free(&m);
    repo_close(r);
    return rc;
}
