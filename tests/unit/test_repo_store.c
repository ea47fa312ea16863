/* The local object store (src/repo/objstore_local.c): put/get/range/head/delete, missing and
 * refused keys, list in key order with pagination, temporary files never listed, puts killed
 * midway leave no object, concurrent puts of the same keys leave complete objects. The
 * contract is in virtbackup-repository(5). */
#include "objstore.h"
#include "testutil.h"

#include <dirent.h>
#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

static struct repo_store *open_store(const char *name)
{
    const char *dir = test_path(name);
    if (mkdir(dir, 0700) < 0 && errno != EEXIST) {
        perror(dir);
        exit(1);
    }
    struct vb_error err = {0};
    struct repo_store *s = repo_store_local_open(dir, &err);
    CHECK_MSG(s != NULL, "%s", err.msg);
    if (!s)
        exit(1);
    return s;
}

static int put(struct repo_store *s, const char *key, const void *data, size_t len)
{
    struct vb_error err = {0};
    int rc = s->ops->put(s, key, data, len, &err);
    CHECK_MSG(rc == 0, "put %s: %s", key, err.msg);
    return rc;
}

/* 0 when the object holds exactly len bytes equal to want */
static int object_equals(struct repo_store *s, const char *key, const void *want, size_t len)
{
    struct vb_error err = {0};
    void *data = NULL;
    size_t got = 0;
    int rc = s->ops->get(s, key, 0, 0, &data, &got, &err);
    int same = rc == 0 && got == len && memcmp(data, want, len) == 0;
    free(data);
    return same ? 0 : -1;
}

static void test_basic(void)
{
    struct repo_store *s = open_store("basic");
    struct vb_error err = {0};
    unsigned char buf[5000];
    test_fill(buf, sizeof buf, 1);
    CHECK(put(s, "a/b/c", buf, sizeof buf) == 0);
    CHECK(object_equals(s, "a/b/c", buf, sizeof buf) == 0);

    void *data = NULL;
    size_t got = 0;
    CHECK(s->ops->get(s, "a/b/c", 100, 200, &data, &got, &err) == 0);
    CHECK(got == 200 && memcmp(data, buf + 100, 200) == 0);
    free(data);
    /* a range past the end is cut at the end; from the end, nothing; beyond it, an error */
    CHECK(s->ops->get(s, "a/b/c", 4990, 100, &data, &got, &err) == 0);
    CHECK(got == 10 && memcmp(data, buf + 4990, 10) == 0);
    free(data);
    CHECK(s->ops->get(s, "a/b/c", 5000, 0, &data, &got, &err) == 0 && got == 0);
    free(data);
    CHECK(s->ops->get(s, "a/b/c", 5001, 0, &data, &got, &err) == -1);
    CHECK_MSG(strstr(err.msg, "a/b/c") != NULL, "%s", err.msg);

    struct repo_stat size = {0};
    CHECK(s->ops->head(s, "a/b/c", &size, &err) == 0 && size.size == sizeof buf);
    /* the store's clock: the file's modification time */
    struct stat fst;
    CHECK(stat(test_path("basic/a/b/c"), &fst) == 0 && size.mtime == (int64_t)fst.st_mtime);
    CHECK(s->ops->head(s, "a/b/d", &size, &err) == 1);
    CHECK(s->ops->head(s, "x/y/z", &size, &err) == 1);
    CHECK(s->ops->head(s, "a/b/c/d", &size, &err) == 1); /* a file on the way */
    CHECK(s->ops->get(s, "a/b/d", 0, 0, &data, &got, &err) == 1);
    CHECK(s->ops->get(s, "nodir/x", 0, 0, &data, &got, &err) == 1);
    /* a directory is not an object */
    CHECK(s->ops->head(s, "a/b", &size, &err) == -1);
    CHECK_MSG(strstr(err.msg, "not a regular file") != NULL, "%s", err.msg);

    /* an empty object, and a put over an existing key replaces it */
    CHECK(put(s, "a/empty", "", 0) == 0);
    CHECK(s->ops->head(s, "a/empty", &size, &err) == 0 && size.size == 0);
    CHECK(put(s, "a/b/c", "short", 5) == 0);
    CHECK(object_equals(s, "a/b/c", "short", 5) == 0);

    /* the directories a put creates are private */
    struct stat st;
    CHECK(stat(test_path("basic/a/b"), &st) == 0 && (st.st_mode & 0777) == 0700);
    CHECK(stat(test_path("basic/a/b/c"), &st) == 0 && (st.st_mode & 0077) == 0);

    CHECK(s->ops->del(s, "a/b/c", &err) == 0);
    CHECK(s->ops->del(s, "a/b/c", &err) == 1);
    CHECK(s->ops->del(s, "q/r", &err) == 1);
    CHECK(s->ops->head(s, "a/b/c", &size, &err) == 1);
    s->ops->close(s);
}

