/* A data source behind an export: what the export serves below its overlay when the backup
 * is not a stream chain or raw image of a backup set (export.c reads those itself). A
 * repository snapshot's disk is one (repo_source.h). Every operation may be called from
 * several connections' threads at once. */
#ifndef VM_MAP_SOURCE_H
#define VM_MAP_SOURCE_H

#include <stddef.h>
#include <stdint.h>

#include "error.h"

struct map_source;

struct map_source_ops {
    /* len bytes at off into dst; off + len lies inside the disk. 0, or -1. */
    int (*read)(struct map_source *s, uint64_t off, size_t len, void *dst, struct vb_error *err);
    /* NBD_STATE_* flags of the data at off, and how far they hold (*run, at most max). */
    uint32_t (*status)(struct map_source *s, uint64_t off, uint64_t max, uint64_t *run);
    /* NBD_CMD_CACHE: fetch ahead what [off, off + len) needs, without waiting for it. */
    void (*prefetch)(struct map_source *s, uint64_t off, uint64_t len);
    /* --verify: every piece of data fetched and checked once. 0, or -1. */
    int (*verify)(struct map_source *s, struct vb_error *err);
    void (*close)(struct map_source *s);
};

struct map_source {
    const struct map_source_ops *ops;
    uint64_t size;
    char *description; /* one line, for NBD_OPT_LIST and logs */
    char *identity;    /* what a saved overlay must have been made for (overlay_identity.h) */
};

#endif
