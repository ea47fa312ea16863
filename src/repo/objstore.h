/* The object-store interface of a repository: whole immutable objects under '/'-separated
 * keys. Nothing above it renames, appends or locks, so every backend (a local directory,
 * later object storage) offers the same seven operations. The key layout and the guarantees
 * are in virtbackup-repository(5). */
#ifndef VB_REPO_OBJSTORE_H
#define VB_REPO_OBJSTORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "error.h"

struct repo_store; /* opaque, one per backend instance */

/* What the store knows of an object: its size, and its modification time as the store's own
 * clock set it (seconds since the epoch): garbage collection and sessions compare only these
 * times with each other (virtbackup-repository(5)). */
struct repo_stat {
    uint64_t size;
    int64_t mtime;
};

struct repo_store_ops {
    /* Whole object, atomic (exists complete or not at all) and durable when it returns 0.
     * Putting a key that exists replaces it (content-addressed callers put identical bytes). */
    int (*put)(struct repo_store *s, const char *key, const void *data, size_t len,
               struct vb_error *err);
    /* The same, only where the key does not exist: 1 (nothing written) when it does. Of
     * several writers putting one new key at once exactly one gets 0. For objects that are not
     * content-addressed (the config, manifests), which must never be replaced. */
    int (*put_new)(struct repo_store *s, const char *key, const void *data, size_t len,
                   struct vb_error *err);
    /* len 0: from off to the end. Returns 0 (data malloc'ed, *got bytes), 1 if the key does
     * not exist, -1 on error. */
    int (*get)(struct repo_store *s, const char *key, uint64_t off, size_t len, void **data,
               size_t *got, struct vb_error *err);
    /* 0 exists (*st set), 1 missing, -1 error */
    int (*head)(struct repo_store *s, const char *key, struct repo_stat *st, struct vb_error *err);
    /* Keys starting with prefix, in byte order, strictly after `after` (NULL: from the first),
     * at most max of them (0: backend's default page): each passed to fn; *more set true when
     * another page follows (then call again with after = the last key seen). */
    int (*list)(struct repo_store *s, const char *prefix, const char *after, size_t max,
                int (*fn)(void *ctx, const char *key, const struct repo_stat *st,
                          struct vb_error *err),
                void *ctx, bool *more, struct vb_error *err);
    /* Puts under dst the bytes of src (a whole object, atomic and durable as put): 0, 1 when
     * src does not exist, -1 on error. "Moving" an object is copy then del of the source. */
    int (*copy)(struct repo_store *s, const char *src, const char *dst, struct vb_error *err);
    /* 0 deleted, 1 did not exist, -1 error */
    int (*del)(struct repo_store *s, const char *key, struct vb_error *err);
    void (*close)(struct repo_store *s);
};

struct repo_store {
    const struct repo_store_ops *ops;
    char *describe;
};

/* The local backend: key -> dir/key. put writes a temporary file in the same directory
 * (".<name>.XXXXXX.tmp"), fsyncs it, renames it over the key (put_new: hard-links it to the
 * key, which fails where the key exists, and removes the temporary name) and fsyncs the directory
 * (missing parent directories are created and fsynced too); temporary names are never
 * listed. Several processes may put at the same time. copy hard-links src to a temporary
 * name, renames that over dst and fsyncs dst's directory (read and put where a link cannot
 * be made). dir must exist. */
struct repo_store *repo_store_local_open(const char *dir, struct vb_error *err);

#endif