static void test_refused_keys(void)
{
    CHECK(mkdir(test_path("refused"), 0700) == 0);
    struct repo_store *s = open_store("refused/store");
    static const char *const bad[] = {
        "",          "/abs", "a//b", "a/",     "../x",        "a/../b", "a/./b",
        "a/.hidden", ".x",   "a b",  "a\x01z", "caf\xc3\xa9", "a\x7f",
    };
    char long_key[1100];
    memset(long_key, 'k', sizeof long_key - 1);
    long_key[sizeof long_key - 1] = '\0';
    for (size_t i = 0; i <= sizeof bad / sizeof bad[0]; i++) {
        const char *key = i < sizeof bad / sizeof bad[0] ? bad[i] : long_key;
        struct vb_error err = {0};
        struct repo_stat size;
        void *data = NULL;
        size_t got;
        CHECK_MSG(s->ops->put(s, key, "x", 1, &err) == -1, "put accepted \"%s\"", key);
        CHECK_MSG(strstr(err.msg, "put") != NULL && strstr(err.msg, "key") != NULL, "%s", err.msg);
        CHECK_MSG(s->ops->get(s, key, 0, 0, &data, &got, &err) == -1, "get \"%s\"", key);
        CHECK_MSG(s->ops->head(s, key, &size, &err) == -1, "head \"%s\"", key);
        CHECK_MSG(s->ops->del(s, key, &err) == -1, "delete \"%s\"", key);
    }
    /* nothing escaped the store's directory, nothing was made in it */
    struct stat st;
    CHECK(stat(test_path("refused/x"), &st) == -1 && errno == ENOENT);
    CHECK(stat(test_path("refused/b"), &st) == -1 && errno == ENOENT);
    DIR *d = opendir(test_path("refused/store"));
    int n = 0;
    for (struct dirent *de; d && (de = readdir(d)) != NULL;)
        n += strcmp(de->d_name, ".") != 0 && strcmp(de->d_name, "..") != 0;
    if (d)
        closedir(d);
    CHECK_MSG(n == 0, "%d entries in the store", n);

    /* a list prefix may be empty or end in '/', but not climb out */
    struct vb_error err = {0};
    bool more;
    CHECK(s->ops->list(s, "../", NULL, 0, NULL, NULL, &more, &err) == -1);
    CHECK(s->ops->list(s, "/", NULL, 0, NULL, NULL, &more, &err) == -1);

    /* a symbolic link on the way is not followed */
    CHECK(symlink(test_path("refused"), test_path("refused/store/link")) == 0);
    CHECK(s->ops->put(s, "link/evil", "x", 1, &err) == -1);
    CHECK(stat(test_path("refused/evil"), &st) == -1 && errno == ENOENT);
    s->ops->close(s);
}

/* ---- list ---- */

struct collected {
    char **keys;
    uint64_t *sizes;
    size_t n, cap;
    size_t calls_in_page;
};

static int collect(void *ctx, const char *key, const struct repo_stat *st, struct vb_error *err)
{
    (void)err;
    struct collected *c = ctx;
    if (c->n == c->cap) {
        c->cap = c->cap ? 2 * c->cap : 64;
        c->keys = realloc(c->keys, c->cap * sizeof *c->keys);
        c->sizes = realloc(c->sizes, c->cap * sizeof *c->sizes);
    }
    c->keys[c->n] = strdup(key);
    c->sizes[c->n++] = st->size;
    c->calls_in_page++;
    return 0;
}

static void collected_free(struct collected *c)
{
    for (size_t i = 0; i < c->n; i++)
        free(c->keys[i]);
    free(c->keys);
    free(c->sizes);
    memset(c, 0, sizeof *c);
}

