/* The checkpoint-number rule of virtbackup-stream(5) (CHAINS: checkpoints are named
 * virtnbdbackup.N): the names both tools write are read back as N, anything else is refused,
 * and chain_classify orders a chain by the same rule (it refuses the file of a name the rule
 * refuses). */
#include <limits.h>
#include <stdio.h>
#include <string.h>

#include "chain.h"
#include "checkpoint_number.h"
#include "testutil.h"

static const struct {
    const char *name;
    long want;
} cases[] = {
    {"virtnbdbackup.0", 0},
    {"virtnbdbackup.1", 1},
    {"virtnbdbackup.17", 17},
    {"virtnbdbackup.9223372036854775807", LONG_MAX},
    /* refused: not the form either tool writes */
    {"virtnbdbackup.9223372036854775808", -1}, /* does not fit */
    {"virtnbdbackup.", -1},
    {"virtnbdbackup", -1},
    {"virtnbdbackup.01", -1}, /* would collide with virtnbdbackup.1 */
    {"virtnbdbackup.+3", -1},
    {"virtnbdbackup.-0", -1},
    {"virtnbdbackup.-1", -1},
    {"virtnbdbackup. 3", -1},
    {"virtnbdbackup.3 ", -1},
    {"virtnbdbackup.3x", -1},
    {"virtnbdbackup.1.2", -1},
    {"virtnbdbackup0", -1},
    {"Virtnbdbackup.3", -1},
    {"other.3", -1},
    {"x.virtnbdbackup.3", -1},
    {".3", -1},
    {"3", -1},
    {"", -1},
};

static void test_parser(void)
{
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        long got = stream_checkpoint_number(cases[i].name);
        CHECK_MSG(got == cases[i].want, "\"%s\": %ld, want %ld", cases[i].name, got, cases[i].want);
    }
    CHECK(stream_checkpoint_number(NULL) == -1);
}

/* chain_classify takes the number from the META checkpointName by the same rule */
static void test_chain_classify(void)
{
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        struct chain_file f;
        memset(&f, 0, sizeof f);
        f.path = "d/vda.full.data";
        stream_meta_init(&f.meta);
        snprintf(f.meta.checkpoint_name, sizeof f.meta.checkpoint_name, "%s", cases[i].name);
        struct vb_error err = {0};
        int rc = chain_classify(&f, &err);
        if (cases[i].want >= 0) {
            CHECK_MSG(rc == 0 && f.checkpoint_number == cases[i].want, "\"%s\": rc %d, N %ld: %s",
                      cases[i].name, rc, f.checkpoint_number, err.msg);
        } else {
            CHECK_MSG(rc < 0 && strstr(err.msg, "is not virtnbdbackup.N"),
                      "\"%s\" accepted by chain_classify (N %ld)", cases[i].name,
                      f.checkpoint_number);
        }
    }
}

int main(void)
{
    test_parser();
    test_chain_classify();
    return test_finish("test_checkpoint_number");
}
