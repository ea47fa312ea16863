#include "meta.h"

#include <inttypes.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>

void stream_meta_init(struct stream_meta *meta)
{
    memset(meta, 0, sizeof *meta);
    meta->compressed = STREAM_META_COMPRESSED_FALSE;
    strcpy(meta->compression_method, "lz4");
    strcpy(meta->disk_format, "qcow2");
    meta->stream_version = 2;
    stream_meta_format_date(meta->date, sizeof meta->date);
}

void stream_meta_format_date(char *buf, size_t len)
{
    struct timeval tv;
    struct tm tm;
    gettimeofday(&tv, NULL);
    localtime_r(&tv.tv_sec, &tm);
    char base[32];
    strftime(base, sizeof base, "%Y-%m-%dT%H:%M:%S", &tm);
    /* isoformat() omits the fraction when microseconds are zero */
    if (tv.tv_usec)
        snprintf(buf, len, "%s.%06ld", base, (long)tv.tv_usec);
    else
        snprintf(buf, len, "%s", base);
}

int stream_meta_set(char *field, size_t fieldlen, const char *value, struct vb_error *err)
{
    size_t n = strlen(value);
    if (n >= fieldlen)
        return vb_error_set(err, "metadata value too long (%zu bytes): \"%.40s...\"", n, value);
    memcpy(field, value, n + 1);
    return 0;
}

bool stream_meta_is_compressed(const struct stream_meta *meta)
{
    return meta->stream_version >= 2 && meta->compressed != STREAM_META_COMPRESSED_FALSE;
}

/* Decodes one UTF-8 sequence; returns its length or -1. */
static int utf8_decode(const unsigned char *s, uint32_t *cp)
{
    if (s[0] < 0x80) {
        *cp = s[0];
        return 1;
    }
    int n;
    uint32_t c;
    if ((s[0] & 0xe0) == 0xc0) {
        n = 2;
        c = s[0] & 0x1f;
    } else if ((s[0] & 0xf0) == 0xe0) {
        n = 3;
        c = s[0] & 0x0f;
    } else if ((s[0] & 0xf8) == 0xf0) {
        n = 4;
        c = s[0] & 0x07;
    } else {
        return -1;
    }
    for (int i = 1; i < n; i++) {
        if ((s[i] & 0xc0) != 0x80)
            return -1;
        c = (c << 6) | (s[i] & 0x3f);
    }
    static const uint32_t min[] = {0, 0, 0x80, 0x800, 0x10000};
    if (c < min[n] || c > 0x10ffff || (c >= 0xd800 && c <= 0xdfff))
        return -1;
    *cp = c;
    return n;
}

int stream_json_quote(const char *s, char *buf, size_t buflen)
{
    size_t need = 0;
#define PUT(str, n)                                                                                \
    do {                                                                                           \
        if (need + (n) < buflen)                                                                   \
            memcpy(buf + need, (str), (n));                                                        \
        need += (n);                                                                               \
    } while (0)
    PUT("\"", 1);
    const unsigned char *p = (const unsigned char *)s;
    while (*p) {
        char esc[16];
        uint32_t cp;
        int n = utf8_decode(p, &cp);
        if (n < 0)
            return -1;
        p += n;
        switch (cp) {
        case '"':
            PUT("\\\"", 2);
            continue;
        case '\\':
            PUT("\\\\", 2);
            continue;
        case '\n':
            PUT("\\n", 2);
            continue;
        case '\r':
            PUT("\\r", 2);
            continue;
        case '\t':
            PUT("\\t", 2);
            continue;
        case '\b':
            PUT("\\b", 2);
            continue;
        case '\f':
            PUT("\\f", 2);
            continue;
        default:
            break;
        }
        if (cp >= 0x20 && cp <= 0x7e) {
            char c = (char)cp;
            PUT(&c, 1);
        } else if (cp < 0x10000) {
            snprintf(esc, sizeof esc, "\\u%04x", cp);
            PUT(esc, 6);
        } else {
            uint32_t v = cp - 0x10000;
            snprintf(esc, sizeof esc, "\\u%04x\\u%04x", 0xd800 + (v >> 10), 0xdc00 + (v & 0x3ff));
            PUT(esc, 12);
        }
    }
    PUT("\"", 1);
    if (buflen)
        buf[need < buflen ? need : buflen - 1] = '\0';
#undef PUT
    return (int)need;
}

char *stream_meta_to_json(const struct stream_meta *meta, size_t *len, struct vb_error *err)
{
    const char *strs[] = {meta->date,
                          meta->disk_name,
                          meta->disk_format,
                          meta->checkpoint_name,
                          meta->compression_method,
                          meta->parent_checkpoint};
    char quoted[6][sizeof meta->checkpoint_name * 12 + 3];
    for (size_t i = 0; i < 6; i++) {
        if (stream_json_quote(strs[i], quoted[i], sizeof quoted[i]) < 0) {
            vb_error_set(err, "metadata string is not valid UTF-8: \"%.40s\"", strs[i]);
            return NULL;
        }
    }
    char compressed[16];
    if (meta->compressed == STREAM_META_COMPRESSED_FALSE)
        strcpy(compressed, "false");
    else
        snprintf(compressed, sizeof compressed, "%d", meta->compressed);

    char *out = NULL;
    int n =
        asprintf(&out,
                 "{\n"
                 "    \"virtualSize\": %" PRIu64 ",\n"
                 "    \"dataSize\": %" PRIu64 ",\n"
                 "    \"date\": %s,\n"
                 "    \"diskName\": %s,\n"
                 "    \"diskFormat\": %s,\n"
                 "    \"checkpointName\": %s,\n"
                 "    \"compressed\": %s,\n"
                 "    \"compressionMethod\": %s,\n"
                 "    \"parentCheckpoint\": %s,\n"
                 "    \"incremental\": %s,\n"
                 "    \"streamVersion\": 2\n"
                 "}",
                 meta->virtual_size, meta->data_size, quoted[0], quoted[1], quoted[2], quoted[3],
                 compressed, quoted[4], quoted[5], meta->incremental ? "true" : "false");
    if (n < 0) {
        vb_error_set(err, "out of memory");
        return NULL;
    }
    *len = (size_t)n;
    return out;
}

