/* virtrepo verify REPO [--snapshot ID | --part K/N] [-w N]: every chunk the snapshots use (or
 * those of one range of chunk names) read whole, decoded and its SHA-256 compared with its
 * name (the checks of virtbackup-repository(5)), on N threads, with progress; then which
 * snapshots are damaged and by which chunks. A damaged chunk is moved to bad/, a chunk
 * stored again since is reported healed, and a run over a range (a whole run: range 1 of 1)
 * records it under scrub/ (virtrepo(1), VERIFY). An encrypted repository without its key:
 * the stored bytes only (virtrepo(1), KEYS). */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "audit.h"
#include "bad_chunks.h"
#include "log.h"
#include "options.h"
#include "progress.h"
#include "repo_session.h"
#include "scrub.h"

#define DEFAULT_WORKERS 4
#define MAX_WORKERS     64

struct verify_run {
    struct audit *a;
    atomic_size_t next;
    struct progress *progress;
    /* an encrypted repository without its key: stored bytes only (virtrepo(1), KEYS) */
    bool stored_only;
};

static void verify_chunk(struct verify_run *v, struct audit_chunk *c)
{
    struct vb_error err = {0};
    size_t len = 0;
    if (v->stored_only) {
        uint32_t stored_len = 0;
        if (repo_chunk_check_stored(v->a->repo, &c->digest, &stored_len, &err) < 0)
            audit_chunk_bad_error(c, &err);
        else if (stored_len != c->len)
            audit_chunk_bad(c, "holds %" PRIu32 " bytes, its index wants %" PRIu32, stored_len,
                            c->len);
        progress_add(v->progress, c->len);
        return;
    }
    int rc = repo_chunk_verify(v->a->repo, &c->digest, &len, &err);
    if (rc == 1 && repo_chunk_in_bad(v->a->repo, &c->digest)) {
        char bad[80];
        repo_bad_chunk_key(&c->digest, bad);
        audit_chunk_bad(c,
                        "missing: damaged, in %s (stored again by the next backup that "
                        "reads its content)",
                        bad);
    } else if (rc == 1) {
        audit_chunk_bad(c, "missing");
    } else if (rc != 0) {
        audit_chunk_bad_error(c, &err);
        c->damaged = rc == 2;
    } else if (len != c->len) {
        audit_chunk_bad(c, "holds %zu bytes, its index wants %" PRIu32, len, c->len);
    }
    progress_add(v->progress, c->len);
}

static void *verify_worker(void *arg)
{
    struct verify_run *v = arg;
    for (;;) {
        size_t i = atomic_fetch_add(&v->next, 1);
        if (i >= v->a->nchunks)
            return NULL;
        if (!v->a->chunks[i].skip)
            verify_chunk(v, &v->a->chunks[i]);
    }
}

/* Moves each damaged chunk to bad/, saying so in its line of the report. */
static void quarantine(struct audit *a)
{
    for (size_t i = 0; i < a->nchunks; i++) {
        struct audit_chunk *c = &a->chunks[i];
        if (!c->damaged)
            continue;
        struct vb_error err = {0};
        char bad[80], *why = NULL;
        repo_bad_chunk_key(&c->digest, bad);
        const char *was = c->why ? c->why : "damaged";
        int rc = repo_chunk_quarantine(a->repo, &c->digest, &err), n = 0;
        if (rc == 1) /* a writer stored it again meanwhile */
            c->bad = c->damaged = false;
        else if (rc == 0)
            n = asprintf(&why, "%s; moved to %s", was, bad);
        else
            n = asprintf(&why, "%s; not moved to %s: %s", was, bad, err.msg);
        if (n >= 0 && why) {
            free(c->why);
            c->why = why;
        }
    }
}

struct healed_walk {
    struct audit *a;
    unsigned k, n;
    size_t healed;
    char last[1100];
};

/* bad/<hh>/<name> of a chunk found sound in this run: stored again since it was moved, so
 * the copy in bad/ goes. */
static int heal_one(void *ctx, const char *key, const struct repo_stat *st, struct vb_error *err)
{
    (void)st;
    (void)err;
    struct healed_walk *w = ctx;
    snprintf(w->last, sizeof w->last, "%s", key);
    const char *name = strrchr(key, '/');
    repo_digest d;
    if (!name || repo_digest_parse(name + 1, &d) < 0 || !repo_scrub_in_range(&d, w->k, w->n))
        return 0;
    bool sound = false;
    for (size_t i = 0; i < w->a->nchunks && !sound; i++) {
        const struct audit_chunk *c = &w->a->chunks[i];
        sound = !c->skip && !c->bad && repo_digest_equal(&c->digest, &d);
    }
    if (!sound)
        return 0;
    struct vb_error e = {0};
    struct repo_store *s = w->a->repo->store;
    if (s->ops->del(s, key, &e) < 0)
        vb_warn("%s", e.msg);
    printf("chunk %s: healed (stored again since it was damaged); %s removed\n", name + 1, key);
    w->healed++;
    return 0;
}

static void report_healed(struct audit *a, unsigned k, unsigned n)
{
    struct healed_walk w = {.a = a, .k = k, .n = n};
    struct vb_error err = {0};
    struct repo_store *s = a->repo->store;
    int rc = 0;
    for (bool more = true, first = true; more && rc == 0; first = false) {
        char after[sizeof w.last];
        memcpy(after, w.last, sizeof after);
        rc = s->ops->list(s, "bad/", first ? NULL : after, 0, heal_one, &w, &more, &err);
    }
    if (rc < 0)
        vb_warn("%s: listing bad/: %s", a->repo->path, err.msg);
}

