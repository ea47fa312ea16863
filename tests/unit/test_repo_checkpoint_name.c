/* src/repo: the names of a repository's libvirt checkpoints, "virtnbdbackup.<repo id>.<n>"
 * (virtbackup(1), REPOSITORY OUTPUT): made, parsed back, and told apart from a stream chain's
 * "virtnbdbackup.<n>", another repository's and malformed names. */
#include <limits.h>
#include <stdio.h>
#include <string.h>

#include "repo_checkpoint.h"
#include "testutil.h"

static const char *ID = "0123456789abcdef0123456789abcdef";
static const char *OTHER = "fedcba9876543210fedcba9876543210";

int main(void)
{
    char name[REPO_CHECKPOINT_NAME_MAX];
    CHECK(repo_checkpoint_name(ID, 0, name, sizeof name) == 0);
    CHECK(strcmp(name, "virtnbdbackup.0123456789abcdef0123456789abcdef.0") == 0);
    CHECK(repo_checkpoint_number(name, ID) == 0);
    CHECK(repo_checkpoint_number(name, NULL) == 0);
    CHECK(repo_checkpoint_number(name, OTHER) == -1);
    CHECK(repo_checkpoint_is_repository(name));

    CHECK(repo_checkpoint_name(ID, 17, name, sizeof name) == 0);
    CHECK(repo_checkpoint_number(name, ID) == 17);
    CHECK(repo_checkpoint_name(ID, LONG_MAX, name, sizeof name) == 0);
    CHECK(repo_checkpoint_number(name, ID) == LONG_MAX);

    /* what cannot be made */
    CHECK(repo_checkpoint_name(ID, -1, name, sizeof name) == -1);
    CHECK(repo_checkpoint_name("0123456789ABCDEF0123456789abcdef", 0, name, sizeof name) == -1);
    CHECK(repo_checkpoint_name("0123", 0, name, sizeof name) == -1);
    CHECK(repo_checkpoint_name(NULL, 0, name, sizeof name) == -1);
    CHECK(repo_checkpoint_name(ID, 1, name, 20) == -1);

    /* not a repository's checkpoint */
    const char * not [] = {
        "virtnbdbackup.0",
        "virtnbdbackup.17",
        "virtnbdbackup",
        "virtnbdbackup.",
        "backup.0123456789abcdef0123456789abcdef.0",
        "virtnbdbackup.0123456789abcdef0123456789abcdef",
        "virtnbdbackup.0123456789abcdef0123456789abcdef.",
        "virtnbdbackup.0123456789abcdef0123456789abcdef.01",
        "virtnbdbackup.0123456789abcdef0123456789abcdef.-1",
        "virtnbdbackup.0123456789abcdef0123456789abcdef.1x",
        "virtnbdbackup.0123456789abcdef0123456789abcdef.99999999999999999999",
        "virtnbdbackup.0123456789ABCDEF0123456789abcdef.0",
        "virtnbdbackup.0123456789abcdef0123456789abcde.0",
        "virtnbdbackup.0123456789abcdef0123456789abcdef0.0",
        "",
        NULL,
    };
    for (size_t i = 0; i < sizeof not / sizeof *not ; i++) {
        CHECK_MSG(repo_checkpoint_number(not [i], NULL) == -1, "%s", not [i] ? not [i] : "NULL");
        CHECK_MSG(!repo_checkpoint_is_repository(not [i]), "%s", not [i] ? not [i] : "NULL");
    }
    return test_finish("test_repo_checkpoint_name");
}
