/* Where a stream's bytes come from: random-access reads (a file, or a stored zip entry). */
#ifndef VB_SOURCE_H
#define VB_SOURCE_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "error.h"

struct stream_source;

struct stream_source_ops {
    /* Reads up to len bytes at off; returns the count (short only at the end) or -1. */
    ssize_t (*pread)(struct stream_source *src, void *buf, size_t len, uint64_t off,
                     struct vb_error *err);
    void (*free)(struct stream_source *src);
};

struct stream_source {
    const struct stream_source_ops *ops;
    char *name;    /* for messages */
    uint64_t size; /* total bytes */
};

/* Reads exactly len bytes at off, or fails with "<name>: offset N: short read". */
int stream_source_read_exact(struct stream_source *src, void *buf, size_t len, uint64_t off,
                             struct vb_error *err);

struct stream_source *stream_source_file_open(const char *path, struct vb_error *err);
/* The same for a file that must be a regular file reached without a symbolic link in its last
 * component (a link could name any host file): the file checked is the file read. */
struct stream_source *stream_source_file_open_nofollow(const char *path, struct vb_error *err);
/* The descriptor of a source made by the two above (for lseek/fadvise), else -1. */
int stream_source_file_fd(const struct stream_source *src);

void stream_source_free(struct stream_source *src);

#endif
