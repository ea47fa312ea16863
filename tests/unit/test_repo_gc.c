/* Garbage collection (src/repo/gc*.c) and sessions (src/repo/repo_session.c) on synthetic
 * repositories: only chunks and indexes no manifest refers to are moved to the trash, a
 * reader finds a trashed chunk, a trash is emptied only once the sessions alive during its
 * move have ended, and a chunk trashed while a writer's session was alive and then used by
 * its manifest is moved back first; one gc at a time; a dry run changes nothing; a writer
 * whose session went stale puts no manifest. The protocol is in virtbackup-repository(5). */
#include "gc.h"
#include "repo.h"
#include "repo_session.h"
#include "testutil.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define UUID1 "0f9a6d1e-4c3b-4e8a-9d2f-1a2b3c4d5e6f"
#define CHUNK (64u << 10)

static struct repo *make_repo(const char *name)
{
    struct repo_config cfg;
    repo_config_default(&cfg);
    cfg.chunk_size = CHUNK;
    /* long enough that no session of the test goes stale while it runs */
    cfg.session_stale_seconds = 600;
    cfg.heartbeat_seconds = 1;
    struct vb_error err = {0};
    CHECK_MSG(repo_init(test_path(name), &cfg, &err) == 0, "%s", err.msg);
    struct repo *r = repo_open(test_path(name), NULL, &err);
    CHECK_MSG(r != NULL, "%s", err.msg);
    if (!r)
        exit(1);
    return r;
}

static void chunk_of(uint64_t seed, unsigned char *buf, repo_digest *d)
{
    test_fill(buf, CHUNK, seed);
    repo_digest_of(buf, CHUNK, d);
}

/* A snapshot of one disk whose chunks have the contents of seeds (put unless put is false:
 * a writer that found them present). */
static void put_snapshot(struct repo *r, const char *id, const uint64_t *seeds, size_t n, bool put)
{
    struct vb_error err = {0};
    unsigned char *buf = malloc(CHUNK);
    struct repo_index idx = {.virtual_size = (uint64_t)n * CHUNK, .chunk_size = CHUNK, .n = n};
    idx.digests = calloc(n, sizeof *idx.digests);
    for (size_t i = 0; i < n; i++) {
        chunk_of(seeds[i], buf, &idx.digests[i]);
        if (put)
            CHECK_MSG(repo_put_chunk(r, &idx.digests[i], buf, CHUNK, NULL, NULL, &err) == 0, "%s",
                      err.msg);
    }
    struct repo_manifest m;
    memset(&m, 0, sizeof m);
    snprintf(m.id, sizeof m.id, "%s", id);
    m.vm = strdup("vm1");
    snprintf(m.uuid, sizeof m.uuid, "%s", UUID1);
    strcpy(m.time, "2026-12-07T18:00:00+00:00");
    m.level = REPO_LEVEL_COPY;
    m.domain_xml = strdup("<domain type='kvm'><name>vm1</name></domain>");
    m.n_disks = 1;
    m.disks = calloc(1, sizeof *m.disks);
    m.disks[0].target = strdup("vda");
    m.disks[0].virtual_size = idx.virtual_size;
    m.disks[0].chunk_size = CHUNK;
    m.disks[0].format = strdup("raw");
    CHECK_MSG(repo_put_index(r, &idx, &m.disks[0].index, &err) == 0, "%s", err.msg);
    CHECK_MSG(repo_put_manifest(r, &m, &err) == 0, "%s", err.msg);
    repo_manifest_free(&m);
    free(idx.digests);
    free(buf);
}

/* Whether the object of chunk seed is under chunks/ (0), in a trash only (1) or gone (2). */
static int where(struct repo *r, uint64_t seed)
{
    unsigned char *buf = malloc(CHUNK);
    repo_digest d;
    chunk_of(seed, buf, &d);
    char key[80];
    repo_chunk_key(&d, key);
    struct repo_stat st;
    struct vb_error err = {0};
    int rc = 2;
    if (r->store->ops->head(r->store, key, &st, &err) == 0) {
        rc = 0;
    } else {
        /* a reader still gets it, every check made */
        void *raw = NULL;
        size_t len = 0;
        if (repo_get_chunk(r, &d, &raw, &len, &err) == 0) {
            CHECK(len == CHUNK && memcmp(raw, buf, CHUNK) == 0);
            rc = 1;
        }
        free(raw);
    }
    free(buf);
    return rc;
}

