/* Small file helpers: atomic writes (temporary name, fsync, rename), mkdir -p. */
#ifndef VB_FILEUTIL_H
#define VB_FILEUTIL_H

#include <stddef.h>

#include "error.h"

/* Writes data to path through a new temporary <path>.XXXXXX.partial in the same directory
 * (created exclusively, mode 0644 less the umask), fsync, rename, fsync of the directory:
 * path is either the old or the whole new file, also after a crash, and concurrent writers of
 * one path never disturb each other (the last rename wins). */
int vb_write_file_atomic(const char *path, const void *data, size_t len, struct vb_error *err);

/* Copies a file the same way. */
int vb_copy_file_atomic(const char *from, const char *to, struct vb_error *err);

/* fsync of the directory holding path (after a file there was created or renamed). */
int vb_fsync_dir_of(const char *path, struct vb_error *err);

/* mkdir -p */
int vb_mkdir_p(const char *path, struct vb_error *err);

#endif