static int get_u64(json_t *root, const char *key, uint64_t *out, struct vb_error *err)
{
    json_t *v = json_object_get(root, key);
    if (!v)
        return vb_error_set(err, "metadata lacks \"%s\"", key);
    if (!json_is_integer(v) || json_integer_value(v) < 0)
        return vb_error_set(err, "metadata \"%s\" is not a non-negative integer", key);
    *out = (uint64_t)json_integer_value(v);
    return 0;
}

static int get_str(json_t *root, const char *key, char *field, size_t fieldlen, bool required,
                   struct vb_error *err)
{
    json_t *v = json_object_get(root, key);
    if (!v) {
        if (required)
            return vb_error_set(err, "metadata lacks \"%s\"", key);
        return 0;
    }
    if (!json_is_string(v))
        return vb_error_set(err, "metadata \"%s\" is not a string", key);
    if (stream_meta_set(field, fieldlen, json_string_value(v), err) < 0)
        return vb_error_prefix(err, "metadata \"%s\"", key);
    return 0;
}

int stream_meta_parse(const char *json, size_t len, struct stream_meta *meta, struct vb_error *err)
{
    json_error_t jerr;
    memset(meta, 0, sizeof *meta);
    meta->compressed = STREAM_META_COMPRESSED_FALSE;
    json_t *root = json_loadb(json, len, JSON_REJECT_DUPLICATES, &jerr);
    if (!root)
        return vb_error_set(err, "metadata is not valid JSON: %s (at byte %d)", jerr.text,
                            jerr.position);
    int rc = -1;
    if (!json_is_object(root)) {
        vb_error_set(err, "metadata is not a JSON object");
        goto out;
    }

    json_t *ver = json_object_get(root, "streamVersion");
    if (!ver) {
        ver = json_object_get(root, "stream-version");
        meta->legacy_version_key = ver != NULL;
    }
    if (!ver || !json_is_integer(ver)) {
        vb_error_set(err, "metadata lacks an integer \"streamVersion\"");
        goto out;
    }
    json_int_t version = json_integer_value(ver);
    if (version != 1 && version != 2) {
        vb_error_set(err, "unsupported stream version %" JSON_INTEGER_FORMAT, version);
        goto out;
    }
    meta->stream_version = (int)version;

    if (get_u64(root, "virtualSize", &meta->virtual_size, err) < 0 ||
        get_u64(root, "dataSize", &meta->data_size, err) < 0 ||
        get_str(root, "date", meta->date, sizeof meta->date, false, err) < 0 ||
        get_str(root, "diskName", meta->disk_name, sizeof meta->disk_name, true, err) < 0 ||
        get_str(root, "diskFormat", meta->disk_format, sizeof meta->disk_format, false, err) < 0 ||
        get_str(root, "checkpointName", meta->checkpoint_name, sizeof meta->checkpoint_name, true,
                err) < 0 ||
        get_str(root, "compressionMethod", meta->compression_method,
                sizeof meta->compression_method, false, err) < 0)
        goto out;
    if (!meta->disk_format[0])
        strcpy(meta->disk_format, "qcow2");

    json_t *parent = json_object_get(root, "parentCheckpoint");
    if (json_is_false(parent)) {
        meta->parent_is_false = true;
    } else if (get_str(root, "parentCheckpoint", meta->parent_checkpoint,
                       sizeof meta->parent_checkpoint, true, err) < 0) {
        goto out;
    }

    json_t *inc = json_object_get(root, "incremental");
    if (!json_is_boolean(inc)) {
        vb_error_set(err, "metadata lacks a boolean \"incremental\"");
        goto out;
    }
    meta->incremental = json_is_true(inc);

    json_t *comp = json_object_get(root, "compressed");
    if (comp && !json_is_false(comp)) {
        if (!json_is_integer(comp) || json_integer_value(comp) < 0 ||
            json_integer_value(comp) > 100) {
            vb_error_set(err, "metadata \"compressed\" is neither false nor a compression level");
            goto out;
        }
        meta->compressed = (int)json_integer_value(comp);
        if (version < 2) {
            vb_error_set(err, "metadata says compressed, but stream version 1 has no compression");
            goto out;
        }
        if (meta->compression_method[0] && strcmp(meta->compression_method, "lz4") != 0) {
            vb_error_set(err, "unsupported compression method \"%s\"", meta->compression_method);
            goto out;
        }
    }
    rc = 0;
out:
    json_decref(root);
    return rc;
}
