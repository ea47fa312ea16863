/* Which chunks a repository inc reads (src/backup/repo_inc.c, virtbackup(1) REPOSITORY
 * OUTPUT): every chunk a dirty range touches (DATA or ZERO: both changed), read over its
 * allocated parts only; a grown disk's old short last chunk and everything past the old end;
 * a shrunk disk's new short last chunk; a chunk whose base chunk is missing from the
 * repository. Untouched chunks are not read. */
#include <stdlib.h>
#include <string.h>

#include "repo_inc.h"
#include "testutil.h"

#define K  1024u
#define CS (64u * K)

static struct extent_list list(size_t n, const struct extent *v)
{
    struct extent_list l = {.n = n, .cap = n};
    l.v = malloc((n ? n : 1) * sizeof *v);
    if (n)
        memcpy(l.v, v, n * sizeof *v);
    return l;
}

static void check_touched(const char *what, const struct repo_inc_plan *p, const char *want)
{
    char got[256] = {0};
    for (uint64_t k = 0; k < p->nchunks && k < sizeof got - 1; k++)
        got[k] = p->touched[k] ? 'R' : '.';
    CHECK_MSG(strcmp(got, want) == 0, "%s: touched %s, want %s", what, got, want);
    uint64_t n = 0;
    for (const char *c = want; *c; c++)
        n += *c == 'R';
    CHECK_MSG(p->ntouched == n, "%s: ntouched %llu, want %llu", what,
              (unsigned long long)p->ntouched, (unsigned long long)n);
}

static void check_read(const char *what, const struct repo_inc_plan *p, size_t n,
                       const struct extent *want)
{
    CHECK_MSG(p->read.n == n, "%s: %zu extents to read, want %zu", what, p->read.n, n);
    for (size_t i = 0; i < n && i < p->read.n; i++)
        CHECK_MSG(p->read.v[i].start == want[i].start && p->read.v[i].length == want[i].length &&
                      !p->read.v[i].zero,
                  "%s: extent %zu is %llu+%llu, want %llu+%llu", what, i,
                  (unsigned long long)p->read.v[i].start, (unsigned long long)p->read.v[i].length,
                  (unsigned long long)want[i].start, (unsigned long long)want[i].length);
}

/* dirty 4 KiB in chunk 1, a dirty zeroed range over chunks 3-4, nothing else: chunks 1, 3, 4
 * read, over what is allocated of them (chunk 3 half, chunk 4 not at all) */
static void test_same_size(void)
{
    struct vb_error err = {0};
    struct extent_list dirty = list(2, (struct extent[]){{CS + 8 * K, 4 * K, false, false},
                                                         {3 * CS + 60 * K, 68 * K, true, false}});
    /* allocated: 0 .. 2.5 chunks, then a zero run, then 5 .. 8 */
    struct extent_list alloc =
        list(3, (struct extent[]){{0, 3 * CS + 32 * K, false, false},
                                  {3 * CS + 32 * K, 2 * CS - 32 * K, true, false},
                                  {5 * CS, 3 * CS, false, false}});
    struct repo_inc_plan p;
    CHECK(repo_inc_plan_make(&dirty, &alloc, 8 * CS, CS, 8 * CS, NULL, &p, &err) == 0);
    check_touched("same size", &p, ".R.RR...");
    check_read("same size", &p, 2,
               (struct extent[]){{CS, CS, false, false}, {3 * CS, 32 * K, false, false}});
    repo_inc_plan_free(&p);
    free(dirty.v);
    free(alloc.v);
}

/* grown from 2.5 chunks to 5: the old short last chunk (2) and everything after it */
static void test_grown(void)
{
    struct vb_error err = {0};
    struct extent_list dirty = list(0, NULL);
    struct extent_list alloc = list(1, (struct extent[]){{0, 5 * CS, false, false}});
    struct repo_inc_plan p;
    CHECK(repo_inc_plan_make(&dirty, &alloc, 5 * CS, CS, 2 * CS + CS / 2, NULL, &p, &err) == 0);
    check_touched("grown from a short last chunk", &p, "..RRR");
    check_read("grown", &p, 1, (struct extent[]){{2 * CS, 3 * CS, false, false}});
    repo_inc_plan_free(&p);
    /* from a whole last chunk: only what is past the old end */
    CHECK(repo_inc_plan_make(&dirty, &alloc, 5 * CS, CS, 3 * CS, NULL, &p, &err) == 0);
    check_touched("grown from a whole last chunk", &p, "...RR");
    repo_inc_plan_free(&p);
    free(dirty.v);
    free(alloc.v);
}

/* shrunk: a new short last chunk is read, a whole one is the base's */
static void test_shrunk(void)
{
    struct vb_error err = {0};
    struct extent_list dirty = list(0, NULL);
    struct extent_list alloc = list(1, (struct extent[]){{0, 3 * CS, false, false}});
    struct repo_inc_plan p;
    CHECK(repo_inc_plan_make(&dirty, &alloc, 2 * CS + 4 * K, CS, 5 * CS, NULL, &p, &err) == 0);
    check_touched("shrunk to a short last chunk", &p, "..R");
    check_read("shrunk", &p, 1, (struct extent[]){{2 * CS, 4 * K, false, false}});
    repo_inc_plan_free(&p);
    CHECK(repo_inc_plan_make(&dirty, &alloc, 2 * CS, CS, 5 * CS, NULL, &p, &err) == 0);
    check_touched("shrunk to a whole last chunk", &p, "..");
    CHECK(p.read.n == 0);
    repo_inc_plan_free(&p);
    free(dirty.v);
    free(alloc.v);
}

/* base chunks 2 and 6 missing from the repository, nothing dirty: those two read (over what
 * is allocated of them: 6 is a hole, so nothing of it), the rest copied */
static void test_base_missing(void)
{
    struct vb_error err = {0};
    struct extent_list dirty = list(0, NULL);
    struct extent_list alloc =
        list(2, (struct extent[]){{0, 4 * CS, false, false}, {4 * CS, 4 * CS, true, false}});
    const unsigned char missing[8] = {0, 0, 1, 0, 0, 0, 1, 0};
    struct repo_inc_plan p;
    CHECK(repo_inc_plan_make(&dirty, &alloc, 8 * CS, CS, 8 * CS, missing, &p, &err) == 0);
    check_touched("base chunks missing", &p, "..R...R.");
    check_read("base chunks missing", &p, 1, (struct extent[]){{2 * CS, CS, false, false}});
    repo_inc_plan_free(&p);
    /* a shrunk disk: a missing base chunk past the new end is not a chunk of the disk */
    CHECK(repo_inc_plan_make(&dirty, &alloc, 4 * CS, CS, 8 * CS, missing, &p, &err) == 0);
    check_touched("base chunks missing, disk shrunk", &p, "..R.");
    repo_inc_plan_free(&p);
    free(dirty.v);
    free(alloc.v);
}

int main(void)
{
    test_same_size();
    test_grown();
    test_shrunk();
    test_base_missing();
    return test_finish("test_repo_inc");
}
