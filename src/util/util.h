/* Small helpers shared by every library: whole writes, the last path component, zero tests. */
#ifndef VB_UTIL_H
#define VB_UTIL_H

#include <stdbool.h>
#include <stddef.h>

/* Writes all len bytes, retrying short writes and EINTR. 0, or -1 with errno set. */
int vb_write_all(int fd, const void *buf, size_t len);

/* The part of path after its last '/' (the whole path when it has none). Never allocates. */
const char *vb_base_name(const char *path);

/* True when all n bytes are zero (also for n == 0). */
bool vb_is_zero(const void *buf, size_t n);

#endif
