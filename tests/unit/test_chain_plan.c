/* The chain planner (chain_plan_build in src/stream/chain.c; the rules: virtbackup-stream(5)):
 * files ordered by their metadata whatever order they come in, a new base restarting the
 * chain, the newest diff after the last checkpoint, --until points, and broken chains refused
 * with the file and the checkpoint named. */
#include <stdlib.h>
#include <string.h>

#include "chain.h"
#include "testutil.h"

struct spec {
    const char *path, *cp, *parent, *date;
    bool inc;
};

/* Classifies and plans the files in the order given; the plan as "name name ...", or the
 * error message. */
static int plan(const struct spec *s, size_t n, const size_t *perm, const char *until, char *out,
                size_t outlen)
{
    struct chain_file f[16];
    struct vb_error err = {0};
    out[0] = '\0';
    for (size_t i = 0; i < n; i++) {
        const struct spec *x = &s[perm ? perm[i] : i];
        memset(&f[i], 0, sizeof f[i]);
        f[i].path = x->path;
        stream_meta_init(&f[i].meta);
        strcpy(f[i].meta.disk_name, "vda");
        strcpy(f[i].meta.checkpoint_name, x->cp);
        strcpy(f[i].meta.parent_checkpoint, x->parent);
        strcpy(f[i].meta.date, x->date ? x->date : "2026-01-01T00:00:00");
        f[i].meta.incremental = x->inc;
        if (chain_classify(&f[i], &err) < 0) {
            snprintf(out, outlen, "%s", err.msg);
            return -1;
        }
    }
    struct chain_plan p;
    if (chain_plan_build(f, n, until, &p, &err) < 0) {
        snprintf(out, outlen, "%s", err.msg);
        return -1;
    }
    for (size_t k = 0; k < p.n; k++) {
        strncat(out, k ? " " : "", outlen - strlen(out) - 1);
        strncat(out, f[p.order[k]].path, outlen - strlen(out) - 1);
    }
    chain_plan_free(&p);
    return 0;
}

static void expect(const struct spec *s, size_t n, const char *until, const char *want)
{
    char got[2048];
    CHECK_MSG(plan(s, n, NULL, until, got, sizeof got) == 0 && strcmp(got, want) == 0,
              "until %s: got \"%s\", want \"%s\"", until ? until : "(latest)", got, want);
}

static void expect_error(const struct spec *s, size_t n, const char *until, const char *msg)
{
    char got[2048];
    CHECK_MSG(plan(s, n, NULL, until, got, sizeof got) < 0 && strstr(got, msg),
              "until %s: got \"%s\", want an error with \"%s\"", until ? until : "(latest)", got,
              msg);
}

#define N(a) (sizeof(a) / sizeof(a)[0])

/* full, inc 1, a lost-bitmap new base 2, inc 3, inc 4, diffs after 4 and a stale one after 3 */
static const struct spec chain[] = {
    {"vda.full.data", "virtnbdbackup.0", "", NULL, false},
    {"vda.inc.virtnbdbackup.1.data", "virtnbdbackup.1", "virtnbdbackup.0", NULL, true},
    {"vda.inc.virtnbdbackup.2.data", "virtnbdbackup.2", "", NULL, false},
    {"vda.inc.virtnbdbackup.3.data", "virtnbdbackup.3", "virtnbdbackup.2", NULL, true},
    {"vda.diff.500.data", "virtnbdbackup.4", "virtnbdbackup.3", NULL, true},
    {"vda.inc.virtnbdbackup.4.data", "virtnbdbackup.4", "virtnbdbackup.3", NULL, true},
    {"vda.diff.900.data", "virtnbdbackup.5", "virtnbdbackup.4", NULL, true},
    {"vda.diff.800.data", "virtnbdbackup.5", "virtnbdbackup.4", NULL, true},
};

static void test_points(void)
{
    /* latest: from the last base, every inc, the newest diff taken after the last inc */
    expect(chain, N(chain), NULL,
           "vda.inc.virtnbdbackup.2.data vda.inc.virtnbdbackup.3.data "
           "vda.inc.virtnbdbackup.4.data vda.diff.900.data");
    /* --until: the base of that point and the incs up to it, never a diff */
    expect(chain, N(chain), "virtnbdbackup.0", "vda.full.data");
    expect(chain, N(chain), "virtnbdbackup.1", "vda.full.data vda.inc.virtnbdbackup.1.data");
    expect(chain, N(chain), "virtnbdbackup.2", "vda.inc.virtnbdbackup.2.data");
    expect(chain, N(chain), "virtnbdbackup.3",
           "vda.inc.virtnbdbackup.2.data vda.inc.virtnbdbackup.3.data");
    expect(chain, N(chain), "virtnbdbackup.4",
           "vda.inc.virtnbdbackup.2.data vda.inc.virtnbdbackup.3.data "
           "vda.inc.virtnbdbackup.4.data");
    /* a point no file holds (a diff's checkpoint is none): the chain's points listed */
    expect_error(chain, N(chain), "virtnbdbackup.5",
                 "no backup of checkpoint virtnbdbackup.5 in the chain; the chain holds: "
                 "virtnbdbackup.0, virtnbdbackup.1, virtnbdbackup.2, virtnbdbackup.3, "
                 "virtnbdbackup.4");
    /* without the diffs after inc 4, the stale diff after inc 3 is not taken */
    expect(chain, 6, NULL,
           "vda.inc.virtnbdbackup.2.data vda.inc.virtnbdbackup.3.data "
           "vda.inc.virtnbdbackup.4.data");
    /* a copy is a base; diffs of equal time: the later META date wins */
    static const struct spec copy[] = {
        {"vda.copy.data", "virtnbdbackup.0", "", NULL, false},
        {"a/vda.diff.7.data", "virtnbdbackup.1", "virtnbdbackup.0", "2026-01-01T10:00:01", true},
        {"b/vda.diff.7.data", "virtnbdbackup.1", "virtnbdbackup.0", "2026-01-01T10:00:02", true},
    };
    expect(copy, N(copy), NULL, "vda.copy.data b/vda.diff.7.data");
}

