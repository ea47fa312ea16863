/* The repository config of virtbackup-repository(5) (the object "config", JSON, put once
 * by virtrepo init): format and version, the repository's id, chunk size, compression and
 * level, creation time, encryption ("none" or "aes-256-gcm" with the key's fingerprint). Parse
 * (strict), emit, defaults. Named apart from src/restore/config.h, which tools linking both
 * libraries also see. */
#ifndef VB_REPO_CONFIG_H
#define VB_REPO_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "error.h"
#include "object.h"
#include "timefmt.h"

#define REPO_CONFIG_FORMAT         "virtbackup-repository"
#define REPO_CONFIG_VERSION        1
#define REPO_CHUNK_SIZE_DEFAULT    (4u << 20)
#define REPO_ZSTD_LEVEL_MAX        19
#define REPO_SESSION_STALE_DEFAULT 900
#define REPO_HEARTBEAT_DEFAULT     60

struct repo_config {
    int version;
    char id[33]; /* 32 lower-case hex digits */
    uint32_t chunk_size;
    enum repo_compression compression;
    int compression_level; /* zstd: 1..19; lz4, none: 0 */
    char created[REPO_TIME_MAX];
    /* "encryption": "aes-256-gcm" (true) or "none"; the key's fingerprint (32 lower-case hex
     * digits) when encrypted */
    bool encrypted;
    char key_fingerprint[33];
    /* sessions (virtbackup-repository(5)); absent in a config: the defaults */
    uint32_t session_stale_seconds;
    uint32_t heartbeat_seconds; /* 1 .. below session_stale_seconds */
};

/* Version 1, a new random id, 4 MiB chunks, zstd level 1, created now. */
void repo_config_default(struct repo_config *c);

/* Chunk size, compression and level, id, created: what a config must hold. 0, or -1 naming
 * the field. */
int repo_config_validate(const struct repo_config *c, struct vb_error *err);

/* "zstd", "zstd:LEVEL", "lz4" or "none" (virtrepo init --compression). 0, or -1. */
int repo_compression_parse(const char *spec, enum repo_compression *c, int *level,
                           struct vb_error *err);

/* Strict: another format, a version above 1, wrong types, missing fields, invalid values are
 * errors naming the field; unknown fields are ignored. 0, or -1. */
int repo_config_parse(const char *json, size_t len, struct repo_config *c, struct vb_error *err);

/* The JSON text, malloc'ed, NUL-terminated. NULL on error. */
char *repo_config_to_json(const struct repo_config *c, struct vb_error *err);

#endif
