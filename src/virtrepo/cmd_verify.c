/* virtrepo verify REPO [--snapshot ID] [-w N]: every chunk the snapshots use read whole,
 * decoded and its SHA-256 compared with its name (the checks of virtbackup-repository(5)),
 * on N threads, with progress; then which snapshots are damaged and by which chunks. */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>

#include "audit.h"
#include "log.h"
#include "options.h"
#include "progress.h"
#include "repo_session.h"

#define DEFAULT_WORKERS 4
#define MAX_WORKERS     64

struct verify_run {
    struct audit *a;
    atomic_size_t next;
    struct progress *progress;
};

static void verify_chunk(struct verify_run *v, struct audit_chunk *c)
{
    struct vb_error err = {0};
    void *data = NULL;
    size_t len = 0;
    if (repo_get_chunk(v->a->repo, &c->digest, &data, &len, &err) < 0)
        audit_chunk_bad_error(c, &err);
    else if (len != c->len)
        audit_chunk_bad(c, "holds %zu bytes, its index wants %" PRIu32, len, c->len);
    free(data);
    progress_add(v->progress, c->len);
}

static void *verify_worker(void *arg)
{
    struct verify_run *v = arg;
    for (;;) {
        size_t i = atomic_fetch_add(&v->next, 1);
        if (i >= v->a->nchunks)
            return NULL;
        verify_chunk(v, &v->a->chunks[i]);
    }
}

int cmd_verify(const struct virtrepo_global *g, int argc, char **argv)
{
    static const struct option opts[] = {
        {"snapshot", required_argument, NULL, 's'},
        {"worker", required_argument, NULL, 'w'},
        {0},
    };
    const char *only = NULL;
    long long workers = DEFAULT_WORKERS;
    int c;
    while ((c = getopt_long(argc, argv, "w:", opts, NULL)) != -1) {
        switch (c) {
        case 's':
            only = optarg;
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

    struct vb_error err = {0};
    struct audit a;
    struct repo *r = repo_open_session(argv[optind], "verify", NULL, &err);
    if (!r) {
        vb_error_log("%s", err.msg);
        return 1;
    }
    if (audit_load(&a, r, only, &err) < 0) {
        vb_error_log("%s", err.msg);
        audit_free(&a);
        repo_close(r);
        return 1;
    }
    struct verify_run v = {.a = &a};
    v.progress = progress_new("verify", a.bytes, progress_mode_for_stderr(g->quiet));
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
    size_t damaged = audit_report(&a, "verify");
    audit_free(&a);
    repo_close(r);
    return damaged ? 1 : 0;
}
