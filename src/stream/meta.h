/* The META frame's JSON (virtbackup-stream(5), METADATA): parsed from any stream version, written
 * exactly as Python's json.dumps(meta, indent=4) writes it, so streams are byte-compatible. */
#ifndef VB_META_H
#define VB_META_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "error.h"

#define STREAM_META_COMPRESSED_FALSE (-1)
#define STREAM_META_MAX_JSON         (64 * 1024)

struct stream_meta {
    uint64_t virtual_size;
    uint64_t data_size; /* sum of uncompressed DATA lengths */
    char date[64];      /* isoformat local time, no zone */
    char disk_name[256];
    char disk_format[32];
    char checkpoint_name[256];
    char parent_checkpoint[256];
    bool parent_is_false; /* v1 streams may say "parentCheckpoint": false */
    int compressed;       /* STREAM_META_COMPRESSED_FALSE, or the lz4 level */
    char compression_method[16];
    bool incremental;
    int stream_version;      /* 1 or 2 */
    bool legacy_version_key; /* the file used "stream-version" */
};

/* Fills the fields every new stream has: version 2, lz4 method, date = now. */
void stream_meta_init(struct stream_meta *meta);

/* The current local time as Python's datetime.now().isoformat(). */
void stream_meta_format_date(char *buf, size_t len);

/* Copies a string into a fixed field; -1 if it does not fit. */
int stream_meta_set(char *field, size_t fieldlen, const char *value, struct vb_error *err);
#define STREAM_META_SET(meta, field, value, err)                                                   \
    stream_meta_set((meta)->field, sizeof((meta)->field), (value), (err))

bool stream_meta_is_compressed(const struct stream_meta *meta);

/* Serialises as version-2 JSON (Python json.dumps(indent=4) layout, ensure_ascii escapes).
 * Returns a malloc'ed buffer (not NUL-terminated in length) or NULL with err set. */
char *stream_meta_to_json(const struct stream_meta *meta, size_t *len, struct vb_error *err);

/* Parses META JSON of stream version 1 or 2. */
int stream_meta_parse(const char *json, size_t len, struct stream_meta *meta, struct vb_error *err);

/* Appends a Python-compatible (ensure_ascii) JSON string literal, quotes included, to buf.
 * Returns the number of bytes that the literal needs (like snprintf), or -1 on invalid UTF-8. */
int stream_json_quote(const char *s, char *buf, size_t buflen);

#endif
