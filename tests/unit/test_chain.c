/* Chain order from metadata and the chain index's newest-wins merge, against a model that
 * applies each file in order to a byte array. */
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "chain.h"
#include "chain_index.h"
#include "stream_index.h"
#include "streamgen.h"
#include "testutil.h"

static struct chain_file mk(const char *path, const char *cp, const char *parent, bool inc)
{
    struct chain_file f;
    memset(&f, 0, sizeof f);
    f.path = path;
    stream_meta_init(&f.meta);
    strcpy(f.meta.disk_name, "vda");
    strcpy(f.meta.checkpoint_name, cp);
    strcpy(f.meta.parent_checkpoint, parent);
    f.meta.incremental = inc;
    return f;
}

static int plan(struct chain_file *f, size_t n, const char *until, char *out, size_t outlen,
                struct vb_error *err)
{
    for (size_t i = 0; i < n; i++)
        if (chain_classify(&f[i], err) < 0)
            return -1;
    struct chain_plan p;
    if (chain_plan_build(f, n, until, &p, err) < 0)
        return -1;
    out[0] = '\0';
    for (size_t k = 0; k < p.n; k++) {
        const char *b = strrchr(f[p.order[k]].path, '/');
        b = b ? b + 1 : f[p.order[k]].path;
        strncat(out, k ? " " : "", outlen - strlen(out) - 1);
        strncat(out, b, outlen - strlen(out) - 1);
    }
    chain_plan_free(&p);
    return 0;
}