/* scrub/<n>/<k>: this run, the snapshots found sound in the range */
static int record(struct audit *a, unsigned k, unsigned n, time_t start, struct vb_error *err)
{
    struct repo_scrub_record rec = {.k = k, .n = n, .time = start};
    rec.snapshots = calloc(a->snaps.n ? a->snaps.n : 1, sizeof *rec.snapshots);
    if (!rec.snapshots)
        return vb_error_set(err, "out of memory");
    for (size_t i = 0; i < a->nchunks; i++) {
        const struct audit_chunk *c = &a->chunks[i];
        if (c->skip)
            continue;
        rec.chunks++;
        rec.bytes += c->len;
        rec.bad += c->bad;
    }
    for (size_t s = 0; s < a->snaps.n; s++)
        if (a->snaps.v[s].parsed && !audit_snapshot_damaged(a, s))
            snprintf(rec.snapshots[rec.nsnapshots++], sizeof rec.snapshots[0], "%s",
                     a->snaps.v[s].id);
    int rc = repo_scrub_put(a->repo, &rec, err);
    repo_scrub_record_free(&rec);
    return rc;
}

int cmd_verify(const struct virtrepo_global *g, int argc, char **argv)
{
    static const struct option opts[] = {
        {"snapshot", required_argument, NULL, 's'},
        {"part", required_argument, NULL, 'p'},
        {"worker", required_argument, NULL, 'w'},
        {0},
    };
    const char *only = NULL;
    unsigned part_k = 1, part_n = 1;
    bool part = false;
    long long workers = DEFAULT_WORKERS;
    struct vb_error err = {0};
    int c;
    while ((c = getopt_long(argc, argv, "w:", opts, NULL)) != -1) {
        switch (c) {
        case 's':
            only = optarg;
            break;
        case 'p':
            if (repo_scrub_part_parse(optarg, &part_k, &part_n, &err) < 0)
                return vb_opt_usage_error(g->prog, g->usage, "verify: --part: %s", err.msg);
            part = true;
            break;
        case 'w':
            if (!vb_opt_parse_number(optarg, &workers) || workers < 1 || workers > MAX_WORKERS)
                return vb_opt_usage_error(g->prog, g->usage, "bad -w '%s' (1 to %d)", optarg,
                                          MAX_WORKERS);
            break;
        default:
            return vb_opt_usage_error(g->prog, g->usage, "verify: unknown option '%s'",
                                      argv[optind - 1]);
        }
    }
    if (optind != argc - 1)
        return vb_opt_usage_error(g->prog, g->usage, "verify: one REPO is needed");
    if (only && part)
        return vb_opt_usage_error(g->prog, g->usage,
                                  "verify: --snapshot and --part exclude each other");

    struct audit a;
    struct repo *r = virtrepo_open_session(g, argv[optind], "verify", &err);
    if (!r) {
        vb_error_log("%s", err.msg);
        return 1;
    }
    /* the record's time: before the snapshots are listed, so a snapshot committed after it
     * is not in the record */
    time_t start = time(NULL);
    bool stored_only = repo_need_key(r, &err) < 0;
    if (stored_only)
        vb_info("%s: checking the stored bytes only (headers and checksums; the contents and "
                "their names need the key)",
                err.msg);
    if (audit_load(&a, r, only, &err) < 0) {
        vb_error_log("%s", err.msg);
        audit_free(&a);
        repo_close(r);
        return 1;
    }
    uint64_t bytes = 0;
    for (size_t i = 0; i < a.nchunks; i++) {
        a.chunks[i].skip = !repo_scrub_in_range(&a.chunks[i].digest, part_k, part_n);
        bytes += a.chunks[i].skip ? 0 : a.chunks[i].len;
    }
    struct verify_run v = {.a = &a, .stored_only = stored_only};
    v.progress = progress_new("verify", bytes, progress_mode_for_stderr(g->quiet));
    pthread_t t[MAX_WORKERS];
    int started = 0;
    for (; started < workers; started++) {
        int e = pthread_create(&t[started], NULL, verify_worker, &v);
        if (e) {
            if (started == 0)
                verify_worker(&v); /* no thread: do it here */
            break;
        }
    }
    for (int i = 0; i < started; i++)
        pthread_join(t[i], NULL);
    bool all_good = true;
    for (size_t i = 0; i < a.nchunks; i++)
        all_good = all_good && !a.chunks[i].bad;
    progress_finish(v.progress, all_good);
    progress_free(v.progress);
    quarantine(&a);
    if (!only)
        report_healed(&a, part_k, part_n);
    char what[64] = "verify";
    if (part) {
        unsigned lo, hi;
        repo_scrub_range(part_k, part_n, &lo, &hi);
        snprintf(what, sizeof what, "verify: part %u/%u (chunk names %02x..%02x)", part_k, part_n,
                 lo, hi - 1);
    }
    size_t damaged = audit_report(&a, what);
    int rc = damaged ? 1 : 0;
    if (!only && record(&a, part_k, part_n, start, &err) < 0) {
        vb_error_log("recording the scrub: %s", err.msg);
        rc = 1;
    }
    audit_free(&a);
    repo_close(r);
    return rc;
}
