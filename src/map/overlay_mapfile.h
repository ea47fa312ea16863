/* The overlay's map file (<name>.overlay.map): a checkpoint of the whole block map, written
 * atomically (temporary, fsync, rename, fsync of the directory) and checked on reading
 * (crc32 over the whole file, every block state valid). Layout, integers little-endian:
 *   "VBOVMAP2", disk size, block size, generation, instance (16 bytes), identity length,
 *   identity, number of chunks present, per chunk its index and its words, crc32 (4 bytes).
 * The generation and instance tie the map to its log (overlay_maplog.h): a log is replayed
 * only on the map of the same instance and generation. The block map is held as 64-bit
 * words of 32 two-bit block states, in chunks of 1 GiB of disk. */
#ifndef VM_OVERLAY_MAPFILE_H
#define VM_OVERLAY_MAPFILE_H

#include <stddef.h>
#include <stdint.h>

#include "error.h"

#define OVERLAY_CHUNK_BLOCKS (1u << 18) /* 1 GiB of 4 KiB blocks per chunk */
#define OVERLAY_CHUNK_WORDS  (OVERLAY_CHUNK_BLOCKS / 32)
#define OVERLAY_INSTANCE_LEN 16

/* A word is valid when none of its 32 block states is 3. */
#define OVERLAY_WORD_VALID(w) ((((w) >> 1) & (w)&0x5555555555555555ull) == 0)

struct overlay_mapfile {
    uint64_t size;       /* the disk's size */
    uint64_t block;      /* block size */
    uint64_t generation; /* counts checkpoints */
    uint8_t instance[OVERLAY_INSTANCE_LEN];
    char *identity; /* what the overlay was made for (overlay_identity.h) */
    /* read: the whole file, and where the chunk count starts */
    uint8_t *buf;
    size_t len, chunks_at;
};

/* Encodes a map: the header fields of m and the chunks present (NULL: all blocks BASE).
 * Returns a malloc'ed buffer of *len bytes, or NULL (out of memory). */
uint8_t *overlay_mapfile_encode(const struct overlay_mapfile *m, uint64_t *const *chunks,
                                uint64_t nchunks, size_t *len);

/* Reads and checks path: 0 read (header fields filled; chunks by overlay_mapfile_chunks),
 * 1 no such file, -1 refused: not a map, a map of an older format, or damaged (the message
 * names the file). */
int overlay_mapfile_read(const char *path, struct overlay_mapfile *m, struct vb_error *err);

/* Fills chunks (nchunks entries, all NULL on entry) from a map read by overlay_mapfile_read. */
int overlay_mapfile_chunks(const char *path, const struct overlay_mapfile *m, uint64_t **chunks,
                           uint64_t nchunks, struct vb_error *err);

void overlay_mapfile_free(struct overlay_mapfile *m);

#endif