static void test_plan(void)
{
    char got[1024];
    struct vb_error err = {0};
    /* given in a scrambled order (as a copy without preserved mtimes would be) */
    struct chain_file f[] = {
        mk("d/vda.inc.virtnbdbackup.2.data", "virtnbdbackup.2", "virtnbdbackup.1", true),
        mk("d/vda.full.data", "virtnbdbackup.0", "", false),
        mk("d/vda.diff.1700000100.data", "virtnbdbackup.3", "virtnbdbackup.2", true),
        mk("d/vda.inc.virtnbdbackup.1.data", "virtnbdbackup.1", "virtnbdbackup.0", true),
        mk("d/vda.diff.1700000050.data", "virtnbdbackup.2", "virtnbdbackup.1", true),
        mk("d/vda.diff.1700000200.data", "virtnbdbackup.3", "virtnbdbackup.2", true),
    };
    CHECK(plan(f, 6, NULL, got, sizeof got, &err) == 0);
    CHECK_MSG(strcmp(got, "vda.full.data vda.inc.virtnbdbackup.1.data "
                          "vda.inc.virtnbdbackup.2.data vda.diff.1700000200.data") == 0,
              "%s", got);
    CHECK(f[2].kind == CHAIN_FILE_DIFF && f[1].kind == CHAIN_FILE_FULL);
    CHECK(plan(f, 6, "virtnbdbackup.1", got, sizeof got, &err) == 0);
    CHECK(strcmp(got, "vda.full.data vda.inc.virtnbdbackup.1.data") == 0);
    CHECK(plan(f, 6, "virtnbdbackup.0", got, sizeof got, &err) == 0);
    CHECK(strcmp(got, "vda.full.data") == 0);
    CHECK(plan(f, 6, "virtnbdbackup.7", got, sizeof got, &err) < 0);
    CHECK_MSG(strstr(err.msg, "virtnbdbackup.7") &&
                  strstr(err.msg, "virtnbdbackup.0, virtnbdbackup.1, virtnbdbackup.2"),
              "%s", err.msg);

    /* a missing middle incremental is a gap naming the missing checkpoint */
    struct chain_file gap[] = {
        mk("d/vda.full.data", "virtnbdbackup.0", "", false),
        mk("d/vda.inc.virtnbdbackup.2.data", "virtnbdbackup.2", "virtnbdbackup.1", true),
    };
    CHECK(plan(gap, 2, NULL, got, sizeof got, &err) < 0);
    CHECK_MSG(strstr(err.msg, "gap") && strstr(err.msg, "virtnbdbackup.1"), "%s", err.msg);

    /* a lost-bitmap full in the middle starts a new base */
    struct chain_file nb[] = {
        mk("d/vda.full.data", "virtnbdbackup.0", "", false),
        mk("d/vda.inc.virtnbdbackup.1.data", "virtnbdbackup.1", "virtnbdbackup.0", true),
        mk("d/vda.inc.virtnbdbackup.2.data", "virtnbdbackup.2", "", false),
        mk("d/vda.inc.virtnbdbackup.3.data", "virtnbdbackup.3", "virtnbdbackup.2", true),
    };
    CHECK(plan(nb, 4, NULL, got, sizeof got, &err) == 0);
    CHECK_MSG(strcmp(got, "vda.inc.virtnbdbackup.2.data vda.inc.virtnbdbackup.3.data") == 0, "%s",
              got);
    CHECK(nb[2].kind == CHAIN_FILE_NEW_BASE);
    CHECK(plan(nb, 4, "virtnbdbackup.1", got, sizeof got, &err) == 0);
    CHECK(strcmp(got, "vda.full.data vda.inc.virtnbdbackup.1.data") == 0);

    /* duplicates, other disks, diffs without a base, contradicting names */
    struct chain_file dup[] = {
        mk("d/vda.full.data", "virtnbdbackup.0", "", false),
        mk("e/vda.full.data", "virtnbdbackup.0", "", false),
    };
    CHECK(plan(dup, 2, NULL, got, sizeof got, &err) < 0 && strstr(err.msg, "both hold"));
    struct chain_file other[] = {
        mk("d/vda.full.data", "virtnbdbackup.0", "", false),
        mk("d/vdb.inc.virtnbdbackup.1.data", "virtnbdbackup.1", "virtnbdbackup.0", true),
    };
    strcpy(other[1].meta.disk_name, "vdb");
    CHECK(plan(other, 2, NULL, got, sizeof got, &err) < 0 && strstr(err.msg, "not one chain"));
    struct chain_file only_diff[] = {
        mk("d/vda.diff.17.data", "virtnbdbackup.1", "virtnbdbackup.0", true),
    };
    CHECK(plan(only_diff, 1, NULL, got, sizeof got, &err) < 0 && strstr(err.msg, "no full"));
    /* incrementals swapped by renaming: the names contradict the metadata */
    struct chain_file swapped[] = {
        mk("d/vda.full.data", "virtnbdbackup.0", "", false),
        mk("d/vda.inc.virtnbdbackup.2.data", "virtnbdbackup.1", "virtnbdbackup.0", true),
        mk("d/vda.inc.virtnbdbackup.1.data", "virtnbdbackup.2", "virtnbdbackup.1", true),
    };
    CHECK(plan(swapped, 3, NULL, got, sizeof got, &err) < 0);
    CHECK_MSG(strstr(err.msg, "vda.inc.virtnbdbackup.2.data: named for checkpoint "
                              "virtnbdbackup.2 but its metadata says virtnbdbackup.1"),
              "%s", err.msg);
    struct chain_file odd[] = {mk("d/vda.inc.data", "virtnbdbackup.0", "", false)};
    CHECK(plan(odd, 1, NULL, got, sizeof got, &err) == 0);
    struct chain_file liar[] = {mk("d/vda.full.data", "virtnbdbackup.0", "", true)};
    CHECK(plan(liar, 1, NULL, got, sizeof got, &err) < 0);
    /* a stale diff (taken before the last inc) is not applied */
    struct chain_file stale[] = {
        mk("d/vda.full.data", "virtnbdbackup.0", "", false),
        mk("d/vda.diff.100.data", "virtnbdbackup.1", "virtnbdbackup.0", true),
        mk("d/vda.inc.virtnbdbackup.1.data", "virtnbdbackup.1", "virtnbdbackup.0", true),
    };
    CHECK(plan(stale, 3, NULL, got, sizeof got, &err) == 0);
    CHECK(strcmp(got, "vda.full.data vda.inc.virtnbdbackup.1.data") == 0);
}