/* Every page of prefix, max keys each; returns the number of pages. */
static int list_all(struct repo_store *s, const char *prefix, size_t max, struct collected *c)
{
    int pages = 0;
    char *after = NULL;
    for (;;) {
        struct vb_error err = {0};
        bool more = true;
        c->calls_in_page = 0;
        int rc = s->ops->list(s, prefix, after, max, collect, c, &more, &err);
        CHECK_MSG(rc == 0, "%s", err.msg);
        pages++;
        CHECK(c->calls_in_page <= (max ? max : 1000));
        if (rc != 0 || !more || c->n == 0 || pages > 10000)
            break;
        CHECK(c->calls_in_page == (max ? max : 1000)); /* only the last page is short */
        free(after);
        after = strdup(c->keys[c->n - 1]);
    }
    free(after);
    return pages;
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static size_t object_size_of(size_t i)
{
    return 1 + i % 97;
}

static void check_listing(struct repo_store *s, char **keys, size_t n, const char *prefix,
                          size_t max)
{
    struct collected c = {0};
    int pages = list_all(s, prefix, max, &c);
    size_t plen = strlen(prefix), want = 0;
    for (size_t i = 0; i < n; i++) {
        if (strncmp(keys[i], prefix, plen) != 0)
            continue;
        CHECK_MSG(want < c.n && strcmp(c.keys[want], keys[i]) == 0,
                  "prefix \"%s\" max %zu: entry %zu is %s, expected %s", prefix, max, want,
                  want < c.n ? c.keys[want] : "(none)", keys[i]);
        want++;
    }
    CHECK_MSG(c.n == want, "prefix \"%s\": listed %zu keys, expected %zu", prefix, c.n, want);
    size_t page = max ? max : 1000;
    CHECK_MSG(pages == (int)(want / page + 1) ||
                  (want % page == 0 && want && pages == (int)(want / page)),
              "prefix \"%s\" max %zu: %d pages for %zu keys", prefix, max, pages, want);
    collected_free(&c);
}

static void test_list(void)
{
    struct repo_store *s = open_store("list");
    enum { N_CHUNKS = 1200 };
    char *keys[N_CHUNKS + 64];
    size_t n = 0;
    for (size_t i = 0; i < N_CHUNKS; i++) {
        unsigned char d[32];
        char hex[65];
        test_fill(d, sizeof d, i + 7);
        for (int j = 0; j < 32; j++)
            sprintf(hex + 2 * j, "%02x", d[j]);
        char key[128];
        snprintf(key, sizeof key, "chunks/%.2s/%s", hex, hex);
        keys[n++] = strdup(key);
    }
    /* names whose order depends on '/' sorting after '-' and '.' and before '0' */
    static const char *const extra[] = {
        "config",
        "t/a-b",
        "t/a/x",
        "t/a0",
        "t/a.c",
        "t/a/y/z",
        "t/b",
        "indexes/0",
        "indexes/f",
        "snapshots/u1/20261207T180000Z-00000001.json",
        "snapshots/u1/20261207T180001Z-00000000.json",
        "snapshots/u2/20261201T000000Z-ffffffff.json",
    };
    for (size_t i = 0; i < sizeof extra / sizeof extra[0]; i++)
        keys[n++] = strdup(extra[i]);
    for (size_t i = 0; i < n; i++) {
        unsigned char buf[128];
        test_fill(buf, sizeof buf, i);
        put(s, keys[i], buf, object_size_of(i));
    }
    /* the sizes reported are the objects' */
    struct collected all = {0};
    list_all(s, "", 0, &all);
    size_t sizes_ok = 0;
    for (size_t i = 0; i < n; i++)
        for (size_t j = 0; j < all.n; j++)
            if (strcmp(all.keys[j], keys[i]) == 0 && all.sizes[j] == object_size_of(i))
                sizes_ok++;
    CHECK_MSG(sizes_ok == n, "%zu of %zu sizes right", sizes_ok, n);
    collected_free(&all);

    qsort(keys, n, sizeof *keys, cmp_str);
    check_listing(s, keys, n, "", 0);
    check_listing(s, keys, n, "", 100);
    check_listing(s, keys, n, "", 1);
    check_listing(s, keys, n, "", 1212); /* exactly one full page, then an empty one */
    check_listing(s, keys, n, "chunks/", 7);
    check_listing(s, keys, n, "chunks/a", 3);
    check_listing(s, keys, n, "t/a", 1);
    check_listing(s, keys, n, "t/", 2);
    check_listing(s, keys, n, "snapshots/u1/", 0);
    check_listing(s, keys, n, "snapshots/u", 1);
    check_listing(s, keys, n, "nothing/", 0);
    check_listing(s, keys, n, "config", 0);

    /* after a key that does not exist: the next ones */
    struct collected c = {0};
    struct vb_error err = {0};
    bool more;
    CHECK(s->ops->list(s, "t/", "t/a.d", 2, collect, &c, &more, &err) == 0);
    CHECK(c.n == 2 && strcmp(c.keys[0], "t/a/x") == 0 && strcmp(c.keys[1], "t/a/y/z") == 0);
    CHECK(more);
    collected_free(&c);

    /* temporary files, hidden names, symbolic links, fifos are never listed */
    CHECK(test_write_file(test_path("list/t/.a0.Ab12Cd.tmp"), "x", 1) == 0);
    CHECK(test_write_file(test_path("list/.config.xyzxyz.tmp"), "x", 1) == 0);
    CHECK(mkdir(test_path("list/t/.hidden"), 0700) == 0);
    CHECK(test_write_file(test_path("list/t/.hidden/k"), "x", 1) == 0);
    CHECK(symlink("a0", test_path("list/t/link")) == 0);
    CHECK(mkfifo(test_path("list/t/fifo"), 0600) == 0);
    check_listing(s, keys, n, "", 0);
    check_listing(s, keys, n, "t/", 1);

    for (size_t i = 0; i < n; i++)
        free(keys[i]);
    s->ops->close(s);
}

static int fail_second(void *ctx, const char *key, const struct repo_stat *st, struct vb_error *err)
{
    (void)key;
    (void)st;
    int *calls = ctx;
    if (++*calls == 2)
        return vb_error_set(err, "callback refused");
    return 0;
}

static void test_list_callback_error(void)
{
    struct repo_store *s = open_store("cb");
    put(s, "k1", "1", 1);
    put(s, "k2", "2", 1);
    put(s, "k3", "3", 1);
    int calls = 0;
    bool more = false;
    struct vb_error err = {0};
    CHECK(s->ops->list(s, "", NULL, 0, fail_second, &calls, &more, &err) == -1);
    CHECK(calls == 2);
    CHECK_MSG(strstr(err.msg, "callback refused") != NULL, "%s", err.msg);
    s->ops->close(s);
}

/* ---- puts that die midway ---- */

static int count_tmp_files(const char *dir)
{
    DIR *d = opendir(dir);
    int n = 0;
    for (struct dirent *de; d && (de = readdir(d)) != NULL;) {
        size_t len = strlen(de->d_name);
        n += de->d_name[0] == '.' && len > 4 && strcmp(de->d_name + len - 4, ".tmp") == 0;
    }
    if (d)
        closedir(d);
    return n;
}

static void test_put_killed_by_file_limit(void)
{
    struct repo_store *s = open_store("fsize");
    size_t len = 8u << 20;
    unsigned char *buf = malloc(len);
    test_fill(buf, len, 3);
    pid_t pid = fork();
    if (pid == 0) {
        /* the write of the temporary file stops at 1 MiB: SIGXFSZ ends the process there */
        struct rlimit fsz = {1u << 20, 1u << 20}, core = {0, 0};
        setrlimit(RLIMIT_CORE, &core);
        setrlimit(RLIMIT_FSIZE, &fsz);
        struct vb_error err = {0};
        s->ops->put(s, "big/object", buf, len, &err);
        _exit(0);
    }
    int status = 0;
    waitpid(pid, &status, 0);
    CHECK_MSG(WIFSIGNALED(status) && WTERMSIG(status) == SIGXFSZ, "status %#x", status);
    /* it died with its temporary file written in part: no object, nothing listed */
    CHECK(count_tmp_files(test_path("fsize/big")) == 1);
    struct vb_error err = {0};
    struct repo_stat size;
    CHECK(s->ops->head(s, "big/object", &size, &err) == 1);
    struct collected c = {0};
    list_all(s, "", 0, &c);
    CHECK_MSG(c.n == 0, "%zu keys listed, first %s", c.n, c.n ? c.keys[0] : "");
    collected_free(&c);
    /* the next put of the key succeeds */
    CHECK(put(s, "big/object", buf, len) == 0);
    CHECK(object_equals(s, "big/object", buf, len) == 0);
    free(buf);
    s->ops->close(s);
}

static void test_put_killed_by_sigkill(void)
{
    struct repo_store *s = open_store("kill9");
    size_t len = 4u << 20;
    unsigned char *buf = malloc(len);
    pid_t pid = fork();
    if (pid == 0) {
        /* bounded, so that a store that never shows a temporary file cannot fill the disk */
        for (unsigned i = 0; i < 64; i++) {
            char key[64];
            snprintf(key, sizeof key, "o/%06u", i);
            test_fill(buf, len, i);
            struct vb_error err = {0};
            if (s->ops->put(s, key, buf, len, &err) < 0)
                _exit(2);
        }
        _exit(3);
    }
    /* killed after three objects, while a temporary file exists, i.e. during some put */
    struct vb_error err = {0};
    struct repo_stat size;
    int status = 0;
    pid_t ended = 0;
    while (ended == 0) {
        if (s->ops->head(s, "o/000002", &size, &err) == 0 &&
            count_tmp_files(test_path("kill9/o")) > 0)
            break;
        ended = waitpid(pid, &status, WNOHANG);
        usleep(200);
    }
    if (ended == 0) {
        kill(pid, SIGKILL);
        waitpid(pid, &status, 0);
    }
    CHECK_MSG(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL, "status %#x", status);
    /* every object there is complete, none is half-written */
    struct collected c = {0};
    list_all(s, "", 0, &c);
    for (size_t i = 0; i < c.n; i++) {
        unsigned idx = (unsigned)strtoul(c.keys[i] + 2, NULL, 10);
        test_fill(buf, len, idx);
        CHECK_MSG(object_equals(s, c.keys[i], buf, len) == 0, "%s is not complete", c.keys[i]);
        CHECK(idx == i); /* the objects before the killed one, in order */
    }
    CHECK_MSG(c.n >= 3, "%zu objects", c.n);
    collected_free(&c);
    free(buf);
    s->ops->close(s);
}

/* ---- 8 processes putting the same keys at once ---- */

enum { SAME_KEYS = 1000, SAME_WRITERS = 8 };

static void same_key(unsigned i, char key[64])
{
    snprintf(key, 64, "same/%02x/k%04u", i % 16, i);
}

static size_t same_len(unsigned i)
{
    return 100 + (i * 37) % 3000;
}

static void test_concurrent_same_keys(void)
{
    struct repo_store *s = open_store("concurrent");
    pid_t pids[SAME_WRITERS];
    for (int w = 0; w < SAME_WRITERS; w++) {
        pids[w] = fork();
        if (pids[w] == 0) {
            unsigned char buf[4096];
            /* each writer starts elsewhere, so they meet on every key */
            for (unsigned j = 0; j < SAME_KEYS; j++) {
                unsigned i = (j + (unsigned)w * (SAME_KEYS / SAME_WRITERS)) % SAME_KEYS;
                char key[64];
                same_key(i, key);
                test_fill(buf, same_len(i), i);
                struct vb_error err = {0};
                if (s->ops->put(s, key, buf, same_len(i), &err) < 0) {
                    fprintf(stderr, "writer %d: %s\n", w, err.msg);
                    _exit(1);
                }
            }
            _exit(0);
        }
    }
    for (int w = 0; w < SAME_WRITERS; w++) {
        int status = 0;
        waitpid(pids[w], &status, 0);
        CHECK_MSG(WIFEXITED(status) && WEXITSTATUS(status) == 0, "writer %d: status %#x", w,
                  status);
    }
    struct collected c = {0};
    list_all(s, "same/", 0, &c);
    CHECK_MSG(c.n == SAME_KEYS, "%zu keys", c.n);
    unsigned complete = 0;
    for (unsigned i = 0; i < SAME_KEYS; i++) {
        unsigned char buf[4096];
        char key[64];
        same_key(i, key);
        test_fill(buf, same_len(i), i);
        complete += object_equals(s, key, buf, same_len(i)) == 0;
    }
    CHECK_MSG(complete == SAME_KEYS, "%u of %d objects complete", complete, SAME_KEYS);
    int tmp = 0;
    for (unsigned h = 0; h < 16; h++) {
        char dir[64];
        snprintf(dir, sizeof dir, "concurrent/same/%02x", h);
        tmp += count_tmp_files(test_path(dir));
    }
    CHECK_MSG(tmp == 0, "%d temporary files left", tmp);
    collected_free(&c);
    s->ops->close(s);
}

/* put_new: only where the key does not exist; of writers racing on new keys (each its own
 * content) exactly one wins each key, and the object is the winner's, whole */
enum { NEW_KEYS = 200, NEW_WRITERS = 6 };

static void test_put_new(void)
{
    struct repo_store *s = open_store("putnew");
    struct vb_error err = {0};
    CHECK_MSG(s->ops->put_new(s, "cfg", "one", 3, &err) == 0, "%s", err.msg);
    CHECK(s->ops->put_new(s, "cfg", "two!", 4, &err) == 1);
    CHECK(object_equals(s, "cfg", "one", 3) == 0);
    CHECK(count_tmp_files(test_path("putnew")) == 0);
    CHECK(s->ops->put_new(s, "../x", "x", 1, &err) == -1);

    int pipes[NEW_WRITERS][2];
    pid_t pids[NEW_WRITERS];
    for (int w = 0; w < NEW_WRITERS; w++) {
        CHECK(pipe(pipes[w]) == 0);
        pids[w] = fork();
        if (pids[w] == 0) {
            close(pipes[w][0]);
            unsigned char won[NEW_KEYS];
            for (unsigned i = 0; i < NEW_KEYS; i++) {
                char key[64], body[64];
                snprintf(key, sizeof key, "race/%02x/k%04u", i % 8, i);
                int n = snprintf(body, sizeof body, "writer %d key %u", w, i);
                struct vb_error e = {0};
                int rc = s->ops->put_new(s, key, body, (size_t)n, &e);
                if (rc < 0) {
                    fprintf(stderr, "writer %d: %s\n", w, e.msg);
                    _exit(1);
                }
                won[i] = rc == 0;
            }
            _exit(write(pipes[w][1], won, sizeof won) == (ssize_t)sizeof won ? 0 : 1);
        }
        close(pipes[w][1]);
    }
    unsigned winners[NEW_KEYS] = {0};
    int winner_of[NEW_KEYS];
    for (int w = 0; w < NEW_WRITERS; w++) {
        unsigned char won[NEW_KEYS];
        CHECK(read(pipes[w][0], won, sizeof won) == (ssize_t)sizeof won);
        close(pipes[w][0]);
        int status = 0;
        waitpid(pids[w], &status, 0);
        CHECK_MSG(WIFEXITED(status) && WEXITSTATUS(status) == 0, "writer %d: status %#x", w,
                  status);
        for (unsigned i = 0; i < NEW_KEYS; i++)
            if (won[i]) {
                winners[i]++;
                winner_of[i] = w;
            }
    }
    unsigned right = 0;
    for (unsigned i = 0; i < NEW_KEYS; i++) {
        char key[64], body[64];
        snprintf(key, sizeof key, "race/%02x/k%04u", i % 8, i);
        if (winners[i] != 1)
            continue;
        int n = snprintf(body, sizeof body, "writer %d key %u", winner_of[i], i);
        right += object_equals(s, key, body, (size_t)n) == 0;
    }
    CHECK_MSG(right == NEW_KEYS, "%u of %d keys with exactly one winner holding its content", right,
              NEW_KEYS);
    int tmp = 0;
    for (unsigned h = 0; h < 8; h++) {
        char dir[64];
        snprintf(dir, sizeof dir, "putnew/race/%02x", h);
        tmp += count_tmp_files(test_path(dir));
    }
    CHECK_MSG(tmp == 0, "%d temporary files left", tmp);
    s->ops->close(s);
}

/* copy: the source's bytes under the new key (made with its directories), the source stays,
 * an existing destination is replaced, a missing source is 1, nothing temporary is left */
static void test_copy(void)
{
    struct repo_store *s = open_store("copy");
    struct vb_error err = {0};
    CHECK(put(s, "a/src", "payload", 7) == 0);
    CHECK_MSG(s->ops->copy(s, "a/src", "t/x/y/dst", &err) == 0, "%s", err.msg);
    CHECK(object_equals(s, "t/x/y/dst", "payload", 7) == 0);
    CHECK(object_equals(s, "a/src", "payload", 7) == 0);
    CHECK(put(s, "b/other", "other!", 6) == 0);
    CHECK_MSG(s->ops->copy(s, "b/other", "t/x/y/dst", &err) == 0, "%s", err.msg);
    CHECK(object_equals(s, "t/x/y/dst", "other!", 6) == 0);
    CHECK(s->ops->copy(s, "a/none", "t/none", &err) == 1);
    CHECK(s->ops->copy(s, "zz/none", "t/none", &err) == 1);
    CHECK(s->ops->copy(s, "a/src", "../out", &err) == -1);
    CHECK(count_tmp_files(test_path("copy/t/x/y")) == 0);
    struct repo_stat st;
    CHECK(s->ops->head(s, "t/none", &st, &err) == 1);
    s->ops->close(s);
}

int main(void)
{
    test_basic();
    test_refused_keys();
    test_list();
    test_list_callback_error();
    test_put_killed_by_file_limit();
    test_put_killed_by_sigkill();
    test_concurrent_same_keys();
    test_put_new();
    test_copy();
    test_cleanup();
    return test_finish("test_repo_store");
}
