/* Scrubbing (src/repo/scrub.c, bad_chunks.c; virtbackup-repository(5) SCRUB RECORDS and BAD
 * CHUNKS): the N ranges of verify --part cover the first bytes 00..ff once each, contiguous
 * and none empty; K/N parsing; a record's JSON round trip; when a snapshot was last covered;
 * a damaged chunk moved to bad/ is missing for readers (which name bad/), absent for writers
 * (put again: healed) and the move refuses a chunk that is sound again. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "bad_chunks.h"
#include "repo.h"
#include "scrub.h"
#include "testutil.h"

static void test_ranges(void)
{
    for (unsigned n = 1; n <= REPO_SCRUB_MAX_PARTS; n++) {
        unsigned expect = 0;
        for (unsigned k = 1; k <= n; k++) {
            unsigned lo, hi;
            repo_scrub_range(k, n, &lo, &hi);
            CHECK_MSG(lo == expect && hi > lo, "range %u/%u is %u..%u, want from %u", k, n, lo, hi,
                      expect);
            expect = hi;
        }
        CHECK_MSG(expect == 256, "the ranges of %u end at %u", n, expect);
    }
    unsigned lo, hi;
    repo_scrub_range(2, 4, &lo, &hi);
    CHECK(lo == 0x40 && hi == 0x80);
    repo_scrub_range(3, 3, &lo, &hi);
    CHECK(lo == 170 && hi == 256);
    /* each first byte in exactly one range of 7 */
    for (unsigned b = 0; b < 256; b++) {
        repo_digest d = {{0}};
        d.b[0] = (unsigned char)b;
        unsigned in = 0;
        for (unsigned k = 1; k <= 7; k++)
            in += repo_scrub_in_range(&d, k, 7);
        CHECK_MSG(in == 1, "byte %02x in %u ranges of 7", b, in);
    }
}

static void test_parse(void)
{
    struct vb_error err = {0};
    unsigned k = 0, n = 0;
    CHECK(repo_scrub_part_parse("3/7", &k, &n, &err) == 0 && k == 3 && n == 7);
    CHECK(repo_scrub_part_parse("1/1", &k, &n, &err) == 0 && k == 1 && n == 1);
    CHECK(repo_scrub_part_parse("256/256", &k, &n, &err) == 0 && k == 256 && n == 256);
    const char *bad[] = {"0/4", "5/4", "1/257", "1/0",  "/4",   "1/",
                         "1",   "a/4", "1/4x",  "-1/4", " 1/4", ""};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++)
        CHECK_MSG(repo_scrub_part_parse(bad[i], &k, &n, &err) == -1, "\"%s\" accepted", bad[i]);
}

static struct repo_scrub_record rec(unsigned k, unsigned n, time_t t, const char *ids)
{
    struct repo_scrub_record r = {.k = k, .n = n, .time = t};
    r.snapshots = calloc(8, sizeof *r.snapshots);
    for (const char *p = ids; *p; p++)
        snprintf(r.snapshots[r.nsnapshots++], sizeof r.snapshots[0], "%c", *p);
    return r;
}

static void test_json(void)
{
    struct vb_error err = {0};
    struct repo_scrub_record a = rec(2, 4, 1765150000, "cab");
    a.chunks = 12;
    a.bytes = 12345;
    a.bad = 1;
    char *text = repo_scrub_to_json(&a, &err);
    CHECK(text != NULL);
    struct repo_scrub_record b;
    CHECK_MSG(repo_scrub_parse(text, strlen(text), &b, &err) == 0, "%s", err.msg);
    CHECK(b.k == 2 && b.n == 4 && b.time == a.time && b.chunks == 12 && b.bytes == 12345 &&
          b.bad == 1 && b.nsnapshots == 3);
    CHECK(b.nsnapshots == 3 && strcmp(b.snapshots[0], "a") == 0 &&
          strcmp(b.snapshots[2], "c") == 0);
    repo_scrub_record_free(&b);
    free(text);
    const char *wrong = "{\"format\":\"virtbackup-scrub\",\"version\":1,\"part\":5,\"of\":4,"
                        "\"time\":\"2026-12-08T01:00:00Z\",\"chunks\":0,\"bytes\":0,\"bad\":0,"
                        "\"snapshots\":[]}";
    CHECK(repo_scrub_parse(wrong, strlen(wrong), &b, &err) == -1);
    repo_scrub_record_free(&a);
}