/* Random chains: a full tiling the disk, incrementals with DATA and ZERO extents at 4 KiB
 * granularity; the chain index must read exactly what applying the files in order gives. */
static uint64_t rnd(uint64_t *s)
{
    *s ^= *s << 13;
    *s ^= *s >> 7;
    *s ^= *s << 17;
    return *s;
}

static void random_chain(uint64_t seed, int compressed)
{
    enum { NFILES = 6, BLOCKS = 256, BS = 4096 };
    const uint64_t size = (uint64_t)BLOCKS * BS;
    uint8_t *model = calloc(1, size);
    uint8_t *disk = malloc(size);
    struct stream_index *idx[NFILES];
    char paths[NFILES][64];
    struct vb_error err = {0};
    uint64_t s = seed;
    for (int f = 0; f < NFILES; f++) {
        test_fill(disk, size, seed * 100 + (uint64_t)f);
        struct gen_extent ext[BLOCKS];
        size_t n = 0;
        for (uint64_t b = 0; b < BLOCKS;) {
            uint64_t run = 1 + rnd(&s) % 16;
            if (b + run > BLOCKS)
                run = BLOCKS - b;
            int kind = (int)(rnd(&s) % 3); /* 0 data, 1 zero, 2 untouched (incs only) */
            if (f == 0 && kind == 2)
                kind = 1;
            if (kind != 2)
                ext[n++] = (struct gen_extent){b * BS, run * BS, kind == 1};
            b += run;
        }
        for (size_t i = 0; i < n; i++) {
            if (ext[i].zero)
                memset(model + ext[i].start, 0, ext[i].length);
            else
                memcpy(model + ext[i].start, disk + ext[i].start, ext[i].length);
        }
        snprintf(paths[f], sizeof paths[f], "chain%d.data", f);
        char cp[32], parent[32];
        snprintf(cp, sizeof cp, "virtnbdbackup.%d", f);
        snprintf(parent, sizeof parent, "virtnbdbackup.%d", f - 1);
        struct gen_stream g = {.path = test_path(paths[f]),
                               .disk = disk,
                               .virtual_size = size,
                               .compressed = compressed,
                               .incremental = f > 0,
                               .checkpoint = cp,
                               .parent = f ? parent : "",
                               .extents = ext,
                               .nextents = n};
        CHECK(gen_write(&g) == 0);
        idx[f] = stream_index_open(g.path, &err);
        CHECK_MSG(idx[f] != NULL, "%s", err.msg);
    }
    struct chain_index *ci = chain_index_build(idx, NFILES, &err);
    CHECK(ci != NULL);
    uint8_t *got = malloc(size);
    struct stream_read_buf buf = {0};
    CHECK_MSG(chain_index_read(ci, 0, size, got, &buf, &err) == 0, "%s", err.msg);
    CHECK_MSG(memcmp(got, model, size) == 0, "seed %" PRIu64 " compressed %d", seed, compressed);
    /* unaligned reads and lookups */
    for (int i = 0; i < 50; i++) {
        uint64_t off = rnd(&s) % size, len = 1 + rnd(&s) % 20000;
        if (off + len > size)
            len = size - off;
        CHECK(chain_index_read(ci, off, len, got, &buf, &err) == 0);
        CHECK(memcmp(got, model + off, len) == 0);
        size_t k = chain_index_lookup(ci, off);
        CHECK(k < ci->nsegs && ci->segs[k].start <= off &&
              off < ci->segs[k].start + ci->segs[k].length);
    }
    /* segments are sorted, disjoint, and zero segments hold zeroes in the model */
    for (size_t k = 0; k < ci->nsegs; k++) {
        if (k)
            CHECK(ci->segs[k - 1].start + ci->segs[k - 1].length <= ci->segs[k].start);
        if (ci->segs[k].zero) {
            uint8_t z = 0;
            for (uint64_t b = 0; b < ci->segs[k].length; b++)
                z |= model[ci->segs[k].start + b];
            CHECK(z == 0);
        }
    }
    CHECK(chain_index_read(ci, size - 1, 2, got, &buf, &err) < 0); /* beyond the disk */
    stream_read_buf_free(&buf);
    chain_index_free(ci);
    for (int f = 0; f < NFILES; f++)
        stream_index_free(idx[f]);
    free(got);
    free(model);
    free(disk);
}