static int run_gc(struct repo *r, bool dry_run, struct repo_gc_report *rep)
{
    struct vb_error err = {0};
    struct repo_gc_options o = {.dry_run = dry_run};
    int rc = repo_gc_run(r, &o, rep, &err);
    CHECK_MSG(rc == 0, "%s", err.msg);
    return rc;
}

static void test_referenced_never_moved(void)
{
    struct repo *r = make_repo("mark");
    struct vb_error err = {0};
    const uint64_t s1[] = {1, 2, 3}, s2[] = {3, 4};
    put_snapshot(r, "20261207T180000Z-00000001", s1, 3, true);
    put_snapshot(r, "20261207T180001Z-00000002", s2, 2, true);
    CHECK(repo_delete_snapshot(r, UUID1, "20261207T180000Z-00000001", &err) == 0);

    /* a dry run says what a run moves and moves nothing */
    struct repo_gc_report rep;
    run_gc(r, true, &rep);
    CHECK(rep.moved_chunks == 2 && rep.moved_indexes == 1 && rep.snapshots == 1);
    repo_gc_report_free(&rep);
    CHECK(where(r, 1) == 0 && where(r, 2) == 0);

    run_gc(r, false, &rep);
    CHECK_MSG(rep.moved_chunks == 2 && rep.moved_indexes == 1, "moved %llu chunks, %llu indexes",
              (unsigned long long)rep.moved_chunks, (unsigned long long)rep.moved_indexes);
    CHECK(rep.n_alive == 0 && rep.gc_id[0] != '\0');
    repo_gc_report_free(&rep);
    /* the unique chunks of the forgotten snapshot are in the trash (a reader finds them),
     * the shared one and the other snapshot's stay */
    CHECK(where(r, 1) == 1 && where(r, 2) == 1);
    CHECK(where(r, 3) == 0 && where(r, 4) == 0);

    /* no session was alive during the move: the next run empties the trash */
    run_gc(r, false, &rep);
    CHECK(rep.n_trashes == 1 && rep.trashes[0].emptied && rep.trashes[0].freed_objects == 3 &&
          rep.trashes[0].rescued == 0);
    CHECK(rep.moved_chunks == 0);
    repo_gc_report_free(&rep);
    CHECK(where(r, 1) == 2 && where(r, 2) == 2);
    CHECK(where(r, 3) == 0 && where(r, 4) == 0);
    /* its own session ended with it */
    struct repo_session_info *s = NULL;
    size_t n = 9;
    CHECK(repo_sessions_list(r, false, &s, &n, &err) == 0 && n == 0);
    free(s);
    repo_close(r);
}

