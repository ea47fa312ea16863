/* What a saved overlay was made for: a text that tells backups apart, kept in the overlay's
 * map and compared when the overlay is opened again, so that an overlay written on one VM's
 * backup is never applied to another's (whose files have the same names and may have the
 * same size). For a chain, every file's name, size and META frame (disk, checkpoint, parent,
 * date, data and virtual size, level, compression): two backups differ at least in the
 * date, to the microsecond. A raw .copy.data image has no META: its size and a crc32 of 256
 * pieces of 16 KiB spread evenly over it (the first and last included), so two images that
 * differ only between those pieces are taken for one. A repository snapshot's disk: the
 * repository's id, the VM's uuid, the snapshot's id, the disk's target, size and index
 * digest (a later snapshot has another id even where its data is the same). The first line is a
 * one-line summary for messages (first and last file, checkpoint, date, disk size). */
#ifndef VM_OVERLAY_IDENTITY_H
#define VM_OVERLAY_IDENTITY_H

#include <stddef.h>
#include <stdint.h>

#include "error.h"
#include "manifest.h"
#include "source.h"
#include "stream_index.h"

/* The identity of a chain of n stream files (oldest first) of a disk of size bytes. */
char *overlay_identity_chain(struct stream_index *const *files, char *const *paths, size_t n,
                             uint64_t size, struct vb_error *err);

/* The identity of a raw image read through src (named name). */
char *overlay_identity_raw(struct stream_source *src, const char *name, uint64_t size,
                           struct vb_error *err);

/* The identity of disk d of snapshot m of the repository whose config id is repo_id. */
char *overlay_identity_repo(const char *repo_id, const struct repo_manifest *m,
                            const struct repo_manifest_disk *d, struct vb_error *err);

/* The first line of an identity (from a file, so untrusted), control characters escaped and
 * cut to fit len. */
void overlay_identity_summary(const char *identity, char *buf, size_t len);

#endif
