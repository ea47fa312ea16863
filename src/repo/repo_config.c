/* The repository config: defaults, validation, JSON in and out (config.h). */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/time.h>
#include <unistd.h>

#include "index.h"
#include "jsonfield.h"
#include "repo_config.h"

static bool id_valid(const char *id)
{
    if (strnlen(id, 33) != 32)
        return false;
    for (int i = 0; i < 32; i++)
        if (!((id[i] >= '0' && id[i] <= '9') || (id[i] >= 'a' && id[i] <= 'f')))
            return false;
    return true;
}

void repo_config_default(struct repo_config *c)
{
    memset(c, 0, sizeof(*c));
    c->version = REPO_CONFIG_VERSION;
    c->chunk_size = REPO_CHUNK_SIZE_DEFAULT;
    c->compression = REPO_COMP_ZSTD;
    c->compression_level = 1;
    c->session_stale_seconds = REPO_SESSION_STALE_DEFAULT;
    c->heartbeat_seconds = REPO_HEARTBEAT_DEFAULT;
    unsigned char r[16];
    if (getrandom(r, sizeof(r), 0) != (ssize_t)sizeof(r)) {
        /* an id tells repositories apart; the clock and pid do when getrandom cannot */
        struct timeval tv;
        gettimeofday(&tv, NULL);
        for (size_t i = 0; i < sizeof(r); i++)
            r[i] = (unsigned char)(((uint64_t)tv.tv_sec * 1000003u + (uint64_t)tv.tv_usec +
                                    (uint64_t)getpid() * 31u) >>
                                   (i % 8 * 8));
    }
    for (size_t i = 0; i < sizeof(r); i++)
        snprintf(c->id + 2 * i, 3, "%02x", r[i]);
    repo_time_format(time(NULL), true, c->created);
}

int repo_config_validate(const struct repo_config *c, struct vb_error *err)
{
    const struct repo_jf at = {"repository config", ""};
    if (c->version < 1 || c->version > REPO_CONFIG_VERSION)
        return repo_jf_error(&at, "version", err, "%d, this program reads up to version %d",
                             c->version, REPO_CONFIG_VERSION);
    if (!id_valid(c->id))
        return repo_jf_error(&at, "id", err, "not 32 lower-case hex digits");
    if (!repo_chunk_size_valid(c->chunk_size))
        return repo_jf_error(&at, "chunk_size", err,
                             "%u is not a power of two from 64 KiB to 64 MiB", c->chunk_size);
    switch (c->compression) {
    case REPO_COMP_ZSTD:
        if (c->compression_level < 1 || c->compression_level > REPO_ZSTD_LEVEL_MAX)
            return repo_jf_error(&at, "compression_level", err, "%d, zstd takes 1 to %d",
                                 c->compression_level, REPO_ZSTD_LEVEL_MAX);
        break;
    case REPO_COMP_LZ4:
    case REPO_COMP_NONE:
        if (c->compression_level != 0)
            return repo_jf_error(&at, "compression_level", err, "%d, %s takes 0",
                                 c->compression_level, repo_compression_name(c->compression));
        break;
    default:
        return repo_jf_error(&at, "compression", err, "unknown (%d)", (int)c->compression);
    }
    if (c->encrypted && !id_valid(c->key_fingerprint))
        return repo_jf_error(&at, "key_fingerprint", err, "not 32 lower-case hex digits");
    time_t t = 0;
    if (repo_time_parse(c->created, &t) < 0)
        return repo_jf_error(&at, "created", err, "\"%s\" is not an ISO 8601 time with offset",
                             c->created);
    if (c->heartbeat_seconds < 1 || c->heartbeat_seconds >= c->session_stale_seconds)
        return repo_jf_error(&at, "heartbeat_seconds", err,
                             "%u: from 1 to below session_stale_seconds (%u)", c->heartbeat_seconds,
                             c->session_stale_seconds);
    return 0;
}

int repo_compression_parse(const char *spec, enum repo_compression *c, int *level,
                           struct vb_error *err)
{
    if (strcmp(spec, "none") == 0 || strcmp(spec, "lz4") == 0) {
        *c = spec[0] == 'n' ? REPO_COMP_NONE : REPO_COMP_LZ4;
        *level = 0;
        return 0;
    }
    if (strcmp(spec, "zstd") == 0) {
        *c = REPO_COMP_ZSTD;
        *level = 1;
        return 0;
    }
    if (strncmp(spec, "zstd:", 5) == 0) {
        char *end;
        long l = strtol(spec + 5, &end, 10);
        if (spec[5] >= '0' && spec[5] <= '9' && *end == '\0' && l >= 1 &&
            l <= REPO_ZSTD_LEVEL_MAX) {
            *c = REPO_COMP_ZSTD;
            *level = (int)l;
            return 0;
        }
        return vb_error_set(err, "compression \"%s\": the zstd level is 1 to %d", spec,
                            REPO_ZSTD_LEVEL_MAX);
    }
    return vb_error_set(err, "compression \"%s\": zstd[:LEVEL], lz4 or none", spec);
}

