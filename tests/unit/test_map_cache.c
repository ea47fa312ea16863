/* virtmap's pure parts: the bounded decoded-block cache (hits, LRU eviction within the
 * budget, entries in use survive eviction, concurrent use) and the overlay's block map
 * (runs, partial marks at the disk's end, persistence and refusal of a foreign map). */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "block_cache.h"
#include "overlay.h"
#include "testutil.h"

static void *blob(size_t n, int v)
{
    void *p = malloc(n);
    memset(p, v, n);
    return p;
}

static void test_cache_basics(void)
{
    struct block_cache *bc = block_cache_new(4 * 1000);
    int owner;
    CHECK(block_cache_get(bc, &owner, 1) == NULL);
    struct block_cache_entry *e = block_cache_put(bc, &owner, 1, blob(1000, 1), 1000);
    CHECK(e && block_cache_len(e) == 1000 && ((const char *)block_cache_data(e))[999] == 1);
    /* a second put of the same key returns the first entry */
    struct block_cache_entry *e2 = block_cache_put(bc, &owner, 1, blob(1000, 9), 1000);
    CHECK(e2 == e && ((const char *)block_cache_data(e2))[0] == 1);
    block_cache_release(bc, e2);
    /* e is still referenced: filling the cache must not free it */
    for (uint64_t k = 2; k < 10; k++)
        block_cache_release(bc, block_cache_put(bc, &owner, k, blob(1000, (int)k), 1000));
    CHECK(((const char *)block_cache_data(e))[500] == 1);
    block_cache_release(bc, e);
    struct block_cache_stats st;
    block_cache_stats(bc, &st);
    CHECK_MSG(st.bytes <= 4000, "cache holds %zu bytes over its 4000 budget", st.bytes);
    CHECK(st.evictions >= 5);
    /* the most recent keys stayed, the oldest went */
    struct block_cache_entry *h = block_cache_get(bc, &owner, 9);
    CHECK(h && ((const char *)block_cache_data(h))[0] == 9);
    block_cache_release(bc, h);
    CHECK(block_cache_get(bc, &owner, 2) == NULL);
    int other;
    CHECK(block_cache_get(bc, &other, 9) == NULL); /* keys are per owner */
    block_cache_free(bc);
}

/* Entries larger than the budget (whole slices of linked-block frames): the cache still
 * keeps the last four, so a reader coming back to the slice it just read does not decode it
 * again; a fifth pushes out the oldest. */
static void test_cache_large_entries(void)
{
    struct block_cache *bc = block_cache_new(1000);
    int owner;
    for (uint64_t k = 1; k <= 4; k++)
        block_cache_release(bc, block_cache_put(bc, &owner, k, blob(5000, (int)k), 5000));
    struct block_cache_entry *h = block_cache_get(bc, &owner, 1);
    CHECK_MSG(h != NULL, "an entry above the budget was dropped on release");
    block_cache_release(bc, h);
    block_cache_release(bc, block_cache_put(bc, &owner, 5, blob(5000, 5), 5000));
    struct block_cache_stats st;
    block_cache_stats(bc, &st);
    CHECK(st.limit == 20000 && st.bytes == 20000 && st.entries == 4);
    CHECK(block_cache_get(bc, &owner, 2) == NULL); /* the least recently used went */
    for (uint64_t k = 1; k <= 5; k++) {
        if (k == 2)
            continue;
        h = block_cache_get(bc, &owner, k);
        CHECK_MSG(h && ((const char *)block_cache_data(h))[4999] == (char)k, "key %d", (int)k);
        block_cache_release(bc, h);
    }
    block_cache_free(bc);
}

/* A reservation (an entry being decoded) counts against the budget at once: older entries
 * make room for it before it exists, entries in use stay, and once it is returned and the
 * entry put, the cache holds the budget again. */
static void test_cache_reservation(void)
{
    struct block_cache *bc = block_cache_new(10000);
    int owner;
    for (uint64_t k = 1; k <= 10; k++)
        block_cache_release(bc, block_cache_put(bc, &owner, k, blob(1000, (int)k), 1000));
    struct block_cache_entry *held = block_cache_get(bc, &owner, 1); /* in use: stays */
    block_cache_reserve(bc, 2000);
    struct block_cache_stats st;
    block_cache_stats(bc, &st);
    CHECK_MSG(st.bytes == 8000 && st.entries == 8, "%zu bytes in %zu entries while 2000 reserved",
              st.bytes, st.entries);
    CHECK(block_cache_get(bc, &owner, 2) == NULL && block_cache_get(bc, &owner, 3) == NULL);
    struct block_cache_entry *h = block_cache_get(bc, &owner, 4);
    CHECK(h != NULL);
    block_cache_release(bc, h);
    block_cache_unreserve(bc, 2000);
    block_cache_release(bc, block_cache_put(bc, &owner, 11, blob(2000, 11), 2000));
    block_cache_stats(bc, &st);
    CHECK_MSG(st.bytes == 10000 && st.entries == 9 && st.limit == 10000,
              "%zu bytes in %zu entries, limit %zu", st.bytes, st.entries, st.limit);
    /* a failed decode returns its reservation: nothing more is evicted for it */
    block_cache_reserve(bc, 1000);
    block_cache_unreserve(bc, 1000);
    block_cache_release(bc, block_cache_put(bc, &owner, 12, blob(500, 12), 500));
    block_cache_stats(bc, &st);
    CHECK_MSG(st.entries == 9 && st.bytes == 9500, "%zu bytes in %zu entries", st.bytes,
              st.entries);
    CHECK(((const char *)block_cache_data(held))[999] == 1);
    block_cache_release(bc, held);
    block_cache_free(bc);
}

