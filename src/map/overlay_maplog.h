/* The overlay's map log (<name>.overlay.maplog): the block-map changes since the map file's
 * checkpoint, appended and fdatasync'ed before a flush or FUA write is acknowledged, so that
 * what was acknowledged survives a crash without rewriting the whole map each time.
 * Layout, integers little-endian:
 *   header (written atomically when the log starts): "VBOVLOG1", generation, instance
 *     (16 bytes), crc32 of those 32 bytes, 4 zero bytes;
 *   records, one per append: "VBLR", entry count, sequence number (1, 2, ...), per entry
 *     the index of a 64-bit map word and its new value, crc32 of the record so far.
 * Replay applies the records in order. Only the last append can be cut short by a crash
 * (each append is synced before the next), so a bad record with no valid record after it is
 * a torn tail: it was never acknowledged, and it is cut off. Anything else that does not
 * check out is damage and refuses the log. */
#ifndef VM_OVERLAY_MAPLOG_H
#define VM_OVERLAY_MAPLOG_H

#include <stddef.h>
#include <stdint.h>

#include "error.h"
#include "overlay_mapfile.h"

struct overlay_maplog;

struct overlay_maplog_entry {
    uint64_t word; /* chunk * OVERLAY_CHUNK_WORDS + word in the chunk */
    uint64_t value;
};

/* Sets one map word while a log is replayed; -1 fails the replay. */
typedef int (*overlay_maplog_apply_fn)(void *opaque, uint64_t word, uint64_t value,
                                       struct vb_error *err);

enum overlay_maplog_state {
    OVERLAY_MAPLOG_OPEN,    /* replayed, open for appending (*out) */
    OVERLAY_MAPLOG_MISSING, /* no log */
    OVERLAY_MAPLOG_STALE,   /* of an older generation: folded into the map already */
};

/* Opens the log at path for the map of this generation and instance and replays it through
 * apply (words < max_words); a torn tail is cut off (and the cut synced). Returns the state,
 * or -1: damaged, or not the log of this map (the message names the file). */
int overlay_maplog_open(const char *path, uint64_t generation,
                        const uint8_t instance[OVERLAY_INSTANCE_LEN], uint64_t max_words,
                        overlay_maplog_apply_fn apply, void *opaque, struct overlay_maplog **out,
                        struct vb_error *err);

/* Starts an empty log, atomically replacing any log at path. */
struct overlay_maplog *overlay_maplog_create(const char *path, uint64_t generation,
                                             const uint8_t instance[OVERLAY_INSTANCE_LEN],
                                             struct vb_error *err);

/* Appends one record of n (> 0) entries and fdatasyncs the log. On failure the log is cut
 * back to where it was if possible; either way the caller must not append to it again (start
 * a new one with a checkpoint). */
int overlay_maplog_append(struct overlay_maplog *l, const struct overlay_maplog_entry *e, size_t n,
                          struct vb_error *err);

/* Bytes of records in the log (0: nothing since the checkpoint). */
uint64_t overlay_maplog_record_bytes(const struct overlay_maplog *l);

/* The size of a record of n entries. */
uint64_t overlay_maplog_record_size(uint64_t n);

void overlay_maplog_close(struct overlay_maplog *l);

#endif
