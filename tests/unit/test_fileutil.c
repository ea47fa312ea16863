/* vbcommon's atomic file writes: concurrent writers of one path all succeed and leave one
 * whole version and no temporaries; a symlink planted at <path>.partial (a predictable
 * temporary name) is not written through; the mode is 0644 less the umask; a failed rename leaves
 * nothing behind. */
#include <dirent.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fileutil.h"
#include "testutil.h"

#define WRITERS 6
#define ROUNDS  150
#define VERSION 3000 /* bytes of each version */

struct writer {
    int id;
    bool copy; /* vb_copy_file_atomic from a file of its own */
    char src[4200], target[4200];
    int failures;
    char first_error[VB_ERROR_MAX];
};

static void version(unsigned char *buf, int id, int round)
{
    memset(buf, 'a' + id, VERSION);
    memcpy(buf, &round, sizeof round);
}

static void *writer_main(void *arg)
{
    struct writer *w = arg;
    unsigned char buf[VERSION];
    for (int r = 0; r < ROUNDS; r++) {
        struct vb_error err = {0};
        version(buf, w->id, r);
        int rc;
        if (w->copy) {
            test_write_file(w->src, buf, sizeof buf);
            rc = vb_copy_file_atomic(w->src, w->target, &err);
        } else {
            rc = vb_write_file_atomic(w->target, buf, sizeof buf, &err);
        }
        if (rc < 0 && w->failures++ == 0)
            snprintf(w->first_error, sizeof w->first_error, "%s", err.msg);
    }
    return NULL;
}

static int count_partials(void)
{
    DIR *d = opendir(test_tmpdir());
    int n = 0;
    for (struct dirent *e; d && (e = readdir(d));) {
        size_t l = strlen(e->d_name);
        n += l > 8 && strcmp(e->d_name + l - 8, ".partial") == 0;
    }
    if (d)
        closedir(d);
    return n;
}

/* The result is one writer's version, whole. */
static void check_whole_version(const char *what)
{
    void *got = NULL;
    size_t len = 0;
    CHECK_MSG(test_read_file(test_path("target"), &got, &len) == 0 && len == VERSION,
              "%s: target has %zu bytes", what, len);
    if (got && len == VERSION) {
        const unsigned char *p = got;
        bool same = true;
        for (size_t i = sizeof(int); i < VERSION; i++)
            same &= p[i] == p[sizeof(int)];
        CHECK_MSG(same && p[sizeof(int)] >= 'a' && p[sizeof(int)] < 'a' + WRITERS,
                  "%s: target mixes versions", what);
    }
    free(got);
}

static void test_concurrent_writers(bool copy)
{
    const char *what = copy ? "vb_copy_file_atomic" : "vb_write_file_atomic";
    pthread_t t[WRITERS];
    struct writer w[WRITERS];
    for (int i = 0; i < WRITERS; i++) {
        w[i] = (struct writer){.id = i, .copy = copy};
        char name[32];
        snprintf(name, sizeof name, "src-%d", i);
        snprintf(w[i].src, sizeof w[i].src, "%s", test_path(name));
        snprintf(w[i].target, sizeof w[i].target, "%s", test_path("target"));
        pthread_create(&t[i], NULL, writer_main, &w[i]);
    }
    int failures = 0;
    for (int i = 0; i < WRITERS; i++) {
        pthread_join(t[i], NULL);
        failures += w[i].failures;
        if (w[i].failures)
            fprintf(stderr, "%s: writer %d: %d of %d failed, first: %s\n", what, i, w[i].failures,
                    ROUNDS, w[i].first_error);
    }
    CHECK_MSG(failures == 0, "%s: %d of %d concurrent writes failed", what, failures,
              WRITERS * ROUNDS);
    check_whole_version(what);
    CHECK_MSG(count_partials() == 0, "%s: %d temporaries left", what, count_partials());
}

/* <path>.partial is the name an attacker would guess: a symlink there must not redirect the
 * write. */
static void test_symlink_not_followed(void)
{
    const char *victim = test_path("victim");
    CHECK(test_write_file(victim, "precious", 8) == 0);
    CHECK(symlink(victim, test_path("sym.partial")) == 0);
    struct vb_error err = {0};
    CHECK_MSG(vb_write_file_atomic(test_path("sym"), "new", 3, &err) == 0, "%s", err.msg);
    void *got = NULL;
    size_t len = 0;
    CHECK(test_read_file(victim, &got, &len) == 0 && len == 8 && memcmp(got, "precious", 8) == 0);
    free(got);
    CHECK(test_read_file(test_path("sym"), &got, &len) == 0 && len == 3);
    free(got);
    unlink(test_path("sym.partial"));
}

static void test_mode(void)
{
    struct vb_error err = {0};
    struct stat st;
    mode_t old = umask(022);
    CHECK(vb_write_file_atomic(test_path("m1"), "x", 1, &err) == 0);
    CHECK(stat(test_path("m1"), &st) == 0 && (st.st_mode & 0777) == 0644);
    umask(077);
    CHECK(vb_write_file_atomic(test_path("m2"), "x", 1, &err) == 0);
    CHECK(stat(test_path("m2"), &st) == 0 && (st.st_mode & 0777) == 0600);
    CHECK(vb_copy_file_atomic(test_path("m1"), test_path("m3"), &err) == 0);
    CHECK(stat(test_path("m3"), &st) == 0 && (st.st_mode & 0777) == 0600);
    umask(old);
}

/* A rename that fails (the target is a non-empty directory): an error naming it, the
 * directory unchanged, no temporary left. */
static void test_failed_rename(void)
{
    CHECK(mkdir(test_path("adir"), 0755) == 0);
    CHECK(test_write_file(test_path("adir/inside"), "x", 1) == 0);
    struct vb_error err = {0};
    CHECK(vb_write_file_atomic(test_path("adir"), "data", 4, &err) < 0);
    CHECK_MSG(strstr(err.msg, "adir: rename") != NULL, "%s", err.msg);
    CHECK(vb_copy_file_atomic(test_path("m1"), test_path("adir"), &err) < 0);
    CHECK(count_partials() == 0);
}

int main(void)
{
    test_concurrent_writers(false);
    test_concurrent_writers(true);
    test_symlink_not_followed();
    test_mode();
    test_failed_rename();
    return test_finish("test_fileutil");
}
