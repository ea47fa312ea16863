/* The copy-on-write layer of an export: guest writes land in a sparse overlay file of the
 * disk's size, and a map with two bits per 4 KiB block says where each block's current
 * content is: still the backup's, written to the overlay, or zeroed/trimmed. Backup files
 * are never opened for writing. The map is kept in memory in 1 GiB chunks allocated on first
 * write (an untouched 1 TiB disk costs nothing) and saved next to the overlay file on flush
 * and at exit, so that an --overlay directory can be used again by a later run of the same
 * chain. Not locked: the export serialises writers against readers. */
#ifndef VM_OVERLAY_H
#define VM_OVERLAY_H

#include <stdint.h>

#include "error.h"

#define OVERLAY_BLOCK 4096u

enum overlay_state { OVERLAY_BASE = 0, OVERLAY_DATA = 1, OVERLAY_ZERO = 2 };

struct overlay;

/* Opens or creates <dir>/<name>.overlay and <dir>/<name>.overlay.map. identity names the
 * chain and point in time; an existing map made for another identity or size is refused. */
struct overlay *overlay_open(const char *dir, const char *name, uint64_t size, const char *identity,
                             struct vb_error *err);
/* The overlay is thrown away at exit (virtmap's private directory): its map is never saved,
 * so that a flush or the exit does not fail on a full filesystem for a file nobody reads. */
void overlay_set_temporary(struct overlay *o);
/* Saves the map (when changed) and closes. */
int overlay_close(struct overlay *o, struct vb_error *err);

/* The state at off and how many bytes from off (at most max) share it. */
enum overlay_state overlay_run(const struct overlay *o, uint64_t off, uint64_t max, uint64_t *run);

/* Marks the blocks covering [off, off+len) (off block-aligned; len aligned or reaching the
 * end of the disk). */
int overlay_mark(struct overlay *o, uint64_t off, uint64_t len, enum overlay_state state,
                 struct vb_error *err);

int overlay_pread(struct overlay *o, uint64_t off, uint64_t len, void *dst, struct vb_error *err);
int overlay_pwrite(struct overlay *o, uint64_t off, uint64_t len, const void *src,
                   struct vb_error *err);
/* Frees the overlay file's space of a zeroed range (best effort). */
void overlay_punch(struct overlay *o, uint64_t off, uint64_t len);

/* Data to stable storage, then the map. */
int overlay_sync(struct overlay *o, struct vb_error *err);
int overlay_datasync(struct overlay *o, struct vb_error *err);

/* Blocks in each state (for logs and tests). */
void overlay_counts(const struct overlay *o, uint64_t *data_blocks, uint64_t *zero_blocks);

#endif
