/* Error reporting with context: functions return -1 and fill a vb_error;
 * only a tool's main() decides what to print and which exit status to use. */
#ifndef VB_ERROR_H
#define VB_ERROR_H

#include <stdarg.h>

#define VB_ERROR_MAX 1024

struct vb_error {
    char msg[VB_ERROR_MAX];
    int errnum; /* errno of the failing system call, or 0 */
};

/* Sets the message (printf format). Returns -1 so callers can `return vb_error_set(...)`. */
int vb_error_set(struct vb_error *err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Like vb_error_set, appending ": strerror(errno)" and recording errno. */
int vb_error_errno(struct vb_error *err, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* Prepends context ("<context>: <old message>"). Returns -1. */
int vb_error_prefix(struct vb_error *err, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

void vb_error_clear(struct vb_error *err);

#endif
