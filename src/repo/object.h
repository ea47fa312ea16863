/* The object envelope of virtbackup-repository(5): the 24-byte header and the payload of
 * chunks and indexes (magic "VBRO", version, kind, compression, sizes, crc32 of the payload
 * and of the header), its encoder (compressing unless that saves nothing) and the checks a
 * reader makes, the header alone (what "the object exists" means) or the whole object. */
#ifndef VB_REPO_OBJECT_H
#define VB_REPO_OBJECT_H

#include <stddef.h>
#include <stdint.h>

#include "digest.h"
#include "error.h"

#define REPO_OBJECT_HEADER_SIZE 24
#define REPO_OBJECT_VERSION     1
#define REPO_OBJECT_MAX_RAW     (64u << 20) /* content bytes of one object */

enum repo_object_kind { REPO_KIND_CHUNK = 1, REPO_KIND_INDEX = 2 };

enum repo_compression { REPO_COMP_NONE = 0, REPO_COMP_ZSTD = 1, REPO_COMP_LZ4 = 2 };

/* Envelope encode: content -> malloc'ed object bytes, compressed with c (level: zstd's,
 * ignored by lz4 and none) unless that does not make the payload smaller, then stored as
 * none. raw_len at most REPO_OBJECT_MAX_RAW. 0, or -1. */
int repo_object_encode(int kind, const void *raw, size_t raw_len, enum repo_compression c,
                       int level, void **obj, size_t *obj_len, struct vb_error *err);

/* Header only (what "exists" checks): magic, version, kind, compression, flags, header crc,
 * sizes and object_size == 24 + stored_size. hdr_len: bytes available at hdr (at least 24 are
 * needed). *raw_size and *stored_size set (either may be NULL). 0, or -1. */
int repo_object_check_header(const void *hdr, size_t hdr_len, uint64_t object_size, int kind,
                             uint32_t *raw_size, uint32_t *stored_size, struct vb_error *err);

/* Full decode and every check: the header's, payload crc, decompressed size == raw_size and,
 * when want is not NULL, SHA-256 of the content == *want. raw malloc'ed (also for 0 bytes).
 * 0, or -1. */
int repo_object_decode(int kind, const void *obj, size_t obj_len, const repo_digest *want,
                       void **raw, size_t *raw_len, struct vb_error *err);

/* As repo_object_decode, into raw (cap bytes: content larger than that is an error). */
int repo_object_decode_into(int kind, const void *obj, size_t obj_len, const repo_digest *want,
                            void *raw, size_t cap, size_t *raw_len, struct vb_error *err);

/* The keys of an encrypted repository an object's coding needs (virtbackup-repository(5),
 * ENCRYPTION): enc seals chunk payloads (AES-256-GCM, the nonce the first 12 bytes of the
 * chunk's name, the header's bytes 0..11 authenticated); id names contents (HMAC-SHA-256
 * instead of SHA-256). Either may be NULL. */
struct repo_object_keys {
    const unsigned char *enc;
    const unsigned char *id;
};

#define REPO_OBJECT_FLAG_ENCRYPTED 1

/* As repo_object_encode; with keys->enc the payload is sealed (flags bit 0, 16 bytes of tag
 * counted in stored_size) under the nonce taken from name. */
int repo_object_encode_keyed(int kind, const void *raw, size_t raw_len, enum repo_compression c,
                             int level, const struct repo_object_keys *keys,
                             const repo_digest *name, void **obj, size_t *obj_len,
                             struct vb_error *err);

/* As repo_object_decode_into: a sealed payload is opened with keys->enc (no key: an error
 * saying so) and want is checked as HMAC-SHA-256 under keys->id when that is set. */
int repo_object_decode_keyed_into(int kind, const void *obj, size_t obj_len,
                                  const struct repo_object_keys *keys, const repo_digest *want,
                                  void *raw, size_t cap, size_t *raw_len, struct vb_error *err);
int repo_object_decode_keyed(int kind, const void *obj, size_t obj_len,
                             const struct repo_object_keys *keys, const repo_digest *want,
                             void **raw, size_t *raw_len, struct vb_error *err);

/* The name of content under keys (HMAC-SHA-256 with keys->id) or its SHA-256 (keys NULL or
 * without id). */
void repo_object_name(const struct repo_object_keys *keys, const void *data, size_t len,
                      repo_digest *out);

/* The checks that need no key and no decoding (a scrub of an encrypted repository without
 * its key): the header's, and the CRC-32 of the stored payload. *raw_size set. 0, or -1. */
int repo_object_check_stored(int kind, const void *obj, size_t obj_len, uint32_t *raw_size,
                             struct vb_error *err);

/* "none", "zstd", "lz4" (NULL for other values). */
const char *repo_compression_name(enum repo_compression c);

#endif
