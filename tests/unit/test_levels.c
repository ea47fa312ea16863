/* virtbackup's level decisions (src/backup/level_rules.c, virtbackup(1) -l): the level each
 * -l runs given the directory's data files, the errors that refuse a run, and the name of
 * the checkpoint an incremental creates and its parent given the chain's .cpt list. */
#include <string.h>

#include "level_rules.h"
#include "testutil.h"

static void check_level(enum backup_level asked, size_t data, size_t full, enum backup_level want)
{
    struct vb_error err = {0};
    enum backup_level got = LEVEL_AUTO;
    int rc = level_resolve(asked, "/b", data, full, &got, &err);
    CHECK_MSG(rc == 0 && got == want, "-l %s with %zu data files (%zu full): rc %d, level %s %s",
              backup_level_name(asked), data, full, rc, backup_level_name(got), err.msg);
}

static void check_refused(enum backup_level asked, size_t data, size_t full, const char *msg)
{
    struct vb_error err = {0};
    enum backup_level got;
    int rc = level_resolve(asked, "/b", data, full, &got, &err);
    CHECK_MSG(rc < 0 && strstr(err.msg, msg), "-l %s with %zu data files (%zu full): rc %d, %s",
              backup_level_name(asked), data, full, rc, err.msg);
}

static void test_levels(void)
{
    /* auto: full into an empty directory, inc into one with a full */
    check_level(LEVEL_AUTO, 0, 0, LEVEL_FULL);
    check_level(LEVEL_AUTO, 1, 1, LEVEL_INC);
    check_level(LEVEL_AUTO, 7, 1, LEVEL_INC);
    check_refused(LEVEL_AUTO, 2, 0,
                  "-l auto: /b holds 2 data files but no full backup (*.full.data)");
    /* full and copy need a directory without data files */
    check_level(LEVEL_FULL, 0, 0, LEVEL_FULL);
    check_level(LEVEL_COPY, 0, 0, LEVEL_COPY);
    check_refused(LEVEL_FULL, 1, 1, "/b already holds a backup (1 data files): a full backup");
    check_refused(LEVEL_FULL, 3, 0, "/b already holds a backup (3 data files)");
    check_refused(LEVEL_COPY, 1, 0, "a copy backup needs an empty directory");
    /* inc and diff take what is asked (their checkpoints are checked later) */
    check_level(LEVEL_INC, 0, 0, LEVEL_INC);
    check_level(LEVEL_INC, 4, 1, LEVEL_INC);
    check_level(LEVEL_DIFF, 4, 1, LEVEL_DIFF);
    check_level(LEVEL_DIFF, 0, 0, LEVEL_DIFF);
}

static void check_next(char **names, size_t n, const char *want, const char *want_parent)
{
    struct cpt_list cpt = {.names = names, .n = n};
    char next[128], parent[128];
    checkpoint_next(&cpt, next, sizeof next, parent, sizeof parent);
    CHECK_MSG(strcmp(next, want) == 0 && strcmp(parent, want_parent) == 0,
              "next %s parent %s, want %s parent %s", next, parent, want, want_parent);
}

static void test_next_checkpoint(void)
{
    check_next((char *[]){"virtnbdbackup.0"}, 1, "virtnbdbackup.1", "virtnbdbackup.0");
    check_next((char *[]){"virtnbdbackup.0", "virtnbdbackup.1", "virtnbdbackup.2"}, 3,
               "virtnbdbackup.3", "virtnbdbackup.2");
    /* numbers never repeat: one above the highest, even when it is not the last */
    check_next((char *[]){"virtnbdbackup.0", "virtnbdbackup.9", "virtnbdbackup.4"}, 3,
               "virtnbdbackup.10", "virtnbdbackup.4");
    /* names that are not ours take no number */
    check_next((char *[]){"virtnbdbackup.2", "virtnbdbackup.x", "other.7"}, 3, "virtnbdbackup.3",
               "other.7");
    check_next((char *[]){"virtnbdbackup."}, 1, "virtnbdbackup.0", "virtnbdbackup.");
}

int main(void)
{
    test_levels();
    test_next_checkpoint();
    return test_finish("test_levels");
}
