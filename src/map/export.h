/* One served disk: the block provider behind an NBD export. Reads come from the overlay
 * where the guest wrote, else from the backup chain (chain index, O(log n) per request;
 * compressed streams through the LZ4 block reader and its cache; a raw .copy.data image
 * directly), all read through the backup set's sources (a directory's files, zip entries), or
 * from a data source (map_source.h: a repository snapshot's disk). Writes,
 * zeroes and trims go to the overlay. A read-write lock keeps a write's read-modify-write of
 * partial blocks and its map update atomic against readers and other writers of every connection,
 * which is what makes multi-conn safe: all connections see one overlay, and a flush on any of them
 * flushes it. */
#ifndef VM_EXPORT_H
#define VM_EXPORT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "backup_set.h"
#include "block_cache.h"
#include "error.h"
#include "lz4_reader.h"
#include "map_source.h"
#include "plan.h"
#include "stream_index.h"

struct map_export;

/* Per-thread scratch for reads (one per connection). */
struct export_io {
    struct stream_read_buf rb;
    struct lz4_scratch lz;
    void *block; /* one overlay block for read-modify-write */
};
void export_io_free(struct export_io *io);

/* The planned chain of one disk of set (which must outlive the export). overlay_dir NULL:
 * read-only (no writes possible). */
struct map_export *export_open(const char *name, struct bset *set, const struct bset_chain *dc,
                               const char *overlay_dir, struct block_cache *cache,
                               struct vb_error *err);
/* An export of another data source (map_source.h: a repository snapshot's disk), which it
 * owns from now on (also when it fails); its overlay identity is the source's. */
struct map_export *export_open_source(const char *name, struct map_source *src,
                                      const char *overlay_dir, struct vb_error *err);
int export_close(struct map_export *ex, struct vb_error *err);
/* --verify: every file of the chain read once before serving (LZ4 decoded with its checksums,
 * adler32 against .chksum); a data source checks all its data (a repository's chunks, each
 * against its digest). A raw .copy.data image has nothing to verify. */
int export_verify(struct map_export *ex, struct bset *set, struct vb_error *err);
/* The overlay is removed at exit: its map is not saved (overlay_set_temporary). */
void export_overlay_temporary(struct map_export *ex);

const char *export_name(const struct map_export *ex);
uint64_t export_size(const struct map_export *ex);
bool export_readonly(const struct map_export *ex);
/* A one-line description for NBD_OPT_LIST and logs. */
const char *export_description(const struct map_export *ex);

/* All ranges must lie inside the disk (the server validates them first). fua: durable (data
 * and map) before the call returns, as if a flush followed. */
int export_read(struct map_export *ex, struct export_io *io, uint64_t off, size_t len, void *dst,
                struct vb_error *err);
int export_write(struct map_export *ex, struct export_io *io, uint64_t off, size_t len,
                 const void *src, bool fua, struct vb_error *err);
/* WRITE_ZEROES and TRIM: both leave blocks reading as zeroes (a trimmed block may read as
 * anything; zeroes are the simplest answer and keep the overlay sparse). */
int export_zero(struct map_export *ex, struct export_io *io, uint64_t off, uint64_t len, bool fua,
                struct vb_error *err);
/* Every write that completed before the call is durable when it returns, whatever other
 * connections' flushes are doing meanwhile. */
int export_flush(struct map_export *ex, struct vb_error *err);
/* NBD_CMD_CACHE: reads ahead so that later reads are served from memory. */
int export_cache(struct map_export *ex, struct export_io *io, uint64_t off, uint64_t len,
                 struct vb_error *err);

/* base:allocation: calls fn for consecutive extents from off (flags NBD_STATE_*), until len
 * is covered, fn returns non-zero, or max_extents were reported. */
typedef int (*export_extent_fn)(void *opaque, uint64_t len, uint32_t flags);
int export_block_status(struct map_export *ex, uint64_t off, uint64_t len, size_t max_extents,
                        export_extent_fn fn, void *opaque, struct vb_error *err);

#endif
