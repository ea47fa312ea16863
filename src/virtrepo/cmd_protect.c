/* virtrepo protect REPO ID... [--vm NAME] and virtrepo unprotect: put or delete the
 * protection marker of these snapshots (virtbackup-repository(5)); virtrepo(1), PROTECT. */
#include <getopt.h>
#include <stdio.h>
#include <string.h>

#include "log.h"
#include "options.h"
#include "snapshot_protect.h"
#include "virtrepo.h"

/* The snapshot id names, among those of VM vm (NULL: any VM); NULL after logging why. */
static const struct virtrepo_snapshot *find(const struct virtrepo_snapshots *all, const char *id,
                                            const char *vm, const char *repo)
{
    const struct virtrepo_snapshot *found = NULL;
    size_t n = 0;
    for (size_t i = 0; i < all->n; i++) {
        const struct virtrepo_snapshot *s = &all->v[i];
        if (strcmp(s->id, id) != 0 || (vm && (!s->parsed || strcmp(s->m.vm, vm) != 0)))
            continue;
        found = s;
        n++;
    }
    if (n == 0)
        vb_error_log("no snapshot %s%s%s in %s", id, vm ? " of VM " : "", vm ? vm : "", repo);
    else if (n > 1)
        vb_error_log("%zu snapshots have the id %s in %s: name the VM with --vm", n, id, repo);
    return n == 1 ? found : NULL;
}

static int protect_or_unprotect(const struct virtrepo_global *g, int argc, char **argv,
                                bool protect)
{
    static const struct option opts[] = {
        {"vm", required_argument, NULL, 'm'},
        {0},
    };
    const char *cmd = protect ? "protect" : "unprotect";
    const char *vm = NULL;
    int c;
    while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        if (c != 'm')
            return vb_opt_usage_error(g->prog, g->usage, "%s: unknown option '%s'", cmd,
                                      argv[optind - 1]);
        vm = optarg;
    }
    if (argc - optind < 2)
        return vb_opt_usage_error(g->prog, g->usage, "%s: REPO and at least one ID needed", cmd);
    const char *repo = argv[optind];
    struct vb_error err = {0};
    struct repo *r = virtrepo_open(g, repo, &err);
    struct virtrepo_snapshots all = {0};
    if (!r || virtrepo_load_snapshots(r, &all, &err) < 0) {
        vb_error_log("%s", err.msg);
        repo_close(r);
        return 1;
    }
    int rc = 0;
    for (int a = optind + 1; a < argc; a++) {
        const struct virtrepo_snapshot *s = find(&all, argv[a], vm, repo);
        if (!s) {
            rc = 1;
            continue;
        }
        const char *name = s->parsed ? s->m.vm : s->uuid;
        int done = protect ? repo_snapshot_protect(r, s->uuid, s->id, &err)
                           : repo_snapshot_unprotect(r, s->uuid, s->id, &err);
        if (done < 0) {
            vb_error_log("%s", err.msg);
            rc = 1;
        } else if (done == 1) {
            vb_info("snapshot %s (VM %s) was not protected", s->id, name);
        } else {
            vb_info("snapshot %s (VM %s) %s", s->id, name, protect ? "protected" : "unprotected");
        }
    }
    virtrepo_snapshots_free(&all);
    repo_close(r);
    return rc;
}

int cmd_protect(const struct virtrepo_global *g, int argc, char **argv)
{
    return protect_or_unprotect(g, argc, argv, true);
}

int cmd_unprotect(const struct virtrepo_global *g, int argc, char **argv)
{
    return protect_or_unprotect(g, argc, argv, false);
}
