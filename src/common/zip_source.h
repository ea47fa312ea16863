/* Random-access input from the zip files that `virtbackup -o -` (and the reference's zip mode)
 * write: every entry STORED (possibly zip64, possibly with data descriptors), arcname = a
 * relative name. Entries are read in place through libzip, never unpacked. Opening the
 * archive validates every entry name (no absolute paths, no "..", no duplicates) and refuses
 * compressed or encrypted entries, so later lookups can trust the names. */
#ifndef VB_ZIP_SOURCE_H
#define VB_ZIP_SOURCE_H

#include <stddef.h>
#include <stdint.h>

#include "error.h"
#include "source.h"

struct vb_zip;

struct vb_zip *vb_zip_open(const char *path, struct vb_error *err);
/* Drops the caller's reference; sources opened from it keep the archive alive. */
void vb_zip_close(struct vb_zip *zip);

const char *vb_zip_path(const struct vb_zip *zip);
/* Regular entries (directories are skipped), in archive order. */
size_t vb_zip_count(const struct vb_zip *zip);
const char *vb_zip_name(const struct vb_zip *zip, size_t i);
uint64_t vb_zip_size(const struct vb_zip *zip, size_t i);
/* Index of the entry called name, or -1. */
long vb_zip_find(const struct vb_zip *zip, const char *name);

/* A stream_source over entry i: pread at any offset, safe from several threads (reads of one
 * archive are serialised). Its name is "<zip path>:<entry>". */
struct stream_source *vb_zip_source_open(struct vb_zip *zip, size_t i, struct vb_error *err);

/* Checks one entry name as the archive writer would have made it: relative, no "." or ".."
 * component, no empty component, no backslash. Exposed for tests. */
int vb_zip_name_ok(const char *name);

#endif
