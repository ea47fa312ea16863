/* Reading the environment variables of the tools' man pages (ENVIRONMENT): each tool's main
 * reads them once and passes the values down in its options; nothing below main calls
 * getenv. */
#ifndef VB_ENV_KNOBS_H
#define VB_ENV_KNOBS_H

#include <stddef.h>

/* A byte count or number, with an optional k/K or m/M suffix, clamped to [min, max]; def
 * when the variable is unset or empty. */
size_t vb_env_size(const char *name, size_t def, size_t min, size_t max);

/* A count of 0 or more, at most max; -1 when unset, empty or not such a number. */
int vb_env_count(const char *name, int max);

/* A secret (a password): a copy of its value, or NULL when unset. The variable's bytes are
 * overwritten where they were (what /proc/PID/environ shows) and the variable is removed,
 * so that no child process inherits it. The caller frees (and clears) the copy. */
char *vb_env_take_secret(const char *name);

#endif
