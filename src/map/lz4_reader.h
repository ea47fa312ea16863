/* Random access into the compressed DATA frames of one stream file. The stream index knows
 * each LZ4 frame (32 MiB slice); this reader additionally indexes the blocks of a slice the
 * first time it is read (walking the 4-byte block headers, no decoding) and then decodes only
 * the 64 KiB blocks a request touches, keeping them in the shared block cache. Frames with
 * linked blocks (python-lz4's default, so reference backups) cannot be entered in the middle:
 * such a slice is decoded whole once and cached as one entry. */
#ifndef VM_LZ4_READER_H
#define VM_LZ4_READER_H

#include <stddef.h>
#include <stdint.h>

#include "block_cache.h"
#include "error.h"
#include "stream_index.h"
#include "stream_reader.h"

struct lz4_reader;

/* Per-thread scratch: a buffer for compressed bytes, and a streaming reader for slices with
 * linked blocks (zero-initialised; set up on first use). */
struct lz4_scratch {
    void *buf;
    size_t cap;
    struct stream_reader rd;
};
void lz4_scratch_free(struct lz4_scratch *s);

struct lz4_reader *lz4_reader_new(const struct stream_index *idx, struct block_cache *cache,
                                  struct vb_error *err);
void lz4_reader_free(struct lz4_reader *r);

/* Reads [off, off+len) of extent e's uncompressed content into dst. Thread-safe. */
int lz4_reader_read(struct lz4_reader *r, size_t e, uint64_t off, size_t len, void *dst,
                    struct lz4_scratch *s, struct vb_error *err);

#endif
