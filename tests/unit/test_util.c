/* src/util: the growable array, whole writes through a pipe, base names and zero tests. */
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "testutil.h"
#include "util.h"
#include "vector.h"

VB_VECTOR(u64_list, uint64_t);
VB_VECTOR(str_list, const char *);

static void test_vector(void)
{
    struct u64_list l = {0};
    for (uint64_t i = 0; i < 100000; i++)
        CHECK(vb_vector_push(&l, i * 3) == 0);
    CHECK(l.n == 100000);
    CHECK(l.cap >= l.n);
    bool ok = true;
    for (size_t i = 0; i < l.n; i++)
        ok = ok && l.v[i] == i * 3;
    CHECK(ok);
    /* reserve keeps the contents and the count */
    CHECK(vb_vector_reserve(&l, 300000) == 0);
    CHECK(l.cap >= 300000 && l.n == 100000 && l.v[99999] == 99999 * 3);
    /* a byte count that overflows fails and leaves the vector as it was */
    size_t cap = l.cap;
    uint64_t *v = l.v;
    errno = 0;
    CHECK(vb_vector_reserve(&l, SIZE_MAX / 4) == -1 && errno == ENOMEM);
    CHECK(l.v == v && l.cap == cap && l.n == 100000);
    vb_vector_free(&l);
    CHECK(l.v == NULL && l.n == 0 && l.cap == 0);

    struct str_list s = {0};
    CHECK(vb_vector_push(&s, "a") == 0 && vb_vector_push(&s, "b") == 0);
    CHECK(s.n == 2 && strcmp(s.v[0], "a") == 0 && strcmp(s.v[1], "b") == 0);
    vb_vector_free(&s);
}

static void test_write_all(void)
{
    int p[2];
    CHECK(pipe(p) == 0);
    /* larger than a pipe's buffer: the writer needs several short writes while a child reads */
    size_t len = 1 << 20;
    char *buf = malloc(len), *got = malloc(len);
    test_fill(buf, len, 7);
    pid_t pid = fork();
    if (pid == 0) {
        close(p[0]);
        _exit(vb_write_all(p[1], buf, len) == 0 ? 0 : 1);
    }
    close(p[1]);
    size_t have = 0;
    ssize_t n;
    while ((n = read(p[0], got + have, len - have)) > 0)
        have += (size_t)n;
    close(p[0]);
    int status = -1;
    waitpid(pid, &status, 0);
    CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    CHECK(have == len && memcmp(buf, got, len) == 0);
    /* a closed descriptor is an error with errno */
    errno = 0;
    CHECK(vb_write_all(p[1], buf, 1) == -1 && errno == EBADF);
    free(buf);
    free(got);
}

static void test_names_and_zeroes(void)
{
    CHECK(strcmp(vb_base_name("/a/b/vda.full.data"), "vda.full.data") == 0);
    CHECK(strcmp(vb_base_name("vda.full.data"), "vda.full.data") == 0);
    CHECK(strcmp(vb_base_name("dir/"), "") == 0);
    char z[4096] = {0};
    CHECK(vb_is_zero(z, 0) && vb_is_zero(z, 1) && vb_is_zero(z, sizeof z));
    z[4095] = 1;
    CHECK(!vb_is_zero(z, sizeof z) && vb_is_zero(z, 4095));
    z[4095] = 0;
    z[0] = 1;
    CHECK(!vb_is_zero(z, sizeof z) && !vb_is_zero(z, 1));
}

int main(void)
{
    test_vector();
    test_write_all();
    test_names_and_zeroes();
    return test_finish("test_util");
}
