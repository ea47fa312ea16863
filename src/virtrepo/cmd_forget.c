/* virtrepo forget REPO ID...: deletes the manifests of these snapshots. Their chunks and
 * indexes stay (another snapshot may use them; removing unreferenced ones is a prune's job). */
#include <stdio.h>
#include <string.h>

#include "log.h"
#include "options.h"
#include "virtrepo.h"

int cmd_forget(const struct virtrepo_global *g, int argc, char **argv)
{
    if (argc >= 2 && argv[1][0] == '-')
        return vb_opt_usage_error(g->prog, g->usage, "forget: unknown option '%s'", argv[1]);
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
        if (repo_delete_snapshot(r, found->uuid, found->id, &err) < 0) {
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