struct worker {
    struct block_cache *bc;
    int bad;
};

static void *hammer(void *arg)
{
    struct worker *w = arg;
    static int owner;
    for (int i = 0; i < 20000; i++) {
        /* each key four times in a row: hits do not depend on how the threads interleave
         * (cycling 64 keys through a 16-entry LRU alone would never hit) */
        uint64_t k = (uint64_t)(i / 4 * 7919) % 64;
        struct block_cache_entry *e = block_cache_get(w->bc, &owner, k);
        if (!e)
            e = block_cache_put(w->bc, &owner, k, blob(4096, (int)k), 4096);
        const unsigned char *d = block_cache_data(e);
        if (d[0] != k || d[4095] != k)
            w->bad++;
        block_cache_release(w->bc, e);
    }
    return NULL;
}

static void test_cache_threads(void)
{
    struct block_cache *bc = block_cache_new(16 * 4096);
    struct worker w[4];
    pthread_t t[4];
    for (int i = 0; i < 4; i++) {
        w[i] = (struct worker){.bc = bc};
        pthread_create(&t[i], NULL, hammer, &w[i]);
    }
    for (int i = 0; i < 4; i++) {
        pthread_join(t[i], NULL);
        CHECK(w[i].bad == 0);
    }
    struct block_cache_stats st;
    block_cache_stats(bc, &st);
    CHECK(st.bytes <= 16 * 4096 && st.hits > 0);
    block_cache_free(bc);
}

static void test_overlay(void)
{
    struct vb_error err = {0};
    const uint64_t size = 3 * 1024 * 1024 * 1024ull + 1536; /* 3 chunks + a partial block */
    struct overlay *o = overlay_open(test_tmpdir(), "vda", size, "id-1", &err);
    CHECK_MSG(o != NULL, "%s", err.msg);
    uint64_t run;
    CHECK(overlay_run(o, 0, size, &run) == OVERLAY_BASE && run == size);
    char buf[8192];
    memset(buf, 0xab, sizeof buf);
    CHECK(overlay_pwrite(o, 1ull << 30, 8192, buf, &err) == 0);
    CHECK(overlay_mark(o, 1ull << 30, 8192, OVERLAY_DATA, &err) == 0);
    CHECK(overlay_mark(o, size - 1536, 1536, OVERLAY_ZERO, &err) == 0); /* the last block */
    CHECK(overlay_run(o, 0, size, &run) == OVERLAY_BASE && run == 1ull << 30);
    CHECK(overlay_run(o, 1ull << 30, size, &run) == OVERLAY_DATA && run == 8192);
    CHECK(overlay_run(o, (1ull << 30) + 4096, 100, &run) == OVERLAY_DATA && run == 100);
    CHECK(overlay_run(o, (1ull << 30) + 8192, size, &run) == OVERLAY_BASE &&
          run == size - 1536 - (1ull << 30) - 8192);
    CHECK(overlay_run(o, size - 1000, size, &run) == OVERLAY_ZERO && run == 1000);
    uint64_t data, zero;
    overlay_counts(o, &data, &zero);
    CHECK(data == 2 && zero == 1);
    CHECK(overlay_close(o, &err) == 0);

    /* reopened: the map and the data are back */
    o = overlay_open(test_tmpdir(), "vda", size, "id-1", &err);
    CHECK_MSG(o != NULL, "%s", err.msg);
    if (o) {
        CHECK(overlay_run(o, 1ull << 30, size, &run) == OVERLAY_DATA && run == 8192);
        char back[8192] = {0};
        CHECK(overlay_pread(o, 1ull << 30, 8192, back, &err) == 0 && memcmp(back, buf, 8192) == 0);
        CHECK(overlay_close(o, &err) == 0);
    }
    /* another chain's overlay is refused with a message saying so */
    CHECK(overlay_open(test_tmpdir(), "vda", size, "id-2", &err) == NULL);
    CHECK(strstr(err.msg, "another chain") != NULL);
    CHECK(overlay_open(test_tmpdir(), "vda", size + 512, "id-1", &err) == NULL);
}

int main(void)
{
    test_cache_basics();
    test_cache_large_entries();
    test_cache_reservation();
    test_cache_threads();
    test_overlay();
    test_cleanup();
    fprintf(stderr, "%d checks, %d failures\n", test_checks, test_failures);
    return test_failures ? 1 : 0;
}
