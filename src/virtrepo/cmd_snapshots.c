/* virtrepo snapshots REPO [--vm NAME] [--json]: the snapshots, oldest first, as a table or
 * as the JSON array virtrepo(1) describes, each with whether it is protected and when verify
 * last covered it (the protection markers and scrub records of virtbackup-repository(5)). */
#include <getopt.h>
#include <inttypes.h>
#include <jansson.h>
#include <stdio.h>
#include <string.h>

#include "log.h"
#include "options.h"
#include "scrub.h"
#include "snapshot_protect.h"
#include "timefmt.h"
#include "virtrepo.h"

/* When verify last covered snapshot id, or "never". */
static void verified_at(const struct repo_scrub_records *recs, const char *id,
                        char out[REPO_TIME_MAX])
{
    time_t t;
    if (repo_scrub_coverage(recs, id, &t) == 0)
        repo_time_format(t, true, out);
    else
        snprintf(out, REPO_TIME_MAX, "never");
}

static json_t *snapshot_json(const struct virtrepo_snapshot *s, bool protected,
                             const char *verified)
{
    const struct repo_manifest *m = &s->m;
    json_t *disks = json_array();
    for (size_t i = 0; i < m->n_disks; i++) {
        const struct repo_manifest_disk *d = &m->disks[i];
        char hex[REPO_DIGEST_HEX + 1];
        repo_digest_hex(&d->index, hex);
        json_t *j = json_pack(
            "{s:s, s:I, s:I, s:s, s:s, s:I, s:I, s:I}", "target", d->target, "virtual_size",
            (json_int_t)d->virtual_size, "chunk_size", (json_int_t)d->chunk_size, "index", hex,
            "format", d->format ? d->format : "", "bytes_read", (json_int_t)d->bytes_read,
            "bytes_new", (json_int_t)d->bytes_new, "bytes_stored", (json_int_t)d->bytes_stored);
        /* an encrypted repository listed without the key: these are sealed (virtrepo(1)) */
        static const char *const sealed[] = {"format", "bytes_read", "bytes_new", "bytes_stored"};
        for (size_t f = 0; j && m->sealed && f < sizeof sealed / sizeof *sealed; f++)
            json_object_set_new(j, sealed[f], json_null());
        json_array_append_new(disks, j);
    }
    json_t *o = json_pack("{s:s, s:s, s:s, s:s, s:s, s:o, s:o}", "id", m->id, "vm", m->vm, "uuid",
                          m->uuid, "time", m->time, "level", repo_level_name(m->level), "parent",
                          m->parent[0] ? json_string(m->parent) : json_null(), "disks", disks);
    if (o && m->has_checkpoint)
        json_object_set_new(o, "checkpoint", json_string(m->checkpoint.name));
    if (o) {
        json_object_set_new(o, "protected", json_boolean(protected));
        json_object_set_new(o, "verified",
                            strcmp(verified, "never") ? json_string(verified) : json_null());
    }
    return o;
}

int cmd_snapshots(const struct virtrepo_global *g, int argc, char **argv)
{
    static const struct option opts[] = {
        {"vm", required_argument, NULL, 'm'},
        {"json", no_argument, NULL, 'j'},
        {0},
    };
    const char *vm = NULL;
    bool as_json = false;
    int c;
    while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (c) {
        case 'm':
            vm = optarg;
            break;
        case 'j':
            as_json = true;
            break;
        default:
            return vb_opt_usage_error(g->prog, g->usage, "snapshots: unknown option '%s'",
                                      argv[optind - 1]);
        }
    }
    if (optind != argc - 1)
        return vb_opt_usage_error(g->prog, g->usage, "snapshots: one REPO is needed");

    struct vb_error err = {0};
    struct repo *r = virtrepo_open(g, argv[optind], &err);
    struct virtrepo_snapshots all = {0};
    struct repo_scrub_records recs = {0};
    if (!r || virtrepo_load_snapshots(r, &all, &err) < 0 || repo_scrub_load(r, &recs, &err) < 0) {
        vb_error_log("%s", err.msg);
        virtrepo_snapshots_free(&all);
        repo_close(r);
        return 1;
    }
    int rc = 0;
    json_t *array = json_array();
    if (!as_json)
        printf("%-25s  %-20s  %-5s  %-25s  %-9s  %-20s  %s\n", "ID", "VM", "LEVEL", "TIME",
               "PROTECTED", "VERIFIED", "DISKS");
    for (size_t i = 0; i < all.n; i++) {
        const struct virtrepo_snapshot *s = &all.v[i];
        if (!s->parsed) {
            vb_error_log("snapshot %s of VM %s: %s", s->id, s->uuid, s->error.msg);
            rc = 1;
            continue;
        }
        if (vm && strcmp(vm, s->m.vm) != 0)
            continue;
        int prot = repo_snapshot_is_protected(r, s->uuid, s->id, &err);
        if (prot < 0) {
            vb_error_log("%s", err.msg);
            rc = 1;
        }
        char verified[REPO_TIME_MAX];
        verified_at(&recs, s->id, verified);
        if (as_json) {
            json_array_append_new(array, snapshot_json(s, prot == 1, verified));
            continue;
        }
        char disks[256] = "";
        for (size_t d = 0; d < s->m.n_disks; d++) {
            size_t used = strlen(disks);
            snprintf(disks + used, sizeof disks - used, "%s%s", d ? "," : "", s->m.disks[d].target);
        }
        printf("%-25s  %-20s  %-5s  %-25s  %-9s  %-20s  %s\n", s->id, s->m.vm,
               repo_level_name(s->m.level), s->m.time, prot == 1 ? "yes" : "-", verified, disks);
    }
    if (as_json) {
        char *text = json_dumps(array, JSON_INDENT(2));
        if (text)
            printf("%s\n", text);
        free(text);
    }
    json_decref(array);
    repo_scrub_records_free(&recs);
    virtrepo_snapshots_free(&all);
    repo_close(r);
    return rc;
}
