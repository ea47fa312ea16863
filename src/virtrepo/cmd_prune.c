/* virtrepo prune REPO [--vm NAME] --keep-* N... [--dry-run] [--json]: applies the retention
 * policy (retention.h) to each VM's snapshots (a VM is its uuid) and deletes the manifests
 * of those it does not keep; their chunks stay until virtrepo gc (virtrepo(1), PRUNE). The
 * whole plan is made (every manifest read, every marker looked at) before the first
 * deletion, so an error while planning deletes nothing and one while deleting leaves every
 * remaining snapshot whole. */
#include <errno.h>
#include <getopt.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "log.h"
#include "options.h"
#include "repo_checkpoint.h"
#include "retention.h"
#include "snapshot_protect.h"
#include "timefmt.h"
#include "virtrepo.h"

/* One snapshot of the plan: all.v[i] and its verdict. */
struct planned {
    size_t i;
    struct retention_snapshot r;
};

struct plan {
    struct planned *v;
    size_t n;
};

/* A rule's count: 1 .. 1000000. 0, or -1. */
static int parse_count(const char *arg, unsigned *out)
{
    char *end;
    errno = 0;
    unsigned long v = strtoul(arg, &end, 10);
    if (errno || end == arg || *end || arg[0] == '-' || v == 0 || v > 1000000)
        return -1;
    *out = (unsigned)v;
    return 0;
}

/* The base of the VM's next incremental is its newest snapshot that records a checkpoint of
 * this repository (virtbackup(1), REPOSITORY OUTPUT): kept ("base", when it is not the newest,
 * which says so already: a copy or an import may be newer). A base without full_time (written
 * by an older version) keeps the snapshots its chain runs through back to its full read too
 * (its parents while they are incrementals, and the first that is not: "chain"): virtbackup
 * dates such a chain for --full-every by them, reading every disk in full when one is gone.
 * p->v[start..] are one VM's, in id order. */
static void keep_base_chain(const struct repo *r, const struct virtrepo_snapshots *all,
                            struct plan *p, size_t start)
{
    /* as virtbackup chooses it: ids sort by the second, so among the snapshots of the newest
     * second that has one, the highest checkpoint number */
    size_t cur = p->n, second = sizeof "YYYYmmddTHHMMSSZ" - 1;
    long best = -1;
    for (size_t k = p->n; k-- > start;) {
        const char *id = all->v[p->v[k].i].id;
        if (best >= 0 && strncmp(all->v[p->v[cur].i].id, id, second) != 0)
            break;
        const struct repo_manifest *m = &all->v[p->v[k].i].m;
        long n = m->has_checkpoint ? repo_checkpoint_number(m->checkpoint.name, r->config.id) : -1;
        if (n > best) {
            best = n;
            cur = k;
        }
    }
    if (cur < p->n && !(p->v[cur].r.reasons & RETENTION_NEWEST))
        p->v[cur].r.reasons |= RETENTION_BASE;
    if (cur < p->n && all->v[p->v[cur].i].m.full_time[0])
        return;
    for (size_t hops = 0; cur < p->n && hops < p->n; hops++) {
        const struct repo_manifest *m = &all->v[p->v[cur].i].m;
        if (m->level != REPO_LEVEL_INC || !m->parent[0])
            break;
        size_t parent = p->n;
        for (size_t k = start; k < p->n; k++)
            if (strcmp(all->v[p->v[k].i].id, m->parent) == 0)
                parent = k;
        if (parent < p->n)
            p->v[parent].r.reasons |= RETENTION_CHAIN;
        cur = parent;
    }
}

/* Plans the snapshots of VM uuid (in id order) into p; a VM with a manifest that cannot be
 * read is left whole (-1 after saying so). */
