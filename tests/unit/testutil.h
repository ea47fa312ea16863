/* A minimal test harness: CHECK records failures and continues; main returns the verdict. */
#ifndef VB_TESTUTIL_H
#define VB_TESTUTIL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

extern int test_failures;
extern int test_checks;

#define CHECK(cond)                                                                                \
    do {                                                                                           \
        test_checks++;                                                                             \
        if (!(cond)) {                                                                             \
            test_failures++;                                                                       \
            fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, __LINE__, #cond);               \
        }                                                                                          \
    } while (0)

#define CHECK_MSG(cond, ...)                                                                       \
    do {                                                                                           \
        test_checks++;                                                                             \
        if (!(cond)) {                                                                             \
            test_failures++;                                                                       \
            fprintf(stderr, "%s:%d: CHECK failed: %s: ", __FILE__, __LINE__, #cond);               \
            fprintf(stderr, __VA_ARGS__);                                                          \
            fputc('\n', stderr);                                                                   \
        }                                                                                          \
    } while (0)

/* A fresh private directory under $TMPDIR, removed by test_cleanup(). */
const char *test_tmpdir(void);
void test_cleanup(void);
/* Path of name inside test_tmpdir() (static buffer rotated among 8). */
const char *test_path(const char *name);
/* Deterministic pseudo-random bytes. */
void test_fill(void *buf, size_t len, uint64_t seed);
int test_read_file(const char *path, void **buf, size_t *len);
int test_write_file(const char *path, const void *buf, size_t len);
int test_finish(const char *name);

/* Makes this process see a filesystem without renameat2's flags: renameat2 with any flag
 * fails with EINVAL (as on NFS), and with no_links link/linkat fail with EPERM (as on FAT).
 * For a forked child only; seccomp cannot be undone. Returns -1 where seccomp is missing. */
int test_refuse_rename_flags(bool no_links);

#endif
