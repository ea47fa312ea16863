/* Running a program without a shell while capturing its output (the local host's commands,
 * host_local.c). */
#ifndef VB_SUBPROCESS_H
#define VB_SUBPROCESS_H

#include <stddef.h>

#include "error.h"

/* Runs argv[0] (searched in PATH) with argv, stdin from /dev/null; returns its stdout
 * (malloc'ed, NUL-terminated) in *out (out and len may be NULL). Fails naming the program and its
 * stderr's first line when it exits non-zero. */
int vb_run_capture(char *const argv[], char **out, size_t *len, struct vb_error *err);

#endif