static int plan_vm(struct repo *r, const struct virtrepo_snapshots *all, const char *uuid,
                   const struct retention_policy *policy, struct plan *p, struct vb_error *err)
{
    size_t start = p->n;
    for (size_t i = 0; i < all->n; i++) {
        const struct virtrepo_snapshot *s = &all->v[i];
        if (strcmp(s->uuid, uuid) != 0)
            continue;
        if (!s->parsed) {
            p->n = start;
            return vb_error_set(err,
                                "VM %s: snapshot %s cannot be read (%s): none of this VM's "
                                "snapshots is pruned",
                                uuid, s->id, s->error.msg);
        }
        struct planned *x = &p->v[p->n];
        x->i = i;
        if (repo_time_parse(s->m.time, &x->r.time) < 0) {
            p->n = start;
            return vb_error_set(err, "VM %s: snapshot %s: bad time \"%s\"", uuid, s->id, s->m.time);
        }
        int prot = repo_snapshot_is_protected(r, s->uuid, s->id, err);
        if (prot < 0) {
            p->n = start;
            return -1;
        }
        x->r.protected = prot == 1;
        p->n++;
    }
    struct retention_snapshot *rs = malloc((p->n - start + 1) * sizeof *rs);
    if (!rs)
        return vb_error_set(err, "out of memory");
    for (size_t k = start; k < p->n; k++)
        rs[k - start] = p->v[k].r;
    retention_apply(policy, rs, p->n - start);
    for (size_t k = start; k < p->n; k++)
        p->v[k].r.reasons = rs[k - start].reasons;
    free(rs);
    keep_base_chain(r, all, p, start);
    return 0;
}

static json_t *planned_json(const struct virtrepo_snapshot *s, unsigned reasons)
{
    json_t *why = json_array();
    char text[160];
    retention_reasons_format(reasons, text, sizeof text);
    for (char *save = NULL, *w = strtok_r(text, ",", &save); w; w = strtok_r(NULL, ",", &save))
        json_array_append_new(why, json_string(w));
    return json_pack("{s:s, s:s, s:s, s:s, s:s, s:o}", "id", s->id, "vm", s->m.vm, "uuid", s->uuid,
                     "time", s->m.time, "action", reasons ? "keep" : "remove", "reasons", why);
}

/* Deletes the manifests the plan removes; a snapshot protected since the plan is kept. */
static int remove_planned(struct repo *r, const struct virtrepo_snapshots *all,
                          const struct plan *p, size_t *removed)
{
    struct vb_error err = {0};
    for (size_t k = 0; k < p->n; k++) {
        if (p->v[k].r.reasons)
            continue;
        const struct virtrepo_snapshot *s = &all->v[p->v[k].i];
        int prot = repo_snapshot_is_protected(r, s->uuid, s->id, &err);
        if (prot == 1) {
            vb_warn("snapshot %s (VM %s) was protected meanwhile: kept", s->id, s->m.vm);
            continue;
        }
        if (prot < 0 || repo_delete_snapshot(r, s->uuid, s->id, &err) < 0) {
            vb_error_log("%s; %zu snapshots removed, the others are kept", err.msg, *removed);
            return -1;
        }
        (*removed)++;
    }
    return 0;
}