/* The plan depends on the metadata only: every order of the input gives the same plan. */
static void test_any_order(void)
{
    uint64_t s = 7;
    size_t perm[N(chain)];
    char want[2048], got[2048];
    CHECK(plan(chain, N(chain), NULL, NULL, want, sizeof want) == 0);
    for (int round = 0; round < 200; round++) {
        for (size_t i = 0; i < N(chain); i++)
            perm[i] = i;
        for (size_t i = N(chain) - 1; i > 0; i--) {
            s = s * 6364136223846793005ull + 1442695040888963407ull;
            size_t j = (size_t)(s >> 33) % (i + 1), t = perm[i];
            perm[i] = perm[j];
            perm[j] = t;
        }
        CHECK_MSG(plan(chain, N(chain), perm, NULL, got, sizeof got) == 0 && strcmp(got, want) == 0,
                  "round %d: %s", round, got);
    }
}

static void test_broken(void)
{
    /* a missing middle incremental */
    static const struct spec gap[] = {
        {"vda.full.data", "virtnbdbackup.0", "", NULL, false},
        {"vda.inc.virtnbdbackup.1.data", "virtnbdbackup.1", "virtnbdbackup.0", NULL, true},
        {"vda.inc.virtnbdbackup.3.data", "virtnbdbackup.3", "virtnbdbackup.2", NULL, true},
    };
    expect_error(gap, N(gap), NULL,
                 "gap in the chain: vda.inc.virtnbdbackup.3.data (checkpoint virtnbdbackup.3) "
                 "needs its parent checkpoint virtnbdbackup.2, which no file holds");
    /* the planner refuses the chain even for a point before the gap */
    expect_error(gap, N(gap), "virtnbdbackup.1", "gap in the chain");
    /* a parent that exists but is not the file before */
    static const struct spec skip[] = {
        {"vda.full.data", "virtnbdbackup.0", "", NULL, false},
        {"vda.inc.virtnbdbackup.1.data", "virtnbdbackup.1", "virtnbdbackup.0", NULL, true},
        {"vda.inc.virtnbdbackup.2.data", "virtnbdbackup.2", "virtnbdbackup.0", NULL, true},
    };
    expect_error(skip, N(skip), NULL,
                 "vda.inc.virtnbdbackup.2.data (checkpoint virtnbdbackup.2) has parent "
                 "virtnbdbackup.0, but the file before it holds virtnbdbackup.1");
    /* an incremental of an older chain: dated before the file it would continue */
    static const struct spec old[] = {
        {"vda.full.data", "virtnbdbackup.0", "", "2026-02-01T00:00:00", false},
        {"vda.inc.virtnbdbackup.1.data", "virtnbdbackup.1", "virtnbdbackup.0",
         "2026-01-15T00:00:00", true},
    };
    expect_error(old, N(old), NULL, "it belongs to another chain");
    /* within the hour of slack (a daylight saving change) it is accepted */
    static const struct spec dst[] = {
        {"vda.full.data", "virtnbdbackup.0", "", "2026-03-29T02:30:00", false},
        {"vda.inc.virtnbdbackup.1.data", "virtnbdbackup.1", "virtnbdbackup.0",
         "2026-03-29T01:45:00", true},
    };
    expect(dst, N(dst), NULL, "vda.full.data vda.inc.virtnbdbackup.1.data");
    /* two files of one checkpoint; no base at all */
    static const struct spec dup[] = {
        {"vda.full.data", "virtnbdbackup.0", "", NULL, false},
        {"vda.inc.virtnbdbackup.0.data", "virtnbdbackup.0", "", NULL, false},
    };
    expect_error(dup, N(dup), NULL, "both hold checkpoint virtnbdbackup.0");
    static const struct spec nobase[] = {
        {"vda.diff.5.data", "virtnbdbackup.1", "virtnbdbackup.0", NULL, true},
    };
    expect_error(nobase, N(nobase), NULL, "no full backup: only differential files");
    expect_error(nobase, 0, NULL, "no full backup");
}

int main(void)
{
    test_points();
    test_any_order();
    test_broken();
    return test_finish("test_chain_plan");
}