int repo_config_parse(const char *json, size_t len, struct repo_config *c, struct vb_error *err)
{
    const struct repo_jf at = {"repository config", ""};
    memset(c, 0, sizeof(*c));
    json_error_t je;
    json_t *o = json_loadb(json, len, JSON_REJECT_DUPLICATES, &je);
    if (!o)
        return vb_error_set(err, "repository config: not JSON: %s (line %d)", je.text, je.line);
    int rc = -1;
    const char *s = NULL;
    uint64_t u = 0;
    if (!json_is_object(o)) {
        vb_error_set(err, "repository config: not a JSON object");
        goto out;
    }
    if (repo_jf_format(&at, o, REPO_CONFIG_FORMAT, REPO_CONFIG_VERSION, &c->version, err) < 0)
        goto out;
    if (repo_jf_str(&at, o, "id", false, false, &s, err) < 0)
        goto out;
    if (!id_valid(s)) {
        repo_jf_error(&at, "id", err, "not 32 lower-case hex digits");
        goto out;
    }
    memcpy(c->id, s, 33);
    if (repo_jf_uint(&at, o, "chunk_size", UINT32_MAX, &u, err) < 0)
        goto out;
    c->chunk_size = (uint32_t)u;
    if (repo_jf_str(&at, o, "compression", false, false, &s, err) < 0)
        goto out;
    if (strcmp(s, "zstd") == 0) {
        c->compression = REPO_COMP_ZSTD;
    } else if (strcmp(s, "lz4") == 0) {
        c->compression = REPO_COMP_LZ4;
    } else if (strcmp(s, "none") == 0) {
        c->compression = REPO_COMP_NONE;
    } else {
        repo_jf_error(&at, "compression", err, "\"%s\", expected zstd, lz4 or none", s);
        goto out;
    }
    if (repo_jf_uint(&at, o, "compression_level", 1000, &u, err) < 0)
        goto out;
    c->compression_level = (int)u;
    if (repo_jf_str(&at, o, "created", false, false, &s, err) < 0)
        goto out;
    if (strlen(s) >= sizeof(c->created)) {
        repo_jf_error(&at, "created", err, "not an ISO 8601 time with offset");
        goto out;
    }
    strcpy(c->created, s);
    if (repo_jf_str(&at, o, "encryption", false, false, &s, err) < 0)
        goto out;
    if (strcmp(s, "aes-256-gcm") == 0) {
        c->encrypted = true;
        if (repo_jf_str(&at, o, "key_fingerprint", false, false, &s, err) < 0)
            goto out;
        if (!id_valid(s)) {
            repo_jf_error(&at, "key_fingerprint", err, "not 32 lower-case hex digits");
            goto out;
        }
        memcpy(c->key_fingerprint, s, 33);
    } else if (strcmp(s, "none") != 0) {
        repo_jf_error(&at, "encryption", err,
                      "\"%s\", this program reads \"none\" and \"aes-256-gcm\"", s);
        goto out;
    }
    c->session_stale_seconds = REPO_SESSION_STALE_DEFAULT;
    c->heartbeat_seconds = REPO_HEARTBEAT_DEFAULT;
    if (json_object_get(o, "session_stale_seconds")) {
        if (repo_jf_uint(&at, o, "session_stale_seconds", UINT32_MAX, &u, err) < 0)
            goto out;
        c->session_stale_seconds = (uint32_t)u;
    }
    if (json_object_get(o, "heartbeat_seconds")) {
        if (repo_jf_uint(&at, o, "heartbeat_seconds", UINT32_MAX, &u, err) < 0)
            goto out;
        c->heartbeat_seconds = (uint32_t)u;
    }
    rc = repo_config_validate(c, err);
out:
    json_decref(o);
    return rc;
}

char *repo_config_to_json(const struct repo_config *c, struct vb_error *err)
{
    if (repo_config_validate(c, err) < 0)
        return NULL;
    json_t *o = json_pack(
        "{s:s, s:i, s:s, s:I, s:s, s:i, s:s, s:s}", "format", REPO_CONFIG_FORMAT, "version",
        c->version, "id", c->id, "chunk_size", (json_int_t)c->chunk_size, "compression",
        repo_compression_name(c->compression), "compression_level", c->compression_level, "created",
        c->created, "encryption", c->encrypted ? "aes-256-gcm" : "none");
    if (o &&
        ((c->encrypted &&
          json_object_set_new(o, "key_fingerprint", json_string(c->key_fingerprint)) < 0) ||
         json_object_set_new(o, "session_stale_seconds", json_integer(c->session_stale_seconds)) <
             0 ||
         json_object_set_new(o, "heartbeat_seconds", json_integer(c->heartbeat_seconds)) < 0)) {
        json_decref(o);
        o = NULL;
    }
    char *text = o ? json_dumps(o, JSON_INDENT(2)) : NULL;
    json_decref(o);
    if (!text)
        vb_error_set(err, "repository config: cannot build the JSON text (out of memory)");
    return text;
}