int cmd_prune(const struct virtrepo_global *g, int argc, char **argv)
{
    static const struct option opts[] = {
        {"vm", required_argument, NULL, 'm'},
        {"keep-last", required_argument, NULL, '0' + RETENTION_LAST},
        {"keep-hourly", required_argument, NULL, '0' + RETENTION_HOURLY},
        {"keep-daily", required_argument, NULL, '0' + RETENTION_DAILY},
        {"keep-weekly", required_argument, NULL, '0' + RETENTION_WEEKLY},
        {"keep-monthly", required_argument, NULL, '0' + RETENTION_MONTHLY},
        {"keep-yearly", required_argument, NULL, '0' + RETENTION_YEARLY},
        {"dry-run", no_argument, NULL, 'n'},
        {"json", no_argument, NULL, 'j'},
        {0},
    };
    struct retention_policy policy = {0};
    const char *vm = NULL;
    bool dry_run = false, as_json = false;
    int c, opt_index;
    while ((c = getopt_long(argc, argv, "", opts, &opt_index)) != -1) {
        if (c >= '0' && c < '0' + RETENTION_RULES) {
            if (parse_count(optarg, &policy.keep[c - '0']) < 0)
                return vb_opt_usage_error(g->prog, g->usage,
                                          "prune: --%s needs a count from 1 to 1000000, not '%s'",
                                          opts[opt_index].name, optarg);
            continue;
        }
        switch (c) {
        case 'm':
            vm = optarg;
            break;
        case 'n':
            dry_run = true;
            break;
        case 'j':
            as_json = true;
            break;
        default:
            return vb_opt_usage_error(g->prog, g->usage, "prune: unknown option '%s'",
                                      argv[optind - 1]);
        }
    }
    if (optind != argc - 1)
        return vb_opt_usage_error(g->prog, g->usage, "prune: one REPO is needed");
    if (!retention_policy_any(&policy))
        return vb_opt_usage_error(g->prog, g->usage,
                                  "prune: no --keep-* rule given (a prune without one would "
                                  "keep only the newest snapshot of each VM)");
    tzset(); /* the periods are the local time zone's (TZ) */

    struct vb_error err = {0};
    struct repo *r = virtrepo_open(g, argv[optind], &err);
    struct virtrepo_snapshots all = {0};
    if (!r || virtrepo_load_snapshots(r, &all, &err) < 0) {
        vb_error_log("%s", err.msg);
        repo_close(r);
        return 1;
    }
    int rc = 0;
    size_t vms = 0, removed = 0;
    struct plan p = {.v = calloc(all.n + 1, sizeof *p.v)};
    bool *done = calloc(all.n + 1, sizeof *done); /* uuid of all.v[i] planned already */
    if (!p.v || !done) {
        vb_error_log("out of memory");
        rc = 1;
        goto out;
    }
    /* the VMs in the order of their oldest snapshot; --vm: those that ever had that name */
    for (size_t i = 0; i < all.n; i++) {
        if (done[i])
            continue;
        bool wanted = !vm;
        for (size_t j = i; j < all.n; j++) {
            if (strcmp(all.v[j].uuid, all.v[i].uuid) != 0)
                continue;
            done[j] = true;
            if (vm && all.v[j].parsed && strcmp(all.v[j].m.vm, vm) == 0)
                wanted = true;
        }
        if (!wanted)
            continue;
        vms++;
        if (plan_vm(r, &all, all.v[i].uuid, &policy, &p, &err) < 0) {
            vb_error_log("%s", err.msg);
            rc = 1;
        }
    }
    if (vm && vms == 0) {
        vb_error_log("no snapshot of VM %s in %s", vm, argv[optind]);
        rc = 1;
        goto out;
    }
    if (rc != 0 && !dry_run) {
        vb_error_log("nothing removed: the plan is incomplete");
        goto out;
    }

    size_t keep = 0, drop = 0;
    json_t *array = json_array();
    for (size_t k = 0; k < p.n; k++) {
        const struct virtrepo_snapshot *s = &all.v[p.v[k].i];
        unsigned reasons = p.v[k].r.reasons;
        reasons ? keep++ : drop++;
        if (as_json) {
            json_array_append_new(array, planned_json(s, reasons));
            continue;
        }
        char why[160];
        retention_reasons_format(reasons, why, sizeof why);
        printf("%-6s  %-25s  %-20s  %-25s  %s\n", reasons ? "keep" : "remove", s->id, s->m.vm,
               s->m.time, why[0] ? why : "-");
    }
    if (as_json) {
        char *text = json_dumps(array, JSON_INDENT(2));
        if (text)
            printf("%s\n", text);
        free(text);
    }
    json_decref(array);
    fflush(stdout);
    if (!dry_run && rc == 0 && remove_planned(r, &all, &p, &removed) < 0)
        rc = 1;
    char summary[256];
    snprintf(summary, sizeof summary, "%zu snapshots of %zu VMs: %zu kept, %zu %s%s", keep + drop,
             vms, keep, dry_run ? drop : removed,
             dry_run ? "would be removed (dry run)" : "removed",
             dry_run || removed == 0 ? "" : " (their chunks are freed by virtrepo gc)");
    if (as_json)
        vb_info("%s", summary);
    else
        printf("%s\n", summary);
out:
    free(done);
    free(p.v);
    virtrepo_snapshots_free(&all);
    repo_close(r);
    return rc;
}
