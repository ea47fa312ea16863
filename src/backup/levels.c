/* Levels and the chain's bookkeeping: -l auto, checkpoint names and parents, orphan and
 * foreign checkpoints (a repository's are neither: left alone), the lost-bitmap fallback, .cpt
 * and checkpoints/ after success. */
#include <glob.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "backup_job.h"
#include "bitmaps.h"
#include "checkpoints.h"
#include "interrupted.h"
#include "level_rules.h"
#include "log.h"
#include "repo_checkpoint.h"
#include "run_internal.h"

static int prepare_offline_diff(struct backup_run *r, struct vb_error *err);

static void name_next_checkpoint(struct backup_run *r)
{
    checkpoint_next(&r->cpt, r->checkpoint, sizeof r->checkpoint, r->parent, sizeof r->parent);
}

/* Removes bitmaps that libvirt does not know (see bitmaps.c); *found says if there were any. */
static int clean_stray_bitmaps(struct backup_run *r, bool *found, bool report, struct vb_error *err)
{
    char **names;
    size_t n;
    if (checkpoints_list(r->dom, &names, &n, err) < 0)
        return -1;
    struct stray_bitmap *stray;
    size_t ns;
    int rc = stray_bitmaps_find(r->dom, CHECKPOINT_PREFIX, names, n, &stray, &ns, err);
    checkpoints_free(names, n);
    if (rc < 0)
        return -1;
    /* a repository's bitmaps are its own (repo_checkpoints.c), whatever became of their
     * checkpoints */
    size_t keep = 0;
    for (size_t i = 0; i < ns; i++) {
        struct stray_bitmap t = stray[keep];
        if (!repo_checkpoint_is_repository(stray[i].name)) {
            stray[keep++] = stray[i];
            stray[i] = t;
        }
    }
    if (found)
        *found = keep > 0;
    for (size_t i = 0; report && i < keep; i++)
        vb_warn("bitmap %s in %s belongs to no checkpoint (left by an interrupted run)",
                stray[i].name, stray[i].node);
    rc = stray_bitmaps_remove(r->dom, stray, keep, err);
    stray_bitmaps_free(stray, ns);
    return rc;
}

static size_t count_glob(const char *dir, const char *pattern)
{
    char pat[4200];
    snprintf(pat, sizeof pat, "%s/%s", dir, pattern);
    glob_t g;
    size_t n = 0;
    if (glob(pat, 0, NULL, &g) == 0)
        n = g.gl_pathc;
    globfree(&g);
    return n;
}

/* -l auto and the directory rules (virtbackup(1)). */
int resolve_level(struct backup_run *r, struct vb_error *err)
{
    const char *out = r->o->output;
    size_t data = count_glob(out, "*.data");
    if (level_resolve(r->o->level, out, data, count_glob(out, "*.full.data"), &r->level, err) < 0)
        return -1;
    if (r->o->level == LEVEL_AUTO)
        vb_info("auto level: %s", backup_level_name(r->level));
    return 0;
}

