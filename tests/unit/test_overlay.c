/* virtmap's overlay on disk: what a sync acknowledged survives a crash (a child process that
 * dies without closing), also with concurrent syncs and across checkpoints; a torn last log
 * record is cut off; a damaged map or log, an old-format map, a log without its map or a map
 * without its data file are refused naming the file; a stale log (folded into a newer map
 * already) is ignored; a second user of an overlay is refused and a crashed save's
 * temporaries are removed; a foreign identity is refused naming both; identities tell raw
 * images of one size apart. */
#include <fcntl.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "overlay.h"
#include "overlay_identity.h"
#include "testutil.h"

#define SIZE (3 * 1024 * 1024 * 1024ull + 1536) /* 3 chunks of the map and a partial block */
#define ID   "chain A\nfile a"

static const char *dir_path(const char *name)
{
    static char buf[4][4200];
    static int next;
    char *b = buf[next++ % 4];
    snprintf(b, sizeof buf[0], "%s/%s", test_tmpdir(), name);
    return b;
}

static const char *file_in(const char *dir, const char *suffix)
{
    static char buf[4][4300];
    static int next;
    char *b = buf[next++ % 4];
    snprintf(b, sizeof buf[0], "%s/vda.overlay%s", dir, suffix);
    return b;
}

static off_t file_size(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 ? st.st_size : -1;
}

/* Writes one block of byte v at block index blk and marks it. */
static int put_block(struct overlay *o, uint64_t blk, int v, struct vb_error *err)
{
    unsigned char b[OVERLAY_BLOCK];
    memset(b, v, sizeof b);
    if (overlay_pwrite(o, blk * OVERLAY_BLOCK, OVERLAY_BLOCK, b, err) < 0)
        return -1;
    return overlay_mark(o, blk * OVERLAY_BLOCK, OVERLAY_BLOCK, OVERLAY_DATA, err);
}

/* The block holds byte v in the overlay. */
static bool has_block(struct overlay *o, uint64_t blk, int v)
{
    uint64_t run;
    if (overlay_run(o, blk * OVERLAY_BLOCK, OVERLAY_BLOCK, &run) != OVERLAY_DATA)
        return false;
    unsigned char b[OVERLAY_BLOCK];
    struct vb_error err = {0};
    if (overlay_pread(o, blk * OVERLAY_BLOCK, OVERLAY_BLOCK, b, &err) < 0)
        return false;
    for (size_t i = 0; i < sizeof b; i++)
        if (b[i] != (unsigned char)v)
            return false;
    return true;
}

/* Runs fn in a child that then dies without closing anything (as after kill -9). */
static void crash_after(void (*fn)(const char *dir), const char *dir)
{
    fflush(NULL);
    pid_t pid = fork();
    if (pid == 0) {
        fn(dir);
        _exit(0);
    }
    int status = 0;
    waitpid(pid, &status, 0);
    CHECK_MSG(WIFEXITED(status) && WEXITSTATUS(status) == 0, "child status %d", status);
}

static void child_fail(const char *what, const struct vb_error *err)
{
    fprintf(stderr, "child: %s: %s\n", what, err->msg);
    _exit(1);
}

/* block 1: synced by a first sync (the map checkpoint); block 2 and the zeroed block 3:
 * synced through the log; block 4 written, never synced. */
static void writes_then_crash(const char *dir)
{
    struct vb_error err = {0};
    struct overlay *o = overlay_open(dir, "vda", SIZE, ID, &err);
    if (!o)
        child_fail("open", &err);
    if (put_block(o, 1, 0x11, &err) < 0 || overlay_sync(o, NULL, &err) < 0)
        child_fail("block 1", &err);
    if (put_block(o, 2, 0x22, &err) < 0 || put_block(o, 3, 0x33, &err) < 0 ||
        overlay_sync(o, NULL, &err) < 0)
        child_fail("blocks 2, 3", &err);
    if (overlay_mark(o, 3 * OVERLAY_BLOCK, OVERLAY_BLOCK, OVERLAY_ZERO, &err) < 0 ||
        put_block(o, (2ull << 30) / OVERLAY_BLOCK, 0x44, &err) < 0 || /* another chunk */
        overlay_sync(o, NULL, &err) < 0)
        child_fail("zero 3, chunk 2", &err);
    if (put_block(o, 5, 0x55, &err) < 0)
        child_fail("block 5", &err);
}

