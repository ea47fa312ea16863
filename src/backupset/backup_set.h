/* A backup set: the files of one backup chain, whatever keeps them (a backup directory, zip
 * files written by `virtbackup -o -`, data files named one by one; see store.h), under
 * relative names ("vda.full.data", "checkpoints/virtnbdbackup.0.xml"). virtrestore and
 * virtmap read backups only through this layer: the chain rules of virtbackup-stream(5)
 * (plan.h), the .chksum files (chksum.h) and the vmconfig and boot files of a point
 * (vmconfig.h) are written once, above it. */
#ifndef BSET_BACKUP_SET_H
#define BSET_BACKUP_SET_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "error.h"
#include "source.h"

struct bset;

/* spec: a directory, a zip file, or a comma list of zip files (a path that exists is one
 * input, even with a comma in its name). */
struct bset *bset_open(const char *spec, struct vb_error *err);
/* A comma list of data files, each wherever it is (listed under its base name). */
struct bset *bset_open_files(const char *list, struct vb_error *err);
/* The files of a repository snapshot that are not disk data: vmconfig.<id>.xml, the
 * <dev>.<id>.qcow.json and the boot files as <basename>.<id> (store.h). r must outlive the
 * set. */
struct repo;
struct repo_manifest;
struct bset *bset_open_repo_snapshot(struct repo *r, const struct repo_manifest *m,
                                     struct vb_error *err);
void bset_free(struct bset *set);

/* What the set is, for messages: the directory or the list as given. */
const char *bset_describe(const struct bset *set);

/* All file names, sorted by name (ordering never comes from modification times). */
size_t bset_count(const struct bset *set);
const char *bset_name(const struct bset *set, size_t i);
bool bset_has(const struct bset *set, const char *name);
/* A regular file reached without a symbolic link (which could name any host file): what a
 * boot file copied out of the set must be. */
bool bset_is_plain(const struct bset *set, const char *name);
/* The path to show for a name: "<dir>/<name>" or "<zip>:<name>". Malloc'ed. */
char *bset_display(const struct bset *set, const char *name);

/* Random-access reader of one file. */
struct stream_source *bset_source(struct bset *set, const char *name, struct vb_error *err);
/* The whole (small) file, NUL-terminated. Refuses files above max bytes. */
int bset_read(struct bset *set, const char *name, size_t max, char **data, size_t *len,
              struct vb_error *err);
/* Copies a file to dest (created exclusively, mode 0600 unless mode given), keeping holes
 * for all-zero blocks. With adler non-NULL, also the file's adler32, from the same reads. */
int bset_copy(struct bset *set, const char *name, const char *dest, unsigned mode, uint32_t *adler,
              struct vb_error *err);

#endif
