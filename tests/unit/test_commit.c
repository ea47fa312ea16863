/* stream_commit_file and vb_rename_noreplace: a data file never exists without its .chksum, a
 * commit whose data file exists already fails and leaves the existing data file and checksum
 * byte for byte as they were, a stale checksum without data is replaced on success and put
 * back on failure, and no temporary file is left either way. Each case also runs in a child
 * whose renameat2 flags are refused (seccomp: EINVAL, as NFS answers), and once more with
 * hard links refused as well (EPERM, as FAT answers), so the fallbacks are tested here too. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "sink.h"
#include "testutil.h"

static const char *phase = "native";

/* Makes <dir>/<name> hold text. */
static void put(const char *dir, const char *name, const char *text)
{
    char p[8600];
    snprintf(p, sizeof p, "%s/%s", dir, name);
    CHECK_MSG(test_write_file(p, text, strlen(text)) == 0, "%s: write %s", phase, p);
}

/* 1 if <dir>/<name> holds exactly text, 0 if it differs, -1 if it is missing. */
static int holds(const char *dir, const char *name, const char *text)
{
    char p[8600];
    snprintf(p, sizeof p, "%s/%s", dir, name);
    void *buf;
    size_t len;
    if (test_read_file(p, &buf, &len) < 0)
        return -1;
    int same = len == strlen(text) && memcmp(buf, text, len) == 0;
    free(buf);
    return same;
}

static bool exists(const char *dir, const char *name)
{
    char p[8600];
    snprintf(p, sizeof p, "%s/%s", dir, name);
    return access(p, F_OK) == 0;
}

/* The names in dir, sorted, joined by spaces: what a commit left behind. */
static void listing(const char *dir, char *out, size_t len)
{
    struct dirent **names;
    int n = scandir(dir, &names, NULL, alphasort);
    out[0] = '\0';
    for (int i = 0; i < n; i++) {
        if (names[i]->d_name[0] != '.') {
            size_t used = strlen(out);
            snprintf(out + used, len - used, "%s%s", used ? " " : "", names[i]->d_name);
        }
        free(names[i]);
    }
    if (n >= 0)
        free(names);
}

#define CHECK_LISTING(dir, want)                                                                   \
    do {                                                                                           \
        char got_[4096];                                                                           \
        listing(dir, got_, sizeof got_);                                                           \
        CHECK_MSG(strcmp(got_, want) == 0, "%s: %s holds '%s', want '%s'", phase, dir, got_,       \
                  want);                                                                           \
    } while (0)

/* A fresh directory for one case. */
static const char *case_dir(const char *name)
{
    static char d[8600];
    snprintf(d, sizeof d, "%s/%s-%s", test_tmpdir(), phase, name);
    CHECK_MSG(mkdir(d, 0700) == 0, "%s: mkdir %s", phase, d);
    return d;
}

/* <dir>/<name>.partial with text, open for the commit (as a writer leaves it). */
static int partial(const char *dir, const char *name, const char *text)
{
    char p[8600];
    snprintf(p, sizeof p, "%s/%s.partial", dir, name);
    int fd = open(p, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0640);
    CHECK_MSG(fd >= 0, "%s: create %s", phase, p);
    if (fd >= 0)
        CHECK(write(fd, text, strlen(text)) == (ssize_t)strlen(text));
    return fd;
}

static int commit(const char *dir, const char *name, int fd, bool have, uint32_t sum,
                  struct vb_error *err)
{
    char p[8600];
    snprintf(p, sizeof p, "%s/%s", dir, name);
    memset(err, 0, sizeof *err);
    int rc = stream_commit_file(fd, p, have, sum, err);
    close(fd);
    return rc;
}