static void test_resize(void)
{
    /* the disk's size is the last file's; later files may be larger */
    enum { BS = 4096 };
    uint8_t *disk = malloc(64 * BS);
    test_fill(disk, 64 * BS, 5);
    struct gen_extent a[] = {{0, 32 * BS, false}};
    struct gen_extent b[] = {{40 * BS, 8 * BS, false}};
    struct gen_stream g1 = {.path = test_path("r0.data"),
                            .disk = disk,
                            .virtual_size = 32 * BS,
                            .compressed = -1,
                            .extents = a,
                            .nextents = 1};
    struct gen_stream g2 = {.path = test_path("r1.data"),
                            .disk = disk,
                            .virtual_size = 64 * BS,
                            .compressed = -1,
                            .incremental = true,
                            .checkpoint = "virtnbdbackup.1",
                            .parent = "virtnbdbackup.0",
                            .extents = b,
                            .nextents = 1};
    CHECK(gen_write(&g1) == 0 && gen_write(&g2) == 0);
    struct vb_error err = {0};
    struct stream_index *idx[2] = {stream_index_open(g1.path, &err),
                                   stream_index_open(g2.path, &err)};
    struct chain_index *ci = chain_index_build(idx, 2, &err);
    CHECK(ci && ci->virtual_size == 64 * BS);
    uint8_t *got = malloc(64 * BS);
    struct stream_read_buf buf = {0};
    CHECK(chain_index_read(ci, 0, 64 * BS, got, &buf, &err) == 0);
    CHECK(memcmp(got, disk, 32 * BS) == 0);
    CHECK(memcmp(got + 40 * BS, disk + 40 * BS, 8 * BS) == 0);
    CHECK(got[33 * BS] == 0 && got[63 * BS] == 0);
    stream_read_buf_free(&buf);
    chain_index_free(ci);
    stream_index_free(idx[0]);
    stream_index_free(idx[1]);
    free(got);
    free(disk);
}

