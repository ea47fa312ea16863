/* virtbackup's extent map (src/backup/extents.c): block status of base:allocation and of the
 * dirty bitmap turned into DATA and ZERO extents, each run merged into the one before it when
 * they touch and are of one kind. Fixed cases for each level's rule, then random replies
 * against a model that classifies every block on its own. */
#include <libnbd.h>
#include <stdlib.h>
#include <string.h>

#include "backup.h"
#include "testutil.h"

#define K     1024u
#define DATA  0u                                      /* allocated */
#define HOLE  LIBNBD_STATE_HOLE                       /* unallocated, not known zero: read */
#define ZERO  (LIBNBD_STATE_HOLE | LIBNBD_STATE_ZERO) /* reads as zero */
#define CLEAN 0u
#define DIRTY 1u

struct want {
    uint64_t start, length;
    bool zero, synth;
};

static struct ctx_entries runs(size_t n, const uint64_t *len, const uint32_t *flags)
{
    struct ctx_entries c = {.n = n, .cap = n};
    c.len = malloc(n * sizeof *c.len);
    c.flags = malloc(n * sizeof *c.flags);
    memcpy(c.len, len, n * sizeof *len);
    memcpy(c.flags, flags, n * sizeof *flags);
    return c;
}

static void runs_free(struct ctx_entries *c)
{
    free(c->len);
    free(c->flags);
}

static void check_list(const char *what, const struct extent_list *l, const struct want *w,
                       size_t n)
{
    CHECK_MSG(l->n == n, "%s: %zu extents, want %zu", what, l->n, n);
    for (size_t i = 0; i < n && i < l->n; i++)
        CHECK_MSG(l->v[i].start == w[i].start && l->v[i].length == w[i].length &&
                      l->v[i].zero == w[i].zero && l->v[i].synth == w[i].synth,
                  "%s: extent %zu is %llu+%llu zero=%d synth=%d, want %llu+%llu zero=%d synth=%d",
                  what, i, (unsigned long long)l->v[i].start, (unsigned long long)l->v[i].length,
                  l->v[i].zero, l->v[i].synth, (unsigned long long)w[i].start,
                  (unsigned long long)w[i].length, w[i].zero, w[i].synth);
}

/* full/copy: base:allocation alone. A hole without the zero flag is read as DATA and merges
 * with the data around it; the window's end cuts the last run. */
static void test_full(void)
{
    struct ctx_entries alloc =
        runs(6, (uint64_t[]){64 * K, 64 * K, 4 * K, 256 * K, 4 * K, 1024 * K},
             (uint32_t[]){DATA, DATA, HOLE, ZERO, DATA, ZERO});
    struct extent_list l = {0};
    CHECK(extents_add_window(&l, 0, 400 * K, &alloc, NULL, false) == 0);
    check_list("full", &l,
               (struct want[]){{0, 132 * K, false, false},
                               {132 * K, 256 * K, true, false},
                               {388 * K, 4 * K, false, false},
                               {392 * K, 8 * K, true, false}},
               4);
    /* the next window continues the map: ZERO after ZERO merges, DATA after it does not */
    struct ctx_entries next = runs(2, (uint64_t[]){8 * K, 8 * K}, (uint32_t[]){ZERO, DATA});
    CHECK(extents_add_window(&l, 400 * K, 416 * K, &next, NULL, false) == 0);
    check_list("full, second window", &l,
               (struct want[]){{0, 132 * K, false, false},
                               {132 * K, 256 * K, true, false},
                               {388 * K, 4 * K, false, false},
                               {392 * K, 16 * K, true, false},
                               {408 * K, 8 * K, false, false}},
               5);
    /* compat_zeroes only concerns incrementals: a full keeps its ZERO extents */
    extent_list_free(&l);
    CHECK(extents_add_window(&l, 0, 400 * K, &alloc, NULL, true) == 0);
    CHECK(l.n == 4 && l.v[1].zero && !l.v[1].synth);
    extent_list_free(&l);
    runs_free(&alloc);
    runs_free(&next);
}

/* inc/diff: only dirty ranges; split by base:allocation into DATA and ZERO (exact), or zeroed
 * ranges as synthesised DATA (compat_zeroes), or without base:allocation all DATA (no sparse
 * detection). The bitmap's run boundaries fall inside allocation runs and the other way. */
static void test_incremental(void)
{
    struct ctx_entries dirty = runs(5, (uint64_t[]){100 * K, 50 * K, 10 * K, 20 * K, 20 * K},
                                    (uint32_t[]){CLEAN, DIRTY, CLEAN, DIRTY, DIRTY});
    struct ctx_entries alloc = runs(2, (uint64_t[]){120 * K, 80 * K}, (uint32_t[]){DATA, ZERO});
    struct extent_list l = {0};
    CHECK(extents_add_window(&l, 0, 200 * K, &alloc, &dirty, false) == 0);
    check_list("inc", &l,
               (struct want[]){{100 * K, 20 * K, false, false},
                               {120 * K, 30 * K, true, false},
                               {160 * K, 40 * K, true, false}},
               3);
    extent_list_free(&l);
    CHECK(extents_add_window(&l, 0, 200 * K, &alloc, &dirty, true) == 0);
    check_list("inc --compat-zeroes", &l,
               (struct want[]){{100 * K, 20 * K, false, false},
                               {120 * K, 30 * K, false, true},
                               {160 * K, 40 * K, false, true}},
               3);
    extent_list_free(&l);
    CHECK(extents_add_window(&l, 0, 200 * K, NULL, &dirty, false) == 0);
    check_list("inc, no sparse detection", &l,
               (struct want[]){{100 * K, 50 * K, false, false}, {160 * K, 40 * K, false, false}},
               2);
    extent_list_free(&l);
    /* a window that starts later: the runs are relative to the window's start */
    CHECK(extents_add_window(&l, 1000 * K, 1200 * K, &alloc, &dirty, false) == 0);
    CHECK(l.n == 3 && l.v[0].start == 1100 * K && l.v[2].start + l.v[2].length == 1200 * K);
    extent_list_free(&l);
    runs_free(&dirty);
    runs_free(&alloc);
}