static void check_after_crash(const char *dir, const char *what)
{
    struct vb_error err = {0};
    struct overlay *o = overlay_open(dir, "vda", SIZE, ID, &err);
    CHECK_MSG(o != NULL, "%s: %s", what, err.msg);
    if (!o)
        return;
    uint64_t run;
    CHECK_MSG(has_block(o, 1, 0x11) && has_block(o, 2, 0x22), "%s: blocks 1, 2", what);
    CHECK_MSG(overlay_run(o, 3 * OVERLAY_BLOCK, OVERLAY_BLOCK, &run) == OVERLAY_ZERO,
              "%s: block 3 zeroed", what);
    CHECK_MSG(has_block(o, (2ull << 30) / OVERLAY_BLOCK, 0x44), "%s: chunk 2", what);
    CHECK_MSG(overlay_run(o, 0, OVERLAY_BLOCK, &run) == OVERLAY_BASE, "%s: block 0", what);
    CHECK(overlay_close(o, &err) == 0);
}

static void test_crash(void)
{
    const char *dir = dir_path("crash");
    mkdir(dir, 0755);
    crash_after(writes_then_crash, dir);
    CHECK(file_size(file_in(dir, ".map")) > 0 && file_size(file_in(dir, ".maplog")) > 40);
    check_after_crash(dir, "after a crash");
    /* the clean close above folded the log into the map */
    CHECK_MSG(file_size(file_in(dir, ".maplog")) == 40, "log of %lld bytes after a close",
              (long long)file_size(file_in(dir, ".maplog")));
}

/* A crash during an append: the log ends in part of a record. */
static void test_torn_tail(void)
{
    const char *dir = dir_path("torn");
    mkdir(dir, 0755);
    crash_after(writes_then_crash, dir);
    const char *log = file_in(dir, ".maplog");
    off_t good = file_size(log);
    int fd = open(log, O_WRONLY | O_APPEND);
    unsigned char torn[40] = "VBLR\x02\0\0\0\x03";
    CHECK(fd >= 0 && write(fd, torn, sizeof torn) == (ssize_t)sizeof torn);
    close(fd);
    struct vb_error err = {0};
    struct overlay *o = overlay_open(dir, "vda", SIZE, ID, &err);
    CHECK_MSG(o != NULL, "torn tail refused: %s", err.msg);
    CHECK_MSG(file_size(log) == good, "the torn tail was not cut off");
    if (o) {
        CHECK(has_block(o, 2, 0x22));
        /* appending after the cut works, and survives a reopen */
        CHECK(put_block(o, 7, 0x77, &err) == 0 && overlay_sync(o, NULL, &err) == 0);
        CHECK(overlay_close(o, &err) == 0);
    }
    check_after_crash(dir, "after a torn tail");
    o = overlay_open(dir, "vda", SIZE, ID, &err);
    CHECK(o && has_block(o, 7, 0x77));
    overlay_close(o, &err);
}

static void flip_byte(const char *path, off_t off)
{
    int fd = open(path, O_RDWR);
    unsigned char c = 0;
    CHECK(fd >= 0 && pread(fd, &c, 1, off) == 1);
    c ^= 0x40;
    CHECK(pwrite(fd, &c, 1, off) == 1);
    close(fd);
}

static void expect_refused(const char *dir, const char *id, const char *want1, const char *want2)
{
    struct vb_error err = {0};
    struct overlay *o = overlay_open(dir, "vda", SIZE, id, &err);
    CHECK_MSG(o == NULL, "opened, expected a refusal saying '%s'", want1);
    if (o)
        overlay_close(o, &err);
    else
        CHECK_MSG(strstr(err.msg, want1) && (!want2 || strstr(err.msg, want2)) &&
                      !strchr(err.msg, '\n'),
                  "'%s' does not say '%s' / '%s' on one line", err.msg, want1, want2 ? want2 : "");
}

