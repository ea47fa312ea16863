#include "env_knobs.h"

#include <stdlib.h>
#include <string.h>

size_t vb_env_size(const char *name, size_t def, size_t min, size_t max)
{
    const char *v = getenv(name);
    if (!v || !*v)
        return def;
    char *end;
    unsigned long long n = strtoull(v, &end, 10);
    if (*end == 'k' || *end == 'K')
        n <<= 10;
    else if (*end == 'm' || *end == 'M')
        n <<= 20;
    return n < min ? min : n > max ? max : (size_t)n;
}

int vb_env_count(const char *name, int max)
{
    const char *v = getenv(name);
    if (!v || !*v)
        return -1;
    char *end;
    long n = strtol(v, &end, 10);
    if (*end || n < 0)
        return -1;
    return n > max ? max : (int)n;
}

char *vb_env_take_secret(const char *name)
{
    char *env = getenv(name);
    if (!env)
        return NULL;
    char *copy = strdup(env);
    memset(env, 'x', strlen(env));
    unsetenv(name);
    return copy;
}
