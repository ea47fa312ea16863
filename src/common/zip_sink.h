/* A zip64 archive written to a pipe with libarchive (libzip cannot write to a pipe), for
 * `virtbackup -o -`: STORED entries named by basename, as the reference's zip mode writes
 * them, so virtrestore can read the data in place. A failed run abandons the archive without
 * a central directory, so a broken stream never looks like a valid zip. */
#ifndef VB_ZIP_SINK_H
#define VB_ZIP_SINK_H

#include <stdbool.h>
#include <stddef.h>

#include "error.h"
#include "sink.h"

struct vb_zip_writer;

struct vb_zip_writer *vb_zip_writer_open_fd(int fd, struct vb_error *err);

/* A stream sink for one entry; commit adds "<name>.chksum" holding the decimal adler32.
 * Only one entry can be open at a time (the archive is sequential). */
struct stream_sink *vb_zip_entry_sink(struct vb_zip_writer *zw, const char *name,
                                      struct vb_error *err);

/* A whole entry from memory. */
int vb_zip_add_buffer(struct vb_zip_writer *zw, const char *name, const void *data, size_t len,
                      struct vb_error *err);
/* A whole entry from a file. */
int vb_zip_add_file(struct vb_zip_writer *zw, const char *name, const char *path,
                    struct vb_error *err);

/* ok: writes the central directory and closes. !ok: abandons the archive (no central
 * directory). Frees zw either way. */
int vb_zip_writer_close(struct vb_zip_writer *zw, bool ok, struct vb_error *err);

#endif