static void test_damage(void)
{
    const char *dir = dir_path("damage");
    mkdir(dir, 0755);
    crash_after(writes_then_crash, dir);
    const char *log = file_in(dir, ".maplog"), *map = file_in(dir, ".map");
    /* a byte of the first of two records: not a torn tail */
    void *orig = NULL;
    size_t len = 0;
    CHECK(test_read_file(log, &orig, &len) == 0);
    flip_byte(log, 40 + 20);
    expect_refused(dir, ID, "vda.overlay.maplog: damaged", "intact records after it");
    CHECK(test_write_file(log, orig, len) == 0);
    /* the log's header */
    flip_byte(log, 9);
    expect_refused(dir, ID, "vda.overlay.maplog: damaged", NULL);
    CHECK(test_write_file(log, orig, len) == 0);
    free(orig);
    /* a byte of the map */
    CHECK(test_read_file(map, &orig, &len) == 0);
    flip_byte(map, (off_t)len / 2);
    expect_refused(dir, ID, "vda.overlay.map: damaged", NULL);
    /* the map of an older virtmap */
    CHECK(test_write_file(map, "VBOVMAP1\0\0\0\0", 12) == 0);
    expect_refused(dir, ID, "vda.overlay.map: an overlay map of an older virtmap", NULL);
    /* a log without its map */
    unlink(map);
    expect_refused(dir, ID, "vda.overlay.maplog: there is no map", NULL);
    /* a map without its data file */
    CHECK(test_write_file(map, orig, len) == 0);
    free(orig);
    char moved[4300];
    snprintf(moved, sizeof moved, "%s.moved", file_in(dir, ""));
    CHECK(rename(file_in(dir, ""), moved) == 0);
    expect_refused(dir, ID, "vda.overlay: missing", NULL);
    CHECK(rename(moved, file_in(dir, "")) == 0);
    /* everything back: opens */
    check_after_crash(dir, "after the damage was undone");
}

/* A crash between the map's rename and the new log's: the old log is older than the map and
 * must not be replayed over it. */
static void test_stale_log(void)
{
    const char *dir = dir_path("stale");
    mkdir(dir, 0755);
    crash_after(writes_then_crash, dir);
    void *old = NULL;
    size_t len = 0;
    CHECK(test_read_file(file_in(dir, ".maplog"), &old, &len) == 0 && len > 40);
    struct vb_error err = {0};
    struct overlay *o = overlay_open(dir, "vda", SIZE, ID, &err);
    CHECK(o != NULL);
    if (!o)
        return;
    /* block 2 was DATA in the old log; now it is zeroed and the map saved */
    CHECK(overlay_mark(o, 2 * OVERLAY_BLOCK, OVERLAY_BLOCK, OVERLAY_ZERO, &err) == 0);
    CHECK(overlay_close(o, &err) == 0);
    CHECK(test_write_file(file_in(dir, ".maplog"), old, len) == 0);
    free(old);
    o = overlay_open(dir, "vda", SIZE, ID, &err);
    CHECK_MSG(o != NULL, "%s", err.msg);
    if (o) {
        uint64_t run;
        CHECK_MSG(overlay_run(o, 2 * OVERLAY_BLOCK, OVERLAY_BLOCK, &run) == OVERLAY_ZERO,
                  "a stale log was replayed over a newer map");
        CHECK(has_block(o, 1, 0x11));
        CHECK(overlay_close(o, &err) == 0);
    }
}

/* Threads write their own blocks and sync after each, as NBD clients on several connections
 * do with write+flush; each sync must succeed and cover the thread's writes. */
#define THREADS 4
#define PER     100

struct syncer {
    struct overlay *o;
    pthread_rwlock_t *lock;
    int id, failures;
    char first[VB_ERROR_MAX];
};

static void *syncer_main(void *arg)
{
    struct syncer *s = arg;
    for (int i = 0; i < PER; i++) {
        struct vb_error err = {0};
        uint64_t blk = 1000 + (uint64_t)i * THREADS * 40 + (uint64_t)s->id * 40;
        pthread_rwlock_wrlock(s->lock);
        int rc = put_block(s->o, blk, s->id + 1, &err);
        pthread_rwlock_unlock(s->lock);
        if (rc == 0)
            rc = overlay_sync(s->o, s->lock, &err);
        if (rc < 0 && s->failures++ == 0)
            snprintf(s->first, sizeof s->first, "%s", err.msg);
    }
    return NULL;
}

