/* Reading a small file whole (the overlay's map file and map log), from an fd the caller
 * opened and keeps. */
#ifndef VB_MAP_READ_WHOLE_H
#define VB_MAP_READ_WHOLE_H

#include <stddef.h>
#include <stdint.h>

#include "error.h"

/* Reads the whole file open at fd (path: for messages) into *buf (malloc'd, never NULL on
 * success) and its length into *len. A file that shrinks while being read is an error. 0, or
 * -1 with err set and nothing allocated; fd stays open either way. */
int read_whole_fd(int fd, const char *path, uint8_t **buf, size_t *len, struct vb_error *err);

#endif
