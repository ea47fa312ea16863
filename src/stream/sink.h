/* Where a stream's bytes go. Two implementations: a file committed with the crash-safe order
 * of virtbackup-stream(5) (this library), and a zip entry on a pipe (src/common). */
#ifndef VB_SINK_H
#define VB_SINK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "error.h"

struct stream_sink;

struct stream_sink_ops {
    int (*write)(struct stream_sink *sink, const void *buf, size_t len, struct vb_error *err);
    /* Makes the stream durable and visible under its final name. With have_checksum, the
     * adler32 of all bytes written is stored beside it (as <name>.chksum for files). */
    int (*commit)(struct stream_sink *sink, bool have_checksum, uint32_t checksum,
                  struct vb_error *err);
    /* Discards everything written; nothing that looks complete remains. */
    void (*abort)(struct stream_sink *sink);
    void (*free)(struct stream_sink *sink);
    /* Optional: sinks that checksum the bytes themselves (computes_checksum) report the
     * adler32 of everything written here. */
    uint32_t (*checksum)(struct stream_sink *sink);
};

struct stream_sink {
    const struct stream_sink_ops *ops;
    char *name; /* for messages: the final path or entry name */
    /* the sink computes the stream's adler32 itself: the writer does not, and commit's
     * checksum argument is ignored in favour of the sink's own */
    bool computes_checksum;
};

static inline int stream_sink_write(struct stream_sink *s, const void *buf, size_t len,
                                    struct vb_error *err)
{
    return s->ops->write(s, buf, len, err);
}

/* Frees the sink; if it was neither committed nor aborted, aborts it first. */
void stream_sink_free(struct stream_sink *sink);

/* Runs inner's writes and the adler32 of the stream on a thread of its own, so that the
 * thread that frames and compresses never waits for write(2) or the checksum. Bytes are
 * copied into nchunks buffers of chunk bytes (the memory bound). Takes ownership of inner. */
struct stream_sink *stream_sink_async(struct stream_sink *inner, size_t chunk, size_t nchunks,
                                      struct vb_error *err);

/* A file sink: writes <path>.partial; commit = stream_commit_file. Refuses to start if <path>
 * exists. */
struct stream_sink *stream_sink_file_open(const char *path, struct vb_error *err);

/* The commit order of virtbackup-stream(5) for any fd already fully written to <path>.partial:
 * fsync, <path>.chksum from a unique temporary name (an existing one is swapped aside), the data's
 * no-replace rename, fsync of the directory. A data file never exists without its checksum;
 * a failed commit (the data file exists) leaves every existing file as it was. Shared by the
 * stream writer and the raw-image writer. */
int stream_commit_file(int fd, const char *path, bool have_checksum, uint32_t checksum,
                       struct vb_error *err);

/* rename(2) that never replaces an existing target: RENAME_NOREPLACE, on filesystems without
 * it link(2) + unlink(2), and only where neither exists a check first. */
int vb_rename_noreplace(const char *from, const char *to, struct vb_error *err);

#endif