static void concurrent_syncs_then_crash(const char *dir)
{
    struct vb_error err = {0};
    struct overlay *o = overlay_open(dir, "vda", SIZE, ID, &err);
    if (!o)
        child_fail("open", &err);
    pthread_rwlock_t lock;
    pthread_rwlock_init(&lock, NULL);
    pthread_t t[THREADS];
    struct syncer s[THREADS];
    for (int i = 0; i < THREADS; i++) {
        s[i] = (struct syncer){.o = o, .lock = &lock, .id = i};
        pthread_create(&t[i], NULL, syncer_main, &s[i]);
    }
    int failures = 0;
    for (int i = 0; i < THREADS; i++) {
        pthread_join(t[i], NULL);
        if (s[i].failures)
            fprintf(stderr, "child: thread %d: %d syncs failed, first: %s\n", i, s[i].failures,
                    s[i].first);
        failures += s[i].failures;
    }
    if (failures)
        _exit(2);
}

static void test_concurrent_syncs(void)
{
    const char *dir = dir_path("concurrent");
    mkdir(dir, 0755);
    crash_after(concurrent_syncs_then_crash, dir);
    struct vb_error err = {0};
    struct overlay *o = overlay_open(dir, "vda", SIZE, ID, &err);
    CHECK_MSG(o != NULL, "%s", err.msg);
    if (!o)
        return;
    int missing = 0;
    for (int i = 0; i < PER; i++)
        for (int id = 0; id < THREADS; id++)
            missing += !has_block(o, 1000 + (uint64_t)i * THREADS * 40 + (uint64_t)id * 40, id + 1);
    CHECK_MSG(missing == 0, "%d of %d synced blocks lost", missing, PER * THREADS);
    CHECK(overlay_close(o, &err) == 0);
}

/* Many syncs of scattered changes: the log is folded into the map once it outgrows it, and
 * stays bounded; a crash at any point keeps everything synced. */
static void growing_log_then_crash(const char *dir)
{
    struct vb_error err = {0};
    struct overlay *o = overlay_open(dir, "vda", SIZE, ID, &err);
    if (!o)
        child_fail("open", &err);
    for (int round = 0; round < 40; round++) {
        /* one block in every 32 (a map word each) over the disk: 24576 words per sync */
        for (uint64_t b = (uint64_t)round % 32; b < SIZE / OVERLAY_BLOCK; b += 32)
            if (overlay_mark(o, b * OVERLAY_BLOCK, OVERLAY_BLOCK,
                             round % 2 ? OVERLAY_ZERO : OVERLAY_DATA, &err) < 0)
                child_fail("mark", &err);
        if (overlay_sync(o, NULL, &err) < 0)
            child_fail("sync", &err);
        /* the map of 3 chunks is 1.5 MiB: with 4 MiB of slack and a record of 384 KiB */
        if (file_size(file_in(dir, ".maplog")) > (6 << 20)) {
            fprintf(stderr, "child: log of %lld bytes\n",
                    (long long)file_size(file_in(dir, ".maplog")));
            _exit(3);
        }
    }
}

static void test_growing_log(void)
{
    const char *dir = dir_path("growing");
    mkdir(dir, 0755);
    crash_after(growing_log_then_crash, dir);
    struct vb_error err = {0};
    struct overlay *o = overlay_open(dir, "vda", SIZE, ID, &err);
    CHECK_MSG(o != NULL, "%s", err.msg);
    if (!o)
        return;
    /* the last round to touch block b was one with b's residue mod 32 (rounds k and k + 32
     * mark the same state) */
    int wrong = 0;
    for (uint64_t b = 0; b < SIZE / OVERLAY_BLOCK; b += 97) {
        uint64_t run;
        wrong += overlay_run(o, b * OVERLAY_BLOCK, 1, &run) !=
                 (b % 32 % 2 ? OVERLAY_ZERO : OVERLAY_DATA);
    }
    CHECK_MSG(wrong == 0, "%d blocks in the wrong state", wrong);
    CHECK(overlay_close(o, &err) == 0);
}

/* One process at a time: a second open of the same overlay is refused while the first is
 * open; temporaries of a crashed save are removed, nothing else. */