static void test_normal_commit(void)
{
    const char *d = case_dir("normal");
    struct vb_error err;
    int rc = commit(d, "vda.full.data", partial(d, "vda.full.data", "DATA-1"), true, 4242, &err);
    CHECK_MSG(rc == 0, "%s: commit failed: %s", phase, err.msg);
    CHECK(holds(d, "vda.full.data", "DATA-1") == 1);
    CHECK(holds(d, "vda.full.data.chksum", "4242") == 1);
    CHECK_LISTING(d, "vda.full.data vda.full.data.chksum");

    /* without a checksum (raw images): the data only */
    rc = commit(d, "vda.copy.data", partial(d, "vda.copy.data", "RAW"), false, 0, &err);
    CHECK_MSG(rc == 0, "%s: commit without checksum failed: %s", phase, err.msg);
    CHECK(holds(d, "vda.copy.data", "RAW") == 1);
    CHECK(!exists(d, "vda.copy.data.chksum"));
    CHECK_LISTING(d, "vda.copy.data vda.full.data vda.full.data.chksum");
}

/* The defect: the new .chksum replaced the existing one before the data's rename failed. */
static void test_existing_backup_untouched(void)
{
    const char *d = case_dir("existing");
    put(d, "vda.full.data", "OLD-DATA");
    put(d, "vda.full.data.chksum", "111");
    struct vb_error err;
    int rc = commit(d, "vda.full.data", partial(d, "vda.full.data", "NEW-DATA"), true, 222, &err);
    CHECK_MSG(rc < 0, "%s: a commit over an existing data file succeeded", phase);
    CHECK_MSG(strstr(err.msg, "already exists") != NULL, "%s: error '%s'", phase, err.msg);
    CHECK_MSG(holds(d, "vda.full.data", "OLD-DATA") == 1, "%s: the existing data changed", phase);
    CHECK_MSG(holds(d, "vda.full.data.chksum", "111") == 1,
              "%s: the existing .chksum changed (holds the new checksum: %d)", phase,
              holds(d, "vda.full.data.chksum", "222"));
    /* the caller removes its own .partial; nothing else may be left */
    CHECK_LISTING(d, "vda.full.data vda.full.data.chksum vda.full.data.partial");
}

/* The same through a file sink: the target appears while the stream is being written. */
static void test_sink_target_appears(void)
{
    const char *d = case_dir("sink");
    char p[8600];
    snprintf(p, sizeof p, "%s/vdb.full.data", d);
    struct vb_error err = {0};
    struct stream_sink *s = stream_sink_file_open(p, &err);
    CHECK_MSG(s != NULL, "%s: open: %s", phase, err.msg);
    if (!s)
        return;
    CHECK(stream_sink_write(s, "NEW", 3, &err) == 0);
    put(d, "vdb.full.data", "THEIRS");
    put(d, "vdb.full.data.chksum", "333");
    CHECK_MSG(s->ops->commit(s, true, 444, &err) < 0, "%s: the sink replaced a file", phase);
    stream_sink_free(s);
    CHECK(holds(d, "vdb.full.data", "THEIRS") == 1);
    CHECK_MSG(holds(d, "vdb.full.data.chksum", "333") == 1,
              "%s: the sink's commit changed the "
              "existing .chksum",
              phase);
    CHECK_LISTING(d, "vdb.full.data vdb.full.data.chksum");
}

/* A .chksum without its data (a crash between the two renames): replaced by a commit. */
static void test_stale_checksum_replaced(void)
{
    const char *d = case_dir("stale");
    put(d, "vda.inc.virtnbdbackup.1.data.chksum", "999");
    struct vb_error err;
    int rc = commit(d, "vda.inc.virtnbdbackup.1.data",
                    partial(d, "vda.inc.virtnbdbackup.1.data", "INC"), true, 555, &err);
    CHECK_MSG(rc == 0, "%s: commit over a stale checksum failed: %s", phase, err.msg);
    CHECK(holds(d, "vda.inc.virtnbdbackup.1.data", "INC") == 1);
    CHECK(holds(d, "vda.inc.virtnbdbackup.1.data.chksum", "555") == 1);
    CHECK_LISTING(d, "vda.inc.virtnbdbackup.1.data vda.inc.virtnbdbackup.1.data.chksum");
}

