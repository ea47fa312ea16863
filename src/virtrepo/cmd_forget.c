/* virtrepo forget REPO ID... [--force]: deletes the manifests of these snapshots. Their chunks
 * and indexes stay (another snapshot may use them; removing unreferenced ones is gc's job). A
 * protected snapshot is refused unless --force, which deletes its marker after the manifest
 * (virtrepo(1), FORGET). */
#include <stdio.h>
#include <string.h>

#include "log.h"
#include "options.h"
#include "snapshot_protect.h"
#include "virtrepo.h"

int cmd_forget(const struct virtrepo_global *g, int argc, char **argv)
{
    bool force = false;
    int kept = 1; /* arguments kept in argv: the command's name, REPO, IDs */
    for (int a = 1; a < argc; a++) {
        if (strcmp(argv[a], "--force") == 0)
            force = true;
        else if (argv[a][0] == '-')
            return vb_opt_usage_error(g->prog, g->usage, "forget: unknown option '%s'", argv[a]);
        else
            argv[kept++] = argv[a];
    }
    argc = kept;
    if (argc < 3)
        return vb_opt_usage_error(g->prog, g->usage, "forget: REPO and at least one ID needed");
    struct vb_error err = {0};
    struct repo *r = virtrepo_open(g, argv[1], &err);
    struct virtrepo_snapshots all = {0};
    if (!r || virtrepo_load_snapshots(r, &all, &err) < 0) {
        vb_error_log("%s", err.msg);
        repo_close(r);
        return 1;
    }
    int rc = 0;
    for (int a = 2; a < argc; a++) {
        const struct virtrepo_snapshot *found = NULL;
        for (size_t i = 0; i < all.n && !found; i++)
            if (strcmp(all.v[i].id, argv[a]) == 0)
                found = &all.v[i];
        if (!found) {
            vb_error_log("no snapshot %s in %s", argv[a], argv[1]);
            rc = 1;
            continue;
        }
        int prot = repo_snapshot_is_protected(r, found->uuid, found->id, &err);
        if (prot == 1 && !force) {
            vb_error_log("snapshot %s is protected: unprotect it first, or forget --force",
                         found->id);
            rc = 1;
            continue;
        }
        if (prot < 0 || repo_delete_snapshot(r, found->uuid, found->id, &err) < 0 ||
            (prot == 1 && repo_snapshot_unprotect(r, found->uuid, found->id, &err) < 0)) {
            vb_error_log("%s", err.msg);
            rc = 1;
            continue;
        }
        vb_info("snapshot %s (VM %s) forgotten", found->id,
                found->parsed ? found->m.vm : found->uuid);
    }
    virtrepo_snapshots_free(&all);
    repo_close(r);
    return rc;
}