static void test_cpt(void)
{
    struct vb_error err = {0};
    struct chain_file f[] = {
        mk("d/vda.full.data", "virtnbdbackup.0", "", false),
        mk("d/vda.inc.virtnbdbackup.1.data", "virtnbdbackup.1", "virtnbdbackup.0", true),
        mk("d/vda.inc.virtnbdbackup.2.data", "virtnbdbackup.2", "virtnbdbackup.1", true),
    };
    for (int i = 0; i < 3; i++)
        CHECK(chain_classify(&f[i], &err) == 0);
    struct chain_plan p;
    CHECK(chain_plan_build(f, 3, NULL, &p, &err) == 0);
    char *good[] = {"virtnbdbackup.0", "virtnbdbackup.1", "virtnbdbackup.2"};
    CHECK(chain_check_cpt(f, &p, good, 3, "vm.cpt", true, &err) == 0);
    char *missing[] = {"virtnbdbackup.0", "virtnbdbackup.2"};
    CHECK(chain_check_cpt(f, &p, missing, 2, "vm.cpt", true, &err) < 0);
    CHECK_MSG(strstr(err.msg, "virtnbdbackup.1") && strstr(err.msg, "vm.cpt"), "%s", err.msg);
    char *swapped[] = {"virtnbdbackup.0", "virtnbdbackup.2", "virtnbdbackup.1"};
    CHECK(chain_check_cpt(f, &p, swapped, 3, "vm.cpt", true, &err) < 0);
    char *extra[] = {"virtnbdbackup.0", "virtnbdbackup.1", "virtnbdbackup.2", "virtnbdbackup.3"};
    CHECK(chain_check_cpt(f, &p, extra, 4, "vm.cpt", true, &err) == 1); /* a warning */
    CHECK_MSG(strstr(err.msg, "virtnbdbackup.3"), "%s", err.msg);
    /* a backup interrupted after committing inc 2, before writing the list: the latest point
     * is the last listed one, with a warning */
    char *interrupted[] = {"virtnbdbackup.0", "virtnbdbackup.1"};
    CHECK(chain_check_cpt(f, &p, interrupted, 2, "vm.cpt", true, &err) == 1);
    CHECK_MSG(strstr(err.msg, "virtnbdbackup.2") && strstr(err.msg, "interrupted"), "%s", err.msg);
    CHECK(p.n == 2 && p.order[1] == 1);
    chain_plan_free(&p);
    /* a list that lacks a middle checkpoint is not an interruption */
    CHECK(chain_plan_build(f, 3, NULL, &p, &err) == 0);
    char *only_base[] = {"virtnbdbackup.0", "virtnbdbackup.2"};
    CHECK(chain_check_cpt(f, &p, only_base, 2, "vm.cpt", true, &err) < 0);
    CHECK(p.n == 3);
    chain_plan_free(&p);
    /* asked for explicitly, an unlisted checkpoint stays an error */
    CHECK(chain_plan_build(f, 3, "virtnbdbackup.2", &p, &err) == 0);
    CHECK(chain_check_cpt(f, &p, interrupted, 2, "vm.cpt", false, &err) < 0);
    chain_plan_free(&p);
    /* up to checkpoint 1, the later entries do not matter */
    CHECK(chain_plan_build(f, 3, "virtnbdbackup.1", &p, &err) == 0);
    CHECK(chain_check_cpt(f, &p, extra, 4, "vm.cpt", false, &err) == 0);
    chain_plan_free(&p);
}

/* An incremental dated before the file it continues belongs to another chain; an hour of
 * slack covers a daylight saving change between two runs (the dates carry no zone). */
static void test_dates(void)
{
    char got[1024];
    struct vb_error err = {0};
    struct chain_file f[] = {
        mk("d/vda.full.data", "virtnbdbackup.0", "", false),
        mk("d/vda.inc.virtnbdbackup.1.data", "virtnbdbackup.1", "virtnbdbackup.0", true),
        mk("d/vda.inc.virtnbdbackup.2.data", "virtnbdbackup.2", "virtnbdbackup.1", true),
    };
    strcpy(f[0].meta.date, "2026-10-25T01:50:00.123456");
    strcpy(f[1].meta.date, "2026-10-25T02:55:00");
    strcpy(f[2].meta.date, "2026-10-25T02:05:10.5"); /* clocks went back an hour */
    CHECK_MSG(plan(f, 3, NULL, got, sizeof got, &err) == 0, "%s", err.msg);
    strcpy(f[2].meta.date, "2026-10-23T02:05:10.000001"); /* two days before its parent */
    CHECK(plan(f, 3, NULL, got, sizeof got, &err) < 0);
    CHECK_MSG(strstr(err.msg, "vda.inc.virtnbdbackup.2.data") && strstr(err.msg, "another chain") &&
                  strstr(err.msg, "2026-10-23T02:05:10.000001"),
              "%s", err.msg);
    /* up to checkpoint 1 the stray file is not part of the plan, but still of the chain */
    CHECK(plan(f, 3, "virtnbdbackup.1", got, sizeof got, &err) < 0);
    strcpy(f[2].meta.date, "not a date"); /* unknown formats are not judged */
    CHECK(plan(f, 3, NULL, got, sizeof got, &err) == 0);
}

int main(void)
{
    test_plan();
    test_dates();
    test_cpt();
    for (uint64_t seed = 1; seed <= 20; seed++)
        random_chain(seed, seed % 2 ? STREAM_META_COMPRESSED_FALSE : 2);
    test_resize();
    return test_finish("test_chain");
}