static void test_coverage(void)
{
    struct repo_scrub_records recs = {0};
    struct repo_scrub_record v[] = {
        rec(1, 2, 100, "ab"),  rec(2, 2, 200, "abc"), /* N=2: a, b at 100; c not in 1/2 */
        rec(1, 1, 50, "abcd"),                        /* a whole run: all at 50 */
        rec(1, 3, 300, "a"),   rec(2, 3, 310, "a"),   /* N=3 incomplete */
    };
    recs.v = v;
    recs.n = recs.cap = sizeof v / sizeof *v;
    time_t t = 0;
    CHECK(repo_scrub_coverage(&recs, "a", &t) == 0 && t == 100);
    CHECK(repo_scrub_coverage(&recs, "b", &t) == 0 && t == 100);
    CHECK(repo_scrub_coverage(&recs, "c", &t) == 0 && t == 50);
    CHECK(repo_scrub_coverage(&recs, "d", &t) == 0 && t == 50);
    CHECK(repo_scrub_coverage(&recs, "e", &t) == 1);
    /* the third part of 3 completes N=3 for a: its oldest record, 300 */
    struct repo_scrub_record w[6];
    memcpy(w, v, sizeof v);
    w[5] = rec(3, 3, 320, "a");
    recs.v = w;
    recs.n = 6;
    CHECK(repo_scrub_coverage(&recs, "a", &t) == 0 && t == 300);
    repo_scrub_record_free(&w[5]);
    for (size_t i = 0; i < sizeof v / sizeof *v; i++)
        repo_scrub_record_free(&v[i]);
}

static void flip_byte(const char *path, long off)
{
    FILE *f = fopen(path, "r+b");
    CHECK(f != NULL);
    if (!f)
        return;
    fseek(f, off, SEEK_SET);
    int c = fgetc(f);
    fseek(f, off, SEEK_SET);
    fputc(c ^ 0xff, f);
    fclose(f);
}

static void test_bad_chunks(void)
{
    struct vb_error err = {0};
    struct repo_config cfg;
    repo_config_default(&cfg);
    cfg.compression = REPO_COMP_NONE;
    cfg.compression_level = 0;
    const char *dir = test_path("repo");
    CHECK_MSG(repo_init(dir, &cfg, &err) == 0, "%s", err.msg);
    struct repo *r = repo_open(dir, NULL, &err);
    CHECK(r != NULL);
    if (!r)
        return;
    char data[5000];
    test_fill(data, sizeof data, 7);
    repo_digest d;
    repo_digest_of(data, sizeof data, &d);
    CHECK(repo_put_chunk(r, &d, data, sizeof data, NULL, NULL, &err) == 0);
    size_t len = 0;
    CHECK(repo_chunk_verify(r, &d, &len, &err) == 0 && len == sizeof data);
    /* a sound chunk is not moved */
    CHECK(repo_chunk_quarantine(r, &d, &err) == 1);

    char key[80], path[4200];
    repo_chunk_key(&d, key);
    snprintf(path, sizeof path, "%s/%s", dir, key);
    flip_byte(path, 24 + 100); /* a payload byte: the header still checks out */
    CHECK(repo_chunk_check(r, &d, NULL, &err) == 0);
    CHECK(repo_chunk_verify(r, &d, &len, &err) == 2);
    CHECK_MSG(repo_chunk_quarantine(r, &d, &err) == 0, "%s", err.msg);
    struct stat st;
    CHECK(stat(path, &st) < 0);
    CHECK(repo_chunk_in_bad(r, &d) == 1);
    CHECK(repo_chunk_verify(r, &d, &len, &err) == 1);
    void *raw = NULL;
    CHECK(repo_get_chunk(r, &d, &raw, &len, &err) == -1);
    CHECK_MSG(strstr(err.msg, "moved it to") && strstr(err.msg, "/bad/"), "%s", err.msg);
    free(raw);
    raw = NULL;
    /* a writer finds it absent and puts it again: healed */
    bool was_new = false;
    CHECK(repo_put_chunk(r, &d, data, sizeof data, &was_new, NULL, &err) == 0 && was_new);
    CHECK(repo_get_chunk(r, &d, &raw, &len, &err) == 0 && len == sizeof data &&
          memcmp(raw, data, len) == 0);
    free(raw);
    repo_close(r);
}

int main(void)
{
    test_ranges();
    test_parse();
    test_json();
    test_coverage();
    test_bad_chunks();
    test_cleanup();
    return test_finish("test_repo_scrub");
}
