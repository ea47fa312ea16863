/* Whole-file checks beyond the index's structural pass, shared by `virtrestore -o verify`,
 * `virtmap --verify` and the test tools: the adler32 of every byte against the recorded
 * .chksum, and every LZ4 frame decoded with its block and content checksums. An uncompressed
 * payload has no checksum of its own in this format: only the adler32 can see a flipped
 * byte there. */
#ifndef VB_STREAM_VERIFY_H
#define VB_STREAM_VERIFY_H

#include <stddef.h>
#include <stdint.h>

#include "error.h"
#include "source.h"
#include "stream_index.h"

/* adler32 of [off, off + len) of src, read in pieces of bufsize bytes (0: 1 MiB); pieces of
 * one file combine with stream_adler32_combine (checksum.h). */
int stream_source_adler32_range(struct stream_source *src, uint64_t off, uint64_t len,
                                size_t bufsize, uint32_t *sum, struct vb_error *err);
/* adler32 of all of src. */
int stream_source_adler32(struct stream_source *src, size_t bufsize, uint32_t *sum,
                          struct vb_error *err);

/* Decodes every LZ4 frame of a compressed stream front to back in bounded memory (nothing to
 * do for an uncompressed one). Errors name the file and offset. */
int stream_index_check_payloads(struct stream_index *idx, struct vb_error *err);

/* The text of a .chksum file (named what, for messages): 1 with *value, 0 for the
 * reference's "None", -1 when it is not a checksum. */
int stream_chksum_parse(const char *text, const char *what, uint32_t *value, struct vb_error *err);

/* Everything above for a local file and its index: payloads, then the adler32 against
 * path.chksum when that exists. Returns 1 (checksum matched), 0 (no .chksum), -1. */
int stream_file_verify(const char *path, struct stream_index *idx, uint32_t *sum,
                       struct vb_error *err);

#endif
