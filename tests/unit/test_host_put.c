/* The local put helpers of remote.h (vb_host_put, vb_host_put_buffer on this machine): a new
 * file with the exact mode and content, an existing target refused and left as it was, and a
 * target that appears while the put runs refused too: the source is a FIFO, and the target is
 * created after the put has started reading it and before it gets to its end, which is the
 * window between a check for the target and the rename. Again with renameat2's flags refused
 * (seccomp), where the rename is a hard link. */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "host.h"
#include "testutil.h"

static const char *phase = "native";

static const char *dir_for(const char *name)
{
    static char d[8600];
    snprintf(d, sizeof d, "%s/%s-%s", test_tmpdir(), phase, name);
    CHECK_MSG(mkdir(d, 0700) == 0, "%s: mkdir %s", phase, d);
    return d;
}

static int holds(const char *path, const char *text)
{
    void *buf;
    size_t len;
    if (test_read_file(path, &buf, &len) < 0)
        return -1;
    int same = len == strlen(text) && memcmp(buf, text, len) == 0;
    free(buf);
    return same;
}

/* Number of entries in dir besides . and .. */
static int entries(const char *dir)
{
    char cmd[8700];
    snprintf(cmd, sizeof cmd, "ls -A '%s' | wc -l", dir);
    FILE *p = popen(cmd, "r");
    int n = -1;
    if (p) {
        if (fscanf(p, "%d", &n) != 1)
            n = -1;
        pclose(p);
    }
    return n;
}

static void test_new_file(void)
{
    const char *d = dir_for("new");
    char src[8700], dst[8700], dst2[8700];
    snprintf(src, sizeof src, "%s/src", d);
    snprintf(dst, sizeof dst, "%s/nvram.fd", d);
    snprintf(dst2, sizeof dst2, "%s/vmconfig.xml", d);
    CHECK(test_write_file(src, "NVRAM-CONTENT", 13) == 0);
    struct vb_host h = {0};
    struct vb_error err = {0};
    CHECK_MSG(vb_host_put(&h, src, dst, 0640, &err) == 0, "%s: put: %s", phase, err.msg);
    CHECK(holds(dst, "NVRAM-CONTENT") == 1);
    struct stat st;
    CHECK(stat(dst, &st) == 0 && (st.st_mode & 07777) == 0640);
    CHECK_MSG(vb_host_put_buffer(&h, "<domain/>", 9, dst2, 0600, &err) == 0, "%s: put_buffer: %s",
              phase, err.msg);
    CHECK(holds(dst2, "<domain/>") == 1);
    CHECK(stat(dst2, &st) == 0 && (st.st_mode & 07777) == 0600);
    CHECK_MSG(entries(d) == 3, "%s: %s holds %d entries, want 3 (no temporaries)", phase, d,
              entries(d));
}

static void test_existing_target(void)
{
    const char *d = dir_for("existing");
    char src[8700], dst[8700];
    snprintf(src, sizeof src, "%s/src", d);
    snprintf(dst, sizeof dst, "%s/dst", d);
    CHECK(test_write_file(src, "NEW", 3) == 0);
    CHECK(test_write_file(dst, "OLD", 3) == 0);
    struct vb_host h = {0};
    struct vb_error err = {0};
    CHECK(vb_host_put(&h, src, dst, 0644, &err) < 0);
    CHECK_MSG(strstr(err.msg, "exists") != NULL, "%s: error '%s'", phase, err.msg);
    CHECK(vb_host_put_buffer(&h, "NEW", 3, dst, 0644, &err) < 0);
    CHECK(holds(dst, "OLD") == 1);
    CHECK_MSG(entries(d) == 2, "%s: %s holds %d entries, want 2", phase, d, entries(d));
}

struct racer {
    const char *fifo, *target;
};

/* Feeds the FIFO: half the data, then the target appears, then the rest. */
static void *race_target(void *arg)
{
    struct racer *r = arg;
    int fd = open(r->fifo, O_WRONLY | O_CLOEXEC); /* blocks until the put opens it */
    if (fd < 0)
        return NULL;
    /* The put has opened its source: any check for the target before the copy is behind it,
     * and its rename is ahead (after the end of the data). */
    if (write(fd, "FIRST-HALF-", 11) != 11)
        fprintf(stderr, "write to fifo failed\n");
    CHECK(test_write_file(r->target, "APPEARED", 8) == 0);
    if (write(fd, "SECOND-HALF", 11) != 11)
        fprintf(stderr, "write to fifo failed\n");
    close(fd);
    return NULL;
}

static void test_target_appears(void)
{
    const char *d = dir_for("race");
    char fifo[8700], dst[8700];
    snprintf(fifo, sizeof fifo, "%s/source.fifo", d);
    snprintf(dst, sizeof dst, "%s/OVMF_VARS.fd", d);
    CHECK(mkfifo(fifo, 0600) == 0);
    struct racer r = {fifo, dst};
    pthread_t t;
    CHECK(pthread_create(&t, NULL, race_target, &r) == 0);
    struct vb_host h = {0};
    struct vb_error err = {0};
    int rc = vb_host_put(&h, fifo, dst, 0600, &err);
    pthread_join(t, NULL);
    CHECK_MSG(rc < 0, "%s: the put replaced a file that appeared while it ran", phase);
    CHECK_MSG(holds(dst, "APPEARED") == 1, "%s: the file that appeared was overwritten", phase);
    if (rc < 0)
        CHECK_MSG(strstr(err.msg, "exists") != NULL, "%s: error '%s'", phase, err.msg);
    CHECK_MSG(entries(d) == 2, "%s: %s holds %d entries, want 2 (fifo, target)", phase, d,
              entries(d));
}

static void run_cases(void)
{
    test_new_file();
    test_existing_target();
    test_target_appears();
}

static void run_without_flags(const char *name)
{
    pid_t pid = fork();
    CHECK(pid >= 0);
    if (pid == 0) {
        phase = name;
        if (test_refuse_rename_flags(false) < 0)
            _exit(100);
        run_cases();
        _exit(test_failures ? 1 : 0);
    }
    int status = 0;
    waitpid(pid, &status, 0);
    if (WIFEXITED(status) && WEXITSTATUS(status) == 100) {
        fprintf(stderr, "test_host_put: no seccomp here, the %s cases are skipped\n", name);
        return;
    }
    CHECK_MSG(WIFEXITED(status) && WEXITSTATUS(status) == 0, "the %s cases failed (status %d)",
              name, status);
}

int main(void)
{
    umask(022);
    run_cases();
    run_without_flags("no-rename-flags");
    return test_finish("test_host_put");
}