static void test_rescue(void)
{
    struct repo *r = make_repo("rescue");
    struct vb_error err = {0};
    const uint64_t s1[] = {10, 11}, s2[] = {11, 12};
    put_snapshot(r, "20261207T180000Z-00000001", s1, 2, true);
    CHECK(repo_delete_snapshot(r, UUID1, "20261207T180000Z-00000001", &err) == 0);

    /* a backup begins, finds chunks 11 present (so does not put them) and is slow */
    struct repo *w = repo_open_session(test_path("rescue"), "backup", UUID1, &err);
    CHECK_MSG(w != NULL, "%s", err.msg);
    unsigned char *buf = malloc(CHUNK);
    repo_digest d;
    chunk_of(12, buf, &d);
    CHECK(repo_put_chunk(w, &d, buf, CHUNK, NULL, NULL, &err) == 0);
    free(buf);

    struct repo_gc_report rep;
    run_gc(r, false, &rep);
    CHECK(rep.n_alive == 1 && strcmp(rep.alive[0], repo_session_id(w->session)) == 0);
    CHECK(rep.moved_chunks == 3); /* 10 and 11 (forgotten), 12 (no manifest yet) */
    repo_gc_report_free(&rep);
    CHECK(where(r, 10) == 1 && where(r, 11) == 1 && where(r, 12) == 1);

    /* the backup commits a snapshot using 11 and 12: readers find them in the trash */
    put_snapshot(w, "20261207T180002Z-00000002", s2, 2, false);
    CHECK(where(r, 11) == 1 && where(r, 12) == 1);

    /* while its session lives the trash waits for it */
    run_gc(r, false, &rep);
    CHECK(rep.n_trashes == 1 && !rep.trashes[0].emptied && rep.trashes[0].n_waiting == 1 &&
          strcmp(rep.trashes[0].waiting[0], repo_session_id(w->session)) == 0);
    repo_gc_report_free(&rep);
    CHECK(where(r, 11) == 1);
    repo_close(w);

    /* then 11 and 12 are moved back before the rest is deleted */
    run_gc(r, false, &rep);
    size_t emptied = 0;
    for (size_t i = 0; i < rep.n_trashes; i++)
        if (rep.trashes[i].emptied && rep.trashes[i].rescued == 2) {
            emptied++;
            CHECK(rep.trashes[i].freed_objects == 2); /* chunk 10 and the first index */
        }
    CHECK_MSG(emptied == 1, "%zu trashes emptied with 2 objects moved back", emptied);
    repo_gc_report_free(&rep);
    CHECK(where(r, 10) == 2);
    CHECK(where(r, 11) == 0 && where(r, 12) == 0);
    repo_close(r);
}

static void test_one_gc_at_a_time(void)
{
    struct repo *r = make_repo("single");
    struct vb_error err = {0};
    struct repo *other = repo_open_session(test_path("single"), "gc", NULL, &err);
    CHECK_MSG(other != NULL, "%s", err.msg);
    struct repo_gc_report rep;
    struct repo_gc_options o = {0};
    CHECK(repo_gc_run(r, &o, &rep, &err) == -1);
    CHECK_MSG(strstr(err.msg, "another gc is running") &&
                  strstr(err.msg, repo_session_id(other->session)),
              "%s", err.msg);
    repo_gc_report_free(&rep);
    repo_close(other);
    CHECK(run_gc(r, false, &rep) == 0);
    repo_gc_report_free(&rep);
    repo_close(r);
}

static void test_stale_writer(void)
{
    struct repo *r = make_repo("stale");
    struct vb_error err = {0};
    struct repo *w = repo_open_session(test_path("stale"), "backup", UUID1, &err);
    CHECK_MSG(w != NULL, "%s", err.msg);
    /* its session object removed, as gc removes one not refreshed for the stale interval */
    char key[64];
    snprintf(key, sizeof key, "sessions/%s", repo_session_id(w->session));
    CHECK(r->store->ops->del(r->store, key, &err) == 0);
    unsigned char *buf = malloc(CHUNK);
    repo_digest d;
    chunk_of(20, buf, &d);
    CHECK(repo_put_chunk(w, &d, buf, CHUNK, NULL, NULL, &err) == 0);
    free(buf);
    struct repo_manifest mm;
    memset(&mm, 0, sizeof mm);
    snprintf(mm.id, sizeof mm.id, "20261207T180000Z-00000001");
    mm.vm = strdup("vm1");
    snprintf(mm.uuid, sizeof mm.uuid, "%s", UUID1);
    strcpy(mm.time, "2026-12-07T18:00:00+00:00");
    mm.level = REPO_LEVEL_COPY;
    mm.domain_xml = strdup("<domain/>");
    CHECK(repo_put_manifest(w, &mm, &err) == -1);
    CHECK_MSG(strstr(err.msg, "session went stale") && strstr(err.msg, "nothing committed"), "%s",
              err.msg);
    repo_manifest_free(&mm);
    char mkey[REPO_KEY_MAX];
    repo_snapshot_key(UUID1, "20261207T180000Z-00000001", mkey);
    struct repo_stat st;
    CHECK(r->store->ops->head(r->store, mkey, &st, &err) == 1);
    repo_close(w);
    repo_close(r);
}

int main(void)
{
    test_referenced_never_moved();
    test_rescue();
    test_one_gc_at_a_time();
    test_stale_writer();
    return test_finish("test_repo_gc");
}
