#include "repo_checkpoint.h"

#include "checkpoint_number.h"

#include <stdio.h>
#include <string.h>

#define ID_LEN 32

static bool is_repo_id(const char *s)
{
    for (size_t i = 0; i < ID_LEN; i++)
        if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
            return false;
    return true;
}

int repo_checkpoint_name(const char *repo_id, long n, char *out, size_t len)
{
    if (!repo_id || strlen(repo_id) != ID_LEN || !is_repo_id(repo_id) || n < 0)
        return -1;
    int w = snprintf(out, len, "%s%s.%ld", REPO_CHECKPOINT_PREFIX, repo_id, n);
    return w < 0 || (size_t)w >= len ? -1 : 0;
}

long repo_checkpoint_number(const char *name, const char *repo_id)
{
    static const char prefix[] = REPO_CHECKPOINT_PREFIX;
    if (!name || strncmp(name, prefix, sizeof prefix - 1) != 0)
        return -1;
    const char *id = name + sizeof prefix - 1;
    if (strnlen(id, ID_LEN) < ID_LEN || !is_repo_id(id) || id[ID_LEN] != '.')
        return -1;
    if (repo_id && strncmp(id, repo_id, ID_LEN) != 0)
        return -1;
    return stream_checkpoint_digits(id + ID_LEN + 1);
}

bool repo_checkpoint_is_repository(const char *name)
{
    return repo_checkpoint_number(name, NULL) >= 0;
}
