#include "error.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

int vb_error_set(struct vb_error *err, const char *fmt, ...)
{
    if (!err)
        return -1;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err->msg, sizeof err->msg, fmt, ap);
    va_end(ap);
    err->errnum = 0;
    return -1;
}

int vb_error_errno(struct vb_error *err, const char *fmt, ...)
{
    int saved = errno;
    if (!err)
        return -1;
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(err->msg, sizeof err->msg, fmt, ap);
    va_end(ap);
    if (n >= 0 && (size_t)n < sizeof err->msg)
        snprintf(err->msg + n, sizeof err->msg - (size_t)n, ": %s", strerror(saved));
    err->errnum = saved;
    errno = saved;
    return -1;
}

int vb_error_prefix(struct vb_error *err, const char *fmt, ...)
{
    if (!err)
        return -1;
    char prefix[VB_ERROR_MAX];
    char old[VB_ERROR_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(prefix, sizeof prefix, fmt, ap);
    va_end(ap);
    memcpy(old, err->msg, sizeof old);
    /* prefix + ": " + old, truncated to the buffer (truncation is fine for messages) */
    size_t plen = strnlen(prefix, sizeof err->msg - 1);
    memcpy(err->msg, prefix, plen);
    size_t used = plen;
    for (const char *s = ": "; *s && used < sizeof err->msg - 1; s++)
        err->msg[used++] = *s;
    size_t olen = strnlen(old, sizeof old);
    if (olen > sizeof err->msg - 1 - used)
        olen = sizeof err->msg - 1 - used;
    memcpy(err->msg + used, old, olen);
    err->msg[used + olen] = '\0';
    return -1;
}

void vb_error_clear(struct vb_error *err)
{
    if (err) {
        err->msg[0] = '\0';
        err->errnum = 0;
    }
}
