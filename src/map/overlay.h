/* The copy-on-write layer of an export: guest writes land in a sparse overlay file of the
 * disk's size, and a map with two bits per 4 KiB block says where each block's current
 * content is: still the backup's, written to the overlay, or zeroed/trimmed. Backup files
 * are never opened for writing. The map is kept in memory in 1 GiB chunks allocated on first
 * write (an untouched 1 TiB disk costs nothing). So that an --overlay directory can be used
 * again by a later run of the same chain, it is kept on disk too:
 *   <name>.overlay         the written blocks, at their offsets (sparse);
 *   <name>.overlay.map     a checkpoint of the whole map (overlay_mapfile.h);
 *   <name>.overlay.maplog  the map's changes since then (overlay_maplog.h).
 * A sync (flush, FUA) makes the data file stable first, then appends the map words changed
 * since the last sync to the log and syncs it: what a sync acknowledged survives a crash. When
 * the log has grown past the map's size (plus 4 MiB), and at a clean close, the whole map is
 * saved instead and a new log started. Opening loads the map and replays the log.
 * One process at a time uses an overlay (a lock on the data file). Reads, writes and marks
 * are not locked here: the export serialises writers against readers and syncs (overlay_sync
 * takes its lock for reading while it collects the changes). */
#ifndef VM_OVERLAY_H
#define VM_OVERLAY_H

#include <pthread.h>
#include <stdint.h>

#include "error.h"

#define OVERLAY_BLOCK 4096u

enum overlay_state { OVERLAY_BASE = 0, OVERLAY_DATA = 1, OVERLAY_ZERO = 2 };

struct overlay;

/* Opens or creates the overlay files <dir>/<name>.overlay*. identity names the chain and
 * point in time (overlay_identity.h); an existing map made for another identity or size is
 * refused, naming both; a damaged map or log, or one of an older format, is refused. */
struct overlay *overlay_open(const char *dir, const char *name, uint64_t size, const char *identity,
                             struct vb_error *err);
/* The overlay is thrown away at exit (virtmap's private directory): its map is never saved
 * or logged, so that a flush or the exit does not fail on a full filesystem for a file
 * nobody reads; a sync only syncs the data file. */
void overlay_set_temporary(struct overlay *o);
/* Syncs, saves the whole map (when the log holds changes) and closes. An error means that
 * changes never synced may be lost; a failure to fold the log into the map loses nothing
 * (only logged). */
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

/* Makes every write and mark that completed before the call durable: the data file first,
 * then the map's changes. map_lock is the lock under which writers call overlay_pwrite and
 * overlay_mark (NULL: no concurrent writers); it is held for reading only while the changes
 * are collected. Syncs are serialised: one that starts while another runs waits for it and
 * then saves what the other had not collected. */
int overlay_sync(struct overlay *o, pthread_rwlock_t *map_lock, struct vb_error *err);

/* Blocks in each state (for logs and tests). */
void overlay_counts(const struct overlay *o, uint64_t *data_blocks, uint64_t *zero_blocks);

#endif
