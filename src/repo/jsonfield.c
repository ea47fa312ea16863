/* Strict JSON field getters (jsonfield.h). */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "jsonfield.h"

int repo_jf_error(const struct repo_jf *at, const char *name, struct vb_error *err, const char *fmt,
                  ...)
{
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    return vb_error_set(err, "%s: %s%s%s: %s", at->doc, at->path, at->path[0] ? "." : "", name,
                        msg);
}

json_t *repo_jf_get(const struct repo_jf *at, json_t *o, const char *name, bool nullable,
                    struct vb_error *err)
{
    json_t *v = json_object_get(o, name);
    if (!v) {
        repo_jf_error(at, name, err, "missing");
        return NULL;
    }
    if (json_is_null(v) && !nullable) {
        repo_jf_error(at, name, err, "null, a value is required");
        return NULL;
    }
    return v;
}

int repo_jf_str(const struct repo_jf *at, json_t *o, const char *name, bool nullable,
                bool allow_empty, const char **out, struct vb_error *err)
{
    json_t *v = repo_jf_get(at, o, name, nullable, err);
    if (!v)
        return -1;
    if (json_is_null(v)) {
        *out = NULL;
        return 0;
    }
    if (!json_is_string(v))
        return repo_jf_error(at, name, err, "not a string");
    if (strlen(json_string_value(v)) != json_string_length(v))
        return repo_jf_error(at, name, err, "holds a NUL character");
    if (!allow_empty && json_string_length(v) == 0)
        return repo_jf_error(at, name, err, "empty");
    *out = json_string_value(v);
    return 0;
}

int repo_jf_uint(const struct repo_jf *at, json_t *o, const char *name, uint64_t max, uint64_t *out,
                 struct vb_error *err)
{
    json_t *v = repo_jf_get(at, o, name, false, err);
    if (!v)
        return -1;
    if (!json_is_integer(v))
        return repo_jf_error(at, name, err, "not an integer");
    json_int_t i = json_integer_value(v);
    if (i < 0 || (uint64_t)i > max)
        return repo_jf_error(at, name, err, "%lld is out of range (0 to %llu)", (long long)i,
                             (unsigned long long)max);
    *out = (uint64_t)i;
    return 0;
}

int repo_jf_digest(const struct repo_jf *at, json_t *o, const char *name, repo_digest *out,
                   struct vb_error *err)
{
    const char *s;
    if (repo_jf_str(at, o, name, false, false, &s, err) < 0)
        return -1;
    if (repo_digest_parse(s, out) < 0)
        return repo_jf_error(at, name, err, "not a SHA-256 digest of 64 hex digits");
    return 0;
}

int repo_jf_format(const struct repo_jf *at, json_t *o, const char *format, int version, int *got,
                   struct vb_error *err)
{
    const char *f;
    if (repo_jf_str(at, o, "format", false, false, &f, err) < 0)
        return -1;
    if (strcmp(f, format) != 0)
        return repo_jf_error(at, "format", err, "\"%s\", expected \"%s\"", f, format);
    json_t *v = repo_jf_get(at, o, "version", false, err);
    if (!v)
        return -1;
    if (!json_is_integer(v))
        return repo_jf_error(at, "version", err, "not an integer");
    json_int_t i = json_integer_value(v);
    if (i > version)
        return repo_jf_error(at, "version", err, "%lld, this program reads up to version %d",
                             (long long)i, version);
    if (i < 1)
        return repo_jf_error(at, "version", err, "%lld is not a version", (long long)i);
    *got = (int)i;
    return 0;
}
