/* Where the files of a backup set are kept: the small table of operations a storage kind
 * implements (a directory, zip files, a list of files; a chunk repository or object storage
 * plug in here). Everything else of the layer (name lookup, planning, checksums, the vmconfig)
 * is written once above it, in terms of these operations. */
#ifndef BSET_STORE_H
#define BSET_STORE_H

#include <stdbool.h>
#include <stddef.h>

#include "error.h"
#include "source.h"

struct bset_store;

/* Called by list for every file: a relative name ("vda.full.data", "checkpoints/x.xml");
 * plain: a regular file reached without a symbolic link (always true for archive entries). */
typedef int (*bset_add_fn)(void *ctx, const char *name, bool plain, struct vb_error *err);

struct bset_store_ops {
    /* Every file of the set, each name once, in any order. */
    int (*list)(struct bset_store *st, bset_add_fn add, void *ctx, struct vb_error *err);
    /* A random-access reader of one listed file; plain as list said (a store that can tell
     * opens a plain file so that it cannot have been swapped for a link since). */
    struct stream_source *(*open)(struct bset_store *st, const char *name, bool plain,
                                  struct vb_error *err);
    /* The whole (small) file, NUL-terminated, at most max bytes; NULL: the layer reads it
     * through open. */
    int (*read)(struct bset_store *st, const char *name, size_t max, char **data, size_t *len,
                struct vb_error *err);
    /* How to show a file in messages ("<dir>/<name>", "<zip>:<name>"), malloc'ed. */
    char *(*display)(const struct bset_store *st, const char *name);
    void (*free)(struct bset_store *st);
};

struct bset_store {
    const struct bset_store_ops *ops;
    char *describe; /* the set as given, for messages */
};

/* The storage kinds. spec: as given on the command line. */
struct bset_store *bset_store_dir_open(const char *dir, struct vb_error *err);
/* A zip file, or (split) a comma list of zip files, the full first. */
struct bset_store *bset_store_zips_open(const char *spec, bool split, struct vb_error *err);
/* Files named one by one (comma list of paths), listed under their base names. */
struct bset_store *bset_store_files_open(const char *list, struct vb_error *err);
/* The domain config, saved image options and blobs of a repository snapshot (store_repo.c);
 * r must outlive the store. */
struct repo;
struct repo_manifest;
struct bset_store *bset_store_repo_open(struct repo *r, const struct repo_manifest *m,
                                        struct vb_error *err);

#endif
