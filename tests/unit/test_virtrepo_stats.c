/* The figures of virtrepo stats (src/virtrepo/stats_tally.c; virtrepo(1), STATS): chunks
 * named by one VM or by several (each VM counts a chunk once however often its snapshots
 * name it), logical and non-zero bytes, the chunks only one VM uses and their stored bytes,
 * objects no snapshot names, chunks named but missing, and both ratios (0 for an empty
 * repository, never a division by zero); enough chunks to grow the table several times. */
#include <string.h>

#include "stats.h"
#include "testutil.h"

static repo_digest digest(unsigned n)
{
    repo_digest d;
    memset(&d, 0, sizeof d);
    /* the table hashes the first bytes: spread them, and keep the rest unique too */
    d.b[0] = (unsigned char)(n * 37u);
    d.b[1] = (unsigned char)(n >> 8);
    d.b[2] = (unsigned char)(n >> 16);
    d.b[31] = 1;
    return d;
}

static int ref(struct stats *s, long vm, unsigned n, uint32_t len)
{
    repo_digest d = digest(n);
    return stats_chunk_ref(s, vm, &d, len);
}

static void object(struct stats *s, unsigned n, uint64_t size)
{
    repo_digest d = digest(n);
    stats_chunk_object(s, &d, size);
}

static void empty_repository(void)
{
    struct stats s = {0};
    stats_finish(&s);
    CHECK(s.t.snapshots == 0 && s.t.stored == 0 && s.t.chunks_used == 0);
    CHECK(s.t.dedup_ratio == 0.0 && s.t.compression_ratio == 0.0);
    stats_free(&s);
}