int prepare_checkpoints(struct backup_run *r, struct vb_error *err)
{
    struct backup_opts *o = r->o;
    if (asprintf(&r->cpt_path, "%s/%s.cpt", o->output, r->info.name) < 0 ||
        asprintf(&r->checkpointdir, "%s", o->checkpointdir ? o->checkpointdir : "") < 0)
        return vb_error_set(err, "out of memory");
    if (!o->checkpointdir) {
        free(r->checkpointdir);
        if (asprintf(&r->checkpointdir, "%s/checkpoints", o->output) < 0)
            return vb_error_set(err, "out of memory");
    }
    if (cpt_load(r->cpt_path, &r->cpt, err) < 0)
        return -1;

    if (r->level == LEVEL_COPY) {
        snprintf(r->checkpoint, sizeof r->checkpoint, "%s.0", CHECKPOINT_PREFIX);
        snprintf(r->ident, sizeof r->ident, "copy");
        return 0;
    }
    if (r->offline)
        return prepare_offline_diff(r, err);
    char **names;
    size_t n;
    if (checkpoints_list(r->dom, &names, &n, err) < 0)
        return -1;
    checkpoints_drop_repository(names, &n);
    int rc = 0;
    for (size_t i = 0; i < n && rc == 0; i++)
        if (strncmp(names[i], CHECKPOINT_PREFIX, strlen(CHECKPOINT_PREFIX)) != 0)
            rc = vb_error_set(err,
                              "domain %s has checkpoint %s, not made by virtbackup or "
                              "virtnbdbackup: remove it or use -l copy",
                              r->info.name, names[i]);
    if (rc < 0) {
        checkpoints_free(names, n);
        return -1;
    }

    if (r->level == LEVEL_FULL) {
        /* a new chain: forget the old checkpoints, with their bitmaps */
        for (size_t i = 0; i < n; i++) {
            if (checkpoint_delete(r->dom, names[i], false, err) < 0) {
                checkpoints_free(names, n);
                return -1;
            }
            vb_info("removed checkpoint %s of the previous chain", names[i]);
        }
        checkpoints_free(names, n);
        if (clean_stray_bitmaps(r, NULL, true, err) < 0)
            return -1;
        snprintf(r->checkpoint, sizeof r->checkpoint, "%s.0", CHECKPOINT_PREFIX);
        snprintf(r->ident, sizeof r->ident, "%s", r->checkpoint);
        return 0;
    }

    /* inc / diff */
    if (r->cpt.n == 0) {
        checkpoints_free(names, n);
        return vb_error_set(err,
                            "no checkpoints in %s: run a full backup first (-l full or "
                            "-l auto)",
                            r->cpt_path);
    }
    if (!r->o->zip && interrupted_set_aside(r->o->output, &r->cpt, err) < 0) {
        checkpoints_free(names, n);
        return -1;
    }
    /* orphans: checkpoints of a crashed run, whose bookkeeping was never written */
    for (size_t i = 0; i < n; i++) {
        bool listed = false;
        for (size_t k = 0; k < r->cpt.n; k++)
            listed |= strcmp(names[i], r->cpt.names[k]) == 0;
        if (!listed) {
            vb_warn("removing checkpoint %s left by an interrupted run (not in the chain's list)",
                    names[i]);
            if (checkpoint_delete(r->dom, names[i], false, err) < 0) {
                checkpoints_free(names, n);
                return -1;
            }
        }
    }
    checkpoints_free(names, n);
    if (checkpoints_redefine(r->dom, r->checkpointdir, &r->cpt, err) < 0)
        return -1;

    name_next_checkpoint(r);

    bool stray = false;
    if (clean_stray_bitmaps(r, &stray, true, err) < 0)
        return -1;
    if (stray) {
        /* a checkpoint was taken after the parent and lost: the parent's bitmap stopped then */
        char why[600];
        snprintf(why, sizeof why, "changes since checkpoint %s were not all recorded by its bitmap",
                 r->parent);
        if (fall_back_to_new_base(r, why, err) < 0)
            return -1;
    } else if (r->o->threshold >= 0) {
        /* --threshold reads the parent's size before the job, which needs its bitmaps intact;
         * otherwise libvirt checks them when the job begins (start_job falls back then), which
         * spares every incremental a checkpoint redefinition (~50 ms of libvirtd's time) */
        struct vb_error verr = {0};
        if (!checkpoint_valid(r->dom, r->parent, &verr) &&
            fall_back_to_new_base(r, verr.msg, err) < 0)
            return -1;
    }
    if (r->level == LEVEL_DIFF)
        snprintf(r->ident, sizeof r->ident, "%ld", (long)time(NULL));
    else
        snprintf(r->ident, sizeof r->ident, "%s", r->checkpoint);
    return 0;
}

int fall_back_to_new_base(struct backup_run *r, const char *why, struct vb_error *err)
{
    if (r->level == LEVEL_DIFF)
        return vb_error_set(err, "cannot take a differential backup: %s; run a full backup", why);
    /* lost bitmap (virtbackup-stream(5), "Writing a chain"): a full, recorded as a new base under
     * the inc's name */
    vb_warn("%s; switching to a full backup recorded as a new base (%s)", why, r->checkpoint);
    char **all;
    size_t na;
    if (checkpoints_list(r->dom, &all, &na, err) < 0)
        return -1;
    checkpoints_drop_repository(all, &na);
    struct vb_error ignored = {0};
    for (size_t i = 0; i < na; i++)
        checkpoint_delete(r->dom, all[i], true, &ignored);
    checkpoints_free(all, na);
    /* their bitmaps would block new checkpoints of the same names */
    if (clean_stray_bitmaps(r, NULL, false, err) < 0)
        return -1;
    r->new_base = true;
    r->parent[0] = '\0';
    return 0;
}

/* Offline diff: the chain's names without touching libvirt's checkpoints. */
static int prepare_offline_diff(struct backup_run *r, struct vb_error *err)
{
    if (r->cpt.n == 0)
        return vb_error_set(err, "no checkpoints in %s: run a full backup first", r->cpt_path);
    name_next_checkpoint(r);
    snprintf(r->ident, sizeof r->ident, "%ld", (long)time(NULL));
    return 0;
}

int commit_chain(struct backup_run *r, struct vb_error *err)
{
    if (r->level == LEVEL_FULL || r->new_base) {
        /* a full starts a new list; a new base keeps it, since numbers never repeat in a
         * directory (virtbackup-stream(5), CHAINS) */
        if (r->level == LEVEL_FULL)
            cpt_free(&r->cpt);
        /* the old chain's checkpoints are gone from libvirt with their bitmaps: their saved XML
         * must not be redefined by a later run (ours or virtnbdbackup's) */
        char pat[4200];
        snprintf(pat, sizeof pat, "%s/*.xml", r->checkpointdir);
        glob_t g;
        if (glob(pat, 0, NULL, &g) == 0)
            for (size_t i = 0; i < g.gl_pathc; i++)
                unlink(g.gl_pathv[i]);
        globfree(&g);
    }
    if (r->level != LEVEL_FULL && r->level != LEVEL_INC)
        return 0;
    if (checkpoint_save_xml(r->dom, r->checkpoint, r->checkpointdir, err) < 0)
        return -1;
    char **names = realloc(r->cpt.names, (r->cpt.n + 1) * sizeof *names);
    if (!names)
        return vb_error_set(err, "out of memory");
    r->cpt.names = names;
    if (!(r->cpt.names[r->cpt.n] = strdup(r->checkpoint)))
        return vb_error_set(err, "out of memory");
    r->cpt.n++;
    return cpt_save(r->cpt_path, &r->cpt, err);
}