static uint64_t rnd(uint64_t *s)
{
    *s = *s * 6364136223846793005ull + 1442695040888963407ull;
    return *s >> 33;
}

/* Random runs (in 512-byte blocks) of both contexts over random windows, against a model
 * that classifies each block: 0 not in the map, 1 DATA, 2 ZERO, 3 synthesised DATA. The map
 * must be ascending, cover exactly the blocks in it with their kind, and be merged fully. */
static void test_random(uint64_t seed)
{
    enum { BLOCKS = 4096, B = 512 };
    static uint8_t model[BLOCKS];
    static uint32_t aflag[BLOCKS], dflag[BLOCKS];
    uint64_t s = seed;
    bool use_alloc = rnd(&s) % 4 != 0, use_dirty = rnd(&s) % 3 != 0, compat = rnd(&s) % 2;
    for (size_t b = 0; b < BLOCKS;) { /* runs of random length and kind */
        size_t len = 1 + rnd(&s) % 64;
        uint32_t a = (uint32_t[]){DATA, HOLE, ZERO}[rnd(&s) % 3];
        for (size_t k = 0; k < len && b < BLOCKS; k++, b++)
            aflag[b] = a;
    }
    for (size_t b = 0; b < BLOCKS;) {
        size_t len = 1 + rnd(&s) % 64;
        uint32_t d = (uint32_t)(rnd(&s) % 2);
        for (size_t k = 0; k < len && b < BLOCKS; k++, b++)
            dflag[b] = d;
    }
    for (size_t b = 0; b < BLOCKS; b++) {
        bool in = !use_dirty || dflag[b];
        bool zero = use_alloc && aflag[b] == ZERO;
        model[b] = !in ? 0 : !zero ? 1 : (use_dirty && compat) ? 3 : 2;
    }
    struct extent_list l = {0};
    for (size_t w0 = 0; w0 < BLOCKS;) { /* windows; each context's runs split at random */
        size_t w1 = w0 + 1 + rnd(&s) % 1024;
        if (w1 > BLOCKS)
            w1 = BLOCKS;
        struct ctx_entries ctx[2] = {{0}, {0}};
        for (int c = 0; c < 2; c++) {
            const uint32_t *flags = c == 0 ? aflag : dflag;
            ctx[c].len = malloc(BLOCKS * sizeof *ctx[c].len);
            ctx[c].flags = malloc(BLOCKS * sizeof *ctx[c].flags);
            /* a server may describe beyond the window: up to its end or a bit past */
            size_t end = w1 + rnd(&s) % 8;
            if (end > BLOCKS)
                end = BLOCKS;
            for (size_t b = w0; b < end;) {
                size_t e = b + 1;
                while (e < end && flags[e] == flags[b] && rnd(&s) % 16)
                    e++;
                ctx[c].len[ctx[c].n] = (e - b) * B;
                ctx[c].flags[ctx[c].n++] = flags[b];
                b = e;
            }
        }
        CHECK(extents_add_window(&l, w0 * B, w1 * B, use_alloc ? &ctx[0] : NULL,
                                 use_dirty ? &ctx[1] : NULL, compat) == 0);
        for (int c = 0; c < 2; c++)
            runs_free(&ctx[c]);
        w0 = w1;
    }
    static uint8_t got[BLOCKS];
    memset(got, 0, sizeof got);
    int bad = 0;
    for (size_t i = 0; i < l.n; i++) {
        const struct extent *e = &l.v[i];
        uint8_t kind = e->zero ? 2 : e->synth ? 3 : 1;
        bad += e->length == 0 || e->start % B || e->length % B;
        if (i > 0) {
            const struct extent *p = &l.v[i - 1];
            bad += p->start + p->length > e->start; /* ascending, no overlap */
            bad += p->start + p->length == e->start && p->zero == e->zero &&
                   p->synth == e->synth; /* not merged */
        }
        for (uint64_t b = e->start / B; b < (e->start + e->length) / B && b < BLOCKS; b++)
            got[b] = kind;
        bad += (e->start + e->length) / B > BLOCKS;
    }
    CHECK_MSG(bad == 0, "seed %llu: %d malformed extents", (unsigned long long)seed, bad);
    CHECK_MSG(memcmp(got, model, BLOCKS) == 0, "seed %llu: the map differs from the model",
              (unsigned long long)seed);
    extent_list_free(&l);
}

int main(void)
{
    test_full();
    test_incremental();
    for (uint64_t seed = 1; seed <= 300; seed++)
        test_random(seed);
    return test_finish("test_extents");
}