static void test_lock_and_leftovers(void)
{
    const char *dir = dir_path("lock");
    mkdir(dir, 0755);
    struct vb_error err = {0};
    struct overlay *o = overlay_open(dir, "vda", SIZE, ID, &err);
    CHECK_MSG(o != NULL, "%s", err.msg);
    expect_refused(dir, ID, "vda.overlay: in use by another virtmap", NULL);
    CHECK(o && put_block(o, 1, 1, &err) == 0 && overlay_close(o, &err) == 0);
    const char *stale[] = {"vda.overlay.map.Ab3dE9.partial", "vda.overlay.maplog.zzzzzz.partial"};
    const char *kept[] = {"vda.overlay.map.partial", "vdb.overlay.map.Ab3dE9.partial",
                          "other.partial"};
    char path[4300];
    for (size_t i = 0; i < 2; i++) {
        snprintf(path, sizeof path, "%s/%s", dir, stale[i]);
        CHECK(test_write_file(path, "x", 1) == 0);
    }
    for (size_t i = 0; i < 3; i++) {
        snprintf(path, sizeof path, "%s/%s", dir, kept[i]);
        CHECK(test_write_file(path, "x", 1) == 0);
    }
    o = overlay_open(dir, "vda", SIZE, ID, &err);
    CHECK_MSG(o && has_block(o, 1, 1), "%s", err.msg);
    overlay_close(o, &err);
    for (size_t i = 0; i < 2; i++) {
        snprintf(path, sizeof path, "%s/%s", dir, stale[i]);
        CHECK_MSG(access(path, F_OK) < 0, "%s left", stale[i]);
    }
    for (size_t i = 0; i < 3; i++) {
        snprintf(path, sizeof path, "%s/%s", dir, kept[i]);
        CHECK_MSG(access(path, F_OK) == 0, "%s removed", kept[i]);
    }
    /* a refused open (another backup) leaves no data file behind in a fresh directory */
    const char *fresh = dir_path("refused");
    mkdir(fresh, 0755);
    CHECK(test_write_file(file_in(fresh, ".maplog"), "x", 1) == 0);
    expect_refused(fresh, ID, "there is no map", NULL);
    CHECK(access(file_in(fresh, ""), F_OK) < 0);
}

static void test_identity(void)
{
    const char *dir = dir_path("identity");
    mkdir(dir, 0755);
    struct vb_error err = {0};
    struct overlay *o =
        overlay_open(dir, "vda", SIZE, "vda.full.data (checkpoint c0, 2026-01-01)\nfile x", &err);
    CHECK(o && put_block(o, 1, 1, &err) == 0 && overlay_close(o, &err) == 0);
    expect_refused(dir, "vda.full.data (checkpoint c0, 2026-02-02)\x01\nfile y",
                   "belongs to another chain or point in time: it was made for vda.full.data "
                   "(checkpoint c0, 2026-01-01), not for vda.full.data (checkpoint c0, "
                   "2026-02-02)\\x01",
                   NULL);

    /* two raw images of one size, different in one of the sampled pieces (the one in the
     * middle of 256) */
    char *img[2];
    int fd[2];
    for (int i = 0; i < 2; i++) {
        char name[32];
        snprintf(name, sizeof name, "img%d/vda.copy.data", i);
        char sub[32];
        snprintf(sub, sizeof sub, "img%d", i);
        mkdir(dir_path(sub), 0755);
        img[i] = strdup(dir_path(name));
        fd[i] = open(img[i], O_RDWR | O_CREAT | O_TRUNC, 0644);
        CHECK(fd[i] >= 0 && ftruncate(fd[i], 1 << 30) == 0);
        unsigned char b[OVERLAY_BLOCK];
        memset(b, 0x5a + i, sizeof b);
        off_t mid = ((1 << 30) - 16384) / 255 * 128 / 4096 * 4096;
        CHECK(pwrite(fd[i], b, sizeof b, mid) == (ssize_t)sizeof b);
    }
    struct stream_source *src[2];
    for (int i = 0; i < 2; i++)
        CHECK((src[i] = stream_source_file_open(img[i], &err)) != NULL);
    char *id0 = overlay_identity_raw(src[0], img[0], 1 << 30, &err);
    char *id1 = overlay_identity_raw(src[1], img[1], 1 << 30, &err);
    char *id0b = overlay_identity_raw(src[0], img[0], 1 << 30, &err);
    CHECK(id0 && id1 && id0b && strcmp(id0, id1) != 0 && strcmp(id0, id0b) == 0);
    CHECK(id0 && strstr(id0, "vda.copy.data (raw image, sample crc32 ") == id0);
    for (int i = 0; i < 2; i++) {
        stream_source_free(src[i]);
        close(fd[i]);
        free(img[i]);
    }
    free(id0);
    free(id1);
    free(id0b);
}

int main(void)
{
    test_crash();
    test_torn_tail();
    test_damage();
    test_stale_log();
    test_concurrent_syncs();
    test_growing_log();
    test_lock_and_leftovers();
    test_identity();
    return test_finish("test_overlay");
}