/* The data's rename fails after the checksum went into place (here: its .partial is gone):
 * the checksum that was there comes back, byte for byte. */
static void test_failed_rename_undone(void)
{
    const char *d = case_dir("undo");
    put(d, "vda.full.data.chksum", "777");
    int fd = partial(d, "vda.full.data", "X");
    char p[8600];
    snprintf(p, sizeof p, "%s/vda.full.data.partial", d);
    unlink(p);
    struct vb_error err;
    CHECK_MSG(commit(d, "vda.full.data", fd, true, 888, &err) < 0,
              "%s: a commit without its .partial succeeded", phase);
    CHECK_MSG(holds(d, "vda.full.data.chksum", "777") == 1,
              "%s: the checksum that was there is not back", phase);
    CHECK_LISTING(d, "vda.full.data.chksum");

    /* and with no checksum there before: ours goes again */
    const char *e = case_dir("undo-new");
    fd = partial(e, "vda.full.data", "X");
    snprintf(p, sizeof p, "%s/vda.full.data.partial", e);
    unlink(p);
    CHECK(commit(e, "vda.full.data", fd, true, 888, &err) < 0);
    CHECK_LISTING(e, "");
}

static void test_rename_noreplace(void)
{
    const char *d = case_dir("rename");
    put(d, "a", "A");
    put(d, "b", "B");
    char a[8600], b[8600], c[8600];
    snprintf(a, sizeof a, "%s/a", d);
    snprintf(b, sizeof b, "%s/b", d);
    snprintf(c, sizeof c, "%s/c", d);
    struct vb_error err = {0};
    CHECK_MSG(vb_rename_noreplace(a, b, &err) < 0, "%s: b was replaced", phase);
    CHECK(strstr(err.msg, "already exists") != NULL);
    CHECK(holds(d, "a", "A") == 1);
    CHECK(holds(d, "b", "B") == 1);
    CHECK_MSG(vb_rename_noreplace(a, c, &err) == 0, "%s: rename to a new name: %s", phase, err.msg);
    CHECK_LISTING(d, "b c");
    CHECK(holds(d, "c", "A") == 1);
}

static void run_cases(void)
{
    test_normal_commit();
    test_existing_backup_untouched();
    test_sink_target_appears();
    test_stale_checksum_replaced();
    test_failed_rename_undone();
    test_rename_noreplace();
}

/* The cases again in a child that sees a filesystem without renameat2's flags. */
static void run_without_flags(const char *name, bool no_links)
{
    pid_t pid = fork();
    CHECK(pid >= 0);
    if (pid == 0) {
        phase = name;
        if (test_refuse_rename_flags(no_links) < 0) {
            perror("seccomp");
            _exit(100);
        }
        /* the filter works: a flag is refused, as on such a filesystem */
        CHECK(renameat2(AT_FDCWD, "/nonexistent-a", AT_FDCWD, "/nonexistent-b", RENAME_NOREPLACE) <
                  0 &&
              errno == EINVAL);
        run_cases();
        _exit(test_failures ? 1 : 0);
    }
    int status = 0;
    waitpid(pid, &status, 0);
    if (WIFEXITED(status) && WEXITSTATUS(status) == 100) {
        fprintf(stderr, "test_commit: no seccomp here, the %s cases are skipped\n", name);
        return;
    }
    CHECK_MSG(WIFEXITED(status) && WEXITSTATUS(status) == 0, "the %s cases failed (status %d)",
              name, status);
}

int main(void)
{
    run_cases();
    run_without_flags("no-rename-flags", false);
    run_without_flags("no-rename-flags-no-links", true);
    test_cleanup();
    return test_finish("test_commit");
}
