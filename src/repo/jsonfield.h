/* Strict reading of the fields of a JSON object for the config and manifest parsers: each
 * getter refuses a missing field, a wrong type or an out-of-range value with an error that
 * names the document, the object path and the field ("snapshot manifest: disks[1].index"). */
#ifndef VB_REPO_JSONFIELD_H
#define VB_REPO_JSONFIELD_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

#include "digest.h"
#include "error.h"

struct repo_jf {
    const char *doc;  /* "snapshot manifest", "repository config" */
    const char *path; /* "" or "disks[1]" */
};

/* The field, or NULL with err set when it is missing (or null and null is not allowed). With
 * nullable, a null field is returned (the json null). */
json_t *repo_jf_get(const struct repo_jf *at, json_t *o, const char *name, bool nullable,
                    struct vb_error *err);

/* A string (not empty unless allow_empty). With nullable, *out = NULL for null. */
int repo_jf_str(const struct repo_jf *at, json_t *o, const char *name, bool nullable,
                bool allow_empty, const char **out, struct vb_error *err);

/* A JSON integer from 0 to max. */
int repo_jf_uint(const struct repo_jf *at, json_t *o, const char *name, uint64_t max, uint64_t *out,
                 struct vb_error *err);

/* A string of 64 hex digits. */
int repo_jf_digest(const struct repo_jf *at, json_t *o, const char *name, repo_digest *out,
                   struct vb_error *err);

/* "format" must be format and "version" an integer from 1 to version. */
int repo_jf_format(const struct repo_jf *at, json_t *o, const char *format, int version, int *got,
                   struct vb_error *err);

/* An error about the field (message printf-style after "<doc>: <path>.<name>: "). */
int repo_jf_error(const struct repo_jf *at, const char *name, struct vb_error *err, const char *fmt,
                  ...) __attribute__((format(printf, 4, 5)));

#endif