static void three_vms(void)
{
    struct stats s = {0};
    const uint32_t M = 1048576;
    /* a: two snapshots of one disk of 16 MiB: chunk 1 four times, chunk 2 once, each time */
    long a = stats_vm(&s, "aaaaaaaa-0000-4000-8000-000000000001", "old-a");
    CHECK(a == 0);
    for (int snap = 0; snap < 2; snap++) {
        stats_snapshot(&s, a, 16 * (uint64_t)M);
        for (int k = 0; k < 4; k++)
            CHECK(ref(&s, a, 1, M) == 0);
        CHECK(ref(&s, a, 2, M) == 0);
    }
    /* the newest snapshot's name is the VM's */
    CHECK(stats_vm(&s, "aaaaaaaa-0000-4000-8000-000000000001", "a") == a);
    /* b: a clone of a plus chunk 3, and a blob of 100 bytes (chunk 6) */
    long b = stats_vm(&s, "bbbbbbbb-0000-4000-8000-000000000002", "b");
    stats_snapshot(&s, b, 16 * (uint64_t)M + 100);
    for (int k = 0; k < 4; k++)
        CHECK(ref(&s, b, 1, M) == 0);
    CHECK(ref(&s, b, 2, M) == 0);
    CHECK(ref(&s, b, 3, M) == 0);
    CHECK(ref(&s, b, 6, 100) == 0);
    /* c: data of its own, chunks 4 (twice) and 5; chunk 5 is missing from the store */
    long c = stats_vm(&s, "cccccccc-0000-4000-8000-000000000003", "c");
    stats_snapshot(&s, c, 8 * (uint64_t)M);
    CHECK(ref(&s, c, 4, M) == 0);
    CHECK(ref(&s, c, 4, M) == 0);
    CHECK(ref(&s, c, 5, M) == 0);

    /* the store: chunks 1-4 and 6 and an unused one (7), 2 indexes, 4 manifests */
    const uint64_t stored[] = {0, 1000, 2000, 3000, 4000, 0, 60, 7000};
    for (unsigned n = 1; n <= 7; n++)
        if (n != 5)
            object(&s, n, stored[n]);
    stats_index_object(&s, 300);
    stats_index_object(&s, 200);
    for (int k = 0; k < 4; k++)
        stats_manifest_object(&s, 50);
    stats_finish(&s);

    CHECK(s.nvms == 3 && strcmp(s.vms[a].name, "a") == 0);
    CHECK(s.vms[a].snapshots == 2 && s.vms[a].logical == 32 * (uint64_t)M);
    CHECK(s.vms[a].nonzero == 10 * (uint64_t)M && s.vms[a].chunks == 2);
    CHECK(s.vms[a].excl_chunks == 0 && s.vms[a].excl_raw == 0 && s.vms[a].excl_stored == 0);
    CHECK(s.vms[b].logical == 16 * (uint64_t)M + 100 && s.vms[b].chunks == 4);
    CHECK(s.vms[b].nonzero == 6 * (uint64_t)M + 100);
    CHECK(s.vms[b].excl_chunks == 2 && s.vms[b].excl_raw == M + 100);
    CHECK(s.vms[b].excl_stored == 3000 + 60);
    CHECK(s.vms[c].chunks == 2 && s.vms[c].nonzero == 3 * (uint64_t)M);
    CHECK(s.vms[c].excl_chunks == 2 && s.vms[c].excl_raw == 2 * (uint64_t)M);
    CHECK(s.vms[c].excl_stored == 4000); /* chunk 5 is not there */

    const struct stats_totals *t = &s.t;
    CHECK(t->snapshots == 4 && t->logical == 56 * (uint64_t)M + 100);
    CHECK(t->nonzero == 19 * (uint64_t)M + 100);
    CHECK(t->chunks_used == 6 && t->used_raw == 5 * (uint64_t)M + 100);
    CHECK(t->used_stored == 1000 + 2000 + 3000 + 4000 + 60);
    CHECK(t->chunks_missing == 1);
    CHECK(t->chunk_objects == 6 && t->chunk_bytes == 1000 + 2000 + 3000 + 4000 + 60 + 7000);
    CHECK(t->chunks_unused == 1 && t->unused_bytes == 7000);
    CHECK(t->index_objects == 2 && t->index_bytes == 500);
    CHECK(t->manifest_objects == 4 && t->manifest_bytes == 200);
    CHECK(t->stored == t->chunk_bytes + 500 + 200);
    CHECK(t->dedup_ratio == (double)(19 * (uint64_t)M + 100) / (double)(5 * (uint64_t)M + 100));
    CHECK(t->compression_ratio == (double)(5 * (uint64_t)M + 100) / 10060.0);
    stats_free(&s);
}

/* 5000 chunks of one VM, then every other one also named by a second VM. */
static void many_chunks(void)
{
    struct stats s = {0};
    long x = stats_vm(&s, "dddddddd-0000-4000-8000-000000000004", "x");
    long y = stats_vm(&s, "eeeeeeee-0000-4000-8000-000000000005", "y");
    stats_snapshot(&s, x, 5000);
    for (unsigned n = 0; n < 5000; n++)
        CHECK(ref(&s, x, n, 1) == 0);
    stats_snapshot(&s, y, 2500);
    for (unsigned n = 0; n < 5000; n += 2)
        CHECK(ref(&s, y, n, 1) == 0);
    for (unsigned n = 0; n < 5000; n++)
        object(&s, n, 10);
    stats_finish(&s);
    CHECK(s.nchunks == 5000 && s.t.chunks_unused == 0 && s.t.chunks_missing == 0);
    CHECK(s.vms[x].chunks == 5000 && s.vms[x].excl_chunks == 2500);
    CHECK(s.vms[y].chunks == 2500 && s.vms[y].excl_chunks == 0);
    CHECK(s.vms[x].excl_stored == 25000 && s.t.dedup_ratio == 7500.0 / 5000.0);
    stats_free(&s);
}

int main(void)
{
    empty_repository();
    three_vms();
    many_chunks();
    return test_finish("test_virtrepo_stats");
}
