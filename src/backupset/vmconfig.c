#include "vmconfig.h"

#include <libgen.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "checkpoint_name.h"
#include "log.h"

/* Order of a vmconfig ident along the chain: checkpoints by number, then diffs by time;
 * "copy" first. Higher is newer. */
static long long ident_rank(const char *ident)
{
    const char *p = "virtnbdbackup.";
    if (strncmp(ident, p, strlen(p)) == 0)
        return atoll(ident + strlen(p));
    if (strcmp(ident, "copy") == 0)
        return -1;
    return -2; /* a diff timestamp: ranked below checkpoints, see below */
}

static char *ident_of(const char *name)
{
    const char *pre = "vmconfig.", *suf = ".xml";
    size_t l = strlen(name);
    if (strncmp(name, pre, strlen(pre)) != 0 || l <= strlen(pre) + strlen(suf) ||
        strcmp(name + l - strlen(suf), suf) != 0)
        return NULL;
    return strndup(name + strlen(pre), l - strlen(pre) - strlen(suf));
}

int bset_vmconfig_newest(const struct bset *set, char **out, struct vb_error *err)
{
    char *best = NULL;
    long long best_rank = -3, best_ts = -1;
    *out = NULL;
    for (size_t i = 0; i < bset_count(set); i++) {
        char *id = ident_of(bset_name(set, i));
        if (!id)
            continue;
        if (vb_checkpoint_name_problem(id)) {
            char *shown = bset_display(set, bset_name(set, i));
            vb_checkpoint_name_check(id, shown ? shown : bset_name(set, i), err);
            free(shown);
            free(id);
            free(best);
            return -1;
        }
        long long r = ident_rank(id), ts = r == -2 ? atoll(id) : -1;
        if (r > best_rank || (r == best_rank && ts > best_ts)) {
            free(best);
            best = id;
            best_rank = r;
            best_ts = ts;
        } else {
            free(id);
        }
    }
    *out = best;
    return 0;
}

/* A copy of a boot file must be a plain file: from a directory, not a symbolic link. */
static bool plain_copy(const struct bset *set, const char *name)
{
    if (!bset_has(set, name))
        return false;
    if (bset_is_plain(set, name))
        return true;
    char *shown = bset_display(set, name);
    vb_warn("%s: not a regular file, not used as a boot file", shown ? shown : name);
    free(shown);
    return false;
}

int bset_boot_file(const struct bset *set, const char *orig, const char *ident, char *name,
                   size_t len)
{
    char *tmp = strdup(orig);
    const char *base = tmp ? basename(tmp) : "";
    int found = -1;
    if (*base && strcmp(base, ".") != 0 && strcmp(base, "..") != 0 && strcmp(base, "/") != 0) {
        snprintf(name, len, "%s.%s", base, ident);
        if (!plain_copy(set, name))
            snprintf(name, len, "%s", base);
        found = plain_copy(set, name) ? 1 : 0;
    }
    free(tmp);
    return found;
}
