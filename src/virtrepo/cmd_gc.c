/* virtrepo gc REPO [--json] [--dry-run]: one garbage collection (virtrepo(1), GC; the
 * protocol: virtbackup-repository(5)): prints what earlier trashes freed or wait for and
 * what this run moved to its trash. */
#include <getopt.h>
#include <inttypes.h>
#include <jansson.h>
#include <signal.h>
#include <stdio.h>

#include "debug_stall.h"
#include "gc.h"
#include "log.h"
#include "options.h"
#include "virtrepo.h"

static void stall_after_move(void *ctx)
{
    static const volatile sig_atomic_t no_stop = 0;
    const struct virtrepo_global *g = ctx;
    VB_DEBUG_STALL_AT(g->debug_stall, "gc-move", &no_stop);
    (void)g;
}

static json_t *ids_json(char (*ids)[REPO_SESSION_ID_MAX], size_t n)
{
    json_t *a = json_array();
    for (size_t i = 0; a && i < n; i++)
        json_array_append_new(a, json_string(ids[i]));
    return a;
}

static int print_json(const struct repo_gc_report *rep)
{
    json_t *trashes = json_array();
    for (size_t i = 0; trashes && i < rep->n_trashes; i++) {
        const struct repo_gc_trash *t = &rep->trashes[i];
        json_array_append_new(trashes, json_pack("{s:s, s:b, s:I, s:I, s:I, s:o}", "gc_id",
                                                 t->gc_id, "emptied", t->emptied, "freed_objects",
                                                 (json_int_t)t->freed_objects, "freed_bytes",
                                                 (json_int_t)t->freed_bytes, "rescued",
                                                 (json_int_t)t->rescued, "waiting_for",
                                                 ids_json(t->waiting, t->n_waiting)));
    }
    json_t *o = json_pack("{s:s?, s:b, s:I, s:I, s:I, s:I, s:I, s:I, s:o, s:o}", "gc_id",
                          rep->gc_id[0] ? rep->gc_id : NULL, "dry_run", rep->dry_run, "mark_time",
                          (json_int_t)rep->mark_time, "snapshots", (json_int_t)rep->snapshots,
                          "moved_chunks", (json_int_t)rep->moved_chunks, "moved_chunk_bytes",
                          (json_int_t)rep->moved_chunk_bytes, "moved_indexes",
                          (json_int_t)rep->moved_indexes, "moved_index_bytes",
                          (json_int_t)rep->moved_index_bytes, "waiting_for",
                          ids_json(rep->alive, rep->n_alive), "trashes", trashes);
    if (!o || json_dumpf(o, stdout, JSON_INDENT(2)) < 0)
        return -1;
    json_decref(o);
    putchar('\n');
    return 0;
}

static void print_text(const struct repo_gc_report *rep)
{
    const char *would = rep->dry_run ? "would be " : "";
    for (size_t i = 0; i < rep->n_trashes; i++) {
        const struct repo_gc_trash *t = &rep->trashes[i];
        if (t->emptied && t->freed_objects == 0 && t->rescued == 0)
            continue; /* an empty trash: the --json output lists it */
        if (t->emptied)
            printf("trash of gc %s: %semptied: %" PRIu64 " objects, %" PRIu64
                   " bytes freed, %" PRIu64 " moved back\n",
                   t->gc_id, would, t->freed_objects, t->freed_bytes, t->rescued);
        else
            printf("trash of gc %s: waiting for %zu sessions (first %s)\n", t->gc_id, t->n_waiting,
                   t->waiting[0]);
    }
    printf("gc %s: %" PRIu64 " snapshots marked; %" PRIu64 " chunks (%" PRIu64
           " bytes) and %" PRIu64 " indexes (%" PRIu64 " bytes) %s\n",
           rep->dry_run ? "(dry run)" : rep->gc_id, rep->snapshots, rep->moved_chunks,
           rep->moved_chunk_bytes, rep->moved_indexes, rep->moved_index_bytes,
           rep->dry_run ? "would be moved to the trash" : "moved to the trash");
    if (!rep->dry_run)
        printf("its trash is emptied by a later gc once %zu sessions alive now have ended\n",
               rep->n_alive);
}

int cmd_gc(const struct virtrepo_global *g, int argc, char **argv)
{
    static const struct option opts[] = {
        {"json", no_argument, NULL, 'j'},
        {"dry-run", no_argument, NULL, 'n'},
        {0},
    };
    bool json = false;
    struct repo_gc_options o = {.moved_hook = stall_after_move, .hook_ctx = (void *)g};
    int c;
    while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (c) {
        case 'j':
            json = true;
            break;
        case 'n':
            o.dry_run = true;
            break;
        default:
            return vb_opt_usage_error(g->prog, g->usage, "gc: unknown option '%s'",
                                      argv[optind - 1]);
        }
    }
    if (optind != argc - 1)
        return vb_opt_usage_error(g->prog, g->usage, "gc: one REPO is needed");
    struct vb_error err = {0};
    struct repo *r = virtrepo_open(g, argv[optind], &err);
    if (!r) {
        vb_error_log("%s", err.msg);
        return 1;
    }
    struct repo_gc_report rep;
    int rc = repo_gc_run(r, &o, &rep, &err);
    if (rc < 0)
        vb_error_log("gc: %s", err.msg);
    else if (json)
        rc = print_json(&rep);
    else
        print_text(&rep);
    repo_gc_report_free(&rep);
    repo_close(r);
    return rc < 0 ? 1 : 0;
}
