/* The snapshot manifest: strict parse and emit (manifest.h). */
#include <jansson.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "index.h"
#include "jsonfield.h"
#include "manifest.h"
#include "manifest_json.h"

static const char *const level_names[] = {"full", "copy", "inc"};
static const char *const blob_names[] = {"loader", "nvram", "kernel", "initrd"};

const char *repo_level_name(enum repo_level l)
{
    return (unsigned)l < 3 ? level_names[l] : NULL;
}

const char *repo_blob_kind_name(enum repo_blob_kind k)
{
    return (unsigned)k < 4 ? blob_names[k] : NULL;
}

void repo_manifest_free(struct repo_manifest *m)
{
    free(m->vm);
    free(m->checkpoint.name);
    free(m->checkpoint.xml);
    free(m->domain_xml);
    free(m->source);
    for (size_t i = 0; m->disks && i < m->n_disks; i++) {
        free(m->disks[i].target);
        free(m->disks[i].format);
        free(m->disks[i].qcow_json);
    }
    free(m->disks);
    for (size_t i = 0; m->blobs && i < m->n_blobs; i++)
        free(m->blobs[i].path);
    free(m->blobs);
    memset(m, 0, sizeof(*m));
}

/* strdup of a string field, or NULL for a null one; -1 on a bad field or no memory */
static int dup_field(const struct repo_jf *at, json_t *o, const char *name, bool nullable,
                     char **out, struct vb_error *err)
{
    const char *s = NULL;
    if (repo_jf_str(at, o, name, nullable, false, &s, err) < 0)
        return -1;
    *out = NULL;
    if (s && !(*out = strdup(s)))
        return vb_error_errno(err, "snapshot manifest: %s", name);
    return 0;
}

/* index of s in names[n], or -1 */
static int name_index(const char *s, const char *const *names, int n)
{
    for (int i = 0; i < n; i++)
        if (strcmp(s, names[i]) == 0)
            return i;
    return -1;
}

static int parse_id(const struct repo_jf *at, json_t *o, const char *name, bool nullable,
                    char out[32], struct vb_error *err)
{
    const char *s = NULL;
    if (repo_jf_str(at, o, name, nullable, false, &s, err) < 0)
        return -1;
    out[0] = '\0';
    if (!s)
        return 0;
    if (!repo_snapshot_id_valid(s))
        return repo_jf_error(at, name, err,
                             "\"%.40s\" is not a snapshot id (YYYYmmddTHHMMSSZ-xxxxxxxx)", s);
    strcpy(out, s);
    return 0;
}

static int parse_checkpoint(const struct repo_jf *top, json_t *o, struct repo_manifest *m,
                            struct vb_error *err)
{
    json_t *c = repo_jf_get(top, o, "checkpoint", true, err);
    if (!c)
        return -1;
    if (json_is_null(c))
        return 0;
    if (!json_is_object(c))
        return repo_jf_error(top, "checkpoint", err, "neither null nor an object");
    const struct repo_jf at = {top->doc, "checkpoint"};
    uint64_t t = 0;
    m->has_checkpoint = true;
    if (dup_field(&at, c, "name", false, &m->checkpoint.name, err) < 0 ||
        repo_jf_uint(&at, c, "creation_time", INT64_MAX, &t, err) < 0 ||
        dup_field(&at, c, "xml", false, &m->checkpoint.xml, err) < 0)
        return -1;
    m->checkpoint.creation_time = (int64_t)t;
    return 0;
}

/* the array field name, at most max elements; -1 when missing or not an array */
static json_t *get_array(const struct repo_jf *at, json_t *o, const char *name, size_t max,
                         struct vb_error *err)
{
    json_t *a = repo_jf_get(at, o, name, false, err);
    if (!a)
        return NULL;
    if (!json_is_array(a)) {
        repo_jf_error(at, name, err, "not an array");
        return NULL;
    }
    if (json_array_size(a) > max) {
        repo_jf_error(at, name, err, "%zu entries, at most %zu are allowed", json_array_size(a),
                      max);
        return NULL;
    }
    return a;
}

static int parse_disk(const char *doc, json_t *d, size_t i, struct repo_manifest_disk *disk,
                      struct vb_error *err)
{
    char path[32];
    snprintf(path, sizeof(path), "disks[%zu]", i);
    const struct repo_jf at = {doc, path};
    if (!json_is_object(d))
        return vb_error_set(err, "%s: %s: not an object", doc, path);
    uint64_t cs = 0;
    if (dup_field(&at, d, "target", false, &disk->target, err) < 0 ||
        repo_jf_uint(&at, d, "virtual_size", INT64_MAX, &disk->virtual_size, err) < 0 ||
        repo_jf_uint(&at, d, "chunk_size", UINT32_MAX, &cs, err) < 0)
        return -1;
    if (!repo_chunk_size_valid(cs))
        return repo_jf_error(&at, "chunk_size", err,
                             "%llu is not a power of two from 64 KiB to 64 MiB",
                             (unsigned long long)cs);
    disk->chunk_size = (uint32_t)cs;
    if (!repo_index_fits(disk->virtual_size, disk->chunk_size))
        return repo_jf_error(&at, "virtual_size", err,
                             "%llu bytes in chunks of %u do not fit in one index",
                             (unsigned long long)disk->virtual_size, disk->chunk_size);
    if (repo_jf_digest(&at, d, "index", &disk->index, err) < 0 ||
        dup_field(&at, d, "format", false, &disk->format, err) < 0 ||
        dup_field(&at, d, "qcow_json", true, &disk->qcow_json, err) < 0 ||
        repo_jf_uint(&at, d, "bytes_read", INT64_MAX, &disk->bytes_read, err) < 0 ||
        repo_jf_uint(&at, d, "bytes_new", INT64_MAX, &disk->bytes_new, err) < 0 ||
        repo_jf_uint(&at, d, "bytes_stored", INT64_MAX, &disk->bytes_stored, err) < 0)
        return -1;
    return 0;
}

static int parse_blob(const char *doc, json_t *b, size_t i, struct repo_manifest_blob *blob,
                      struct vb_error *err)
{
    char path[32];
    snprintf(path, sizeof(path), "blobs[%zu]", i);
    const struct repo_jf at = {doc, path};
    if (!json_is_object(b))
        return vb_error_set(err, "%s: %s: not an object", doc, path);
    const char *kind = NULL;
    if (repo_jf_str(&at, b, "kind", false, false, &kind, err) < 0)
        return -1;
    int k = name_index(kind, blob_names, 4);
    if (k < 0)
        return repo_jf_error(&at, "kind", err,
                             "\"%.40s\", expected loader, nvram, kernel or initrd", kind);
    blob->kind = (enum repo_blob_kind)k;
    if (dup_field(&at, b, "path", false, &blob->path, err) < 0 ||
        repo_jf_uint(&at, b, "size", INT64_MAX, &blob->size, err) < 0 ||
        repo_jf_digest(&at, b, "index", &blob->index, err) < 0)
        return -1;
    return 0;
}

static int parse_object(json_t *o, struct repo_manifest *m, struct vb_error *err)
{
    const struct repo_jf at = {"snapshot manifest", ""};
    int version = 0;
    const char *s = NULL;
    if (!json_is_object(o))
        return vb_error_set(err, "snapshot manifest: not a JSON object");
    if (repo_jf_format(&at, o, REPO_MANIFEST_FORMAT, REPO_MANIFEST_VERSION, &version, err) < 0 ||
        parse_id(&at, o, "id", false, m->id, err) < 0 ||
        dup_field(&at, o, "vm", false, &m->vm, err) < 0 ||
        repo_jf_str(&at, o, "uuid", false, false, &s, err) < 0)
        return -1;
    if (!repo_uuid_valid(s))
        return repo_jf_error(&at, "uuid", err, "\"%.40s\" is not a lower-case uuid", s);
    strcpy(m->uuid, s);
    time_t t = 0;
    if (repo_jf_str(&at, o, "time", false, false, &s, err) < 0)
        return -1;
    if (strlen(s) >= sizeof(m->time) || repo_time_parse(s, &t) < 0)
        return repo_jf_error(&at, "time", err, "\"%.40s\" is not an ISO 8601 time with offset", s);
    strcpy(m->time, s);
    if (repo_jf_str(&at, o, "level", false, false, &s, err) < 0)
        return -1;
    int l = name_index(s, level_names, 3);
    if (l < 0)
        return repo_jf_error(&at, "level", err, "\"%.40s\", expected full, copy or inc", s);
    m->level = (enum repo_level)l;
    if (parse_id(&at, o, "parent", true, m->parent, err) < 0 ||
        parse_checkpoint(&at, o, m, err) < 0 ||
        dup_field(&at, o, "domain_xml", false, &m->domain_xml, err) < 0)
        return -1;
    if (json_object_get(o, "full_time")) {
        if (repo_jf_str(&at, o, "full_time", false, false, &s, err) < 0)
            return -1;
        if (strlen(s) >= sizeof(m->full_time) || repo_time_parse(s, &t) < 0)
            return repo_jf_error(&at, "full_time", err,
                                 "\"%.40s\" is not an ISO 8601 time with offset", s);
        strcpy(m->full_time, s);
    }
    /* optional: only imported snapshots have it */
    if (json_object_get(o, "source") && dup_field(&at, o, "source", true, &m->source, err) < 0)
        return -1;

    json_t *disks = get_array(&at, o, "disks", REPO_MANIFEST_MAX_DISKS, err);
    if (!disks)
        return -1;
    m->disks = calloc(json_array_size(disks) + 1, sizeof(*m->disks));
    if (!m->disks)
        return vb_error_errno(err, "snapshot manifest: disks");
    for (size_t i = 0; i < json_array_size(disks); i++) {
        m->n_disks = i + 1; /* what repo_manifest_free releases */
        if (parse_disk(at.doc, json_array_get(disks, i), i, &m->disks[i], err) < 0)
            return -1;
        for (size_t j = 0; j < i; j++)
            if (strcmp(m->disks[j].target, m->disks[i].target) == 0)
                return vb_error_set(err, "snapshot manifest: disks[%zu].target: \"%.40s\" again", i,
                                    m->disks[i].target);
    }

    json_t *blobs = get_array(&at, o, "blobs", REPO_MANIFEST_MAX_BLOBS, err);
    if (!blobs)
        return -1;
    m->blobs = calloc(json_array_size(blobs) + 1, sizeof(*m->blobs));
    if (!m->blobs)
        return vb_error_errno(err, "snapshot manifest: blobs");
    for (size_t i = 0; i < json_array_size(blobs); i++) {
        m->n_blobs = i + 1;
        if (parse_blob(at.doc, json_array_get(blobs, i), i, &m->blobs[i], err) < 0)
            return -1;
    }
    return 0;
}

int repo_manifest_parse_json(json_t *o, struct repo_manifest *m, struct vb_error *err)
{
    memset(m, 0, sizeof(*m));
    return parse_object(o, m, err);
}

int repo_manifest_parse(const char *json, size_t len, struct repo_manifest *m, struct vb_error *err)
{
    memset(m, 0, sizeof(*m));
    json_error_t je;
    json_t *o = json_loadb(json, len, JSON_REJECT_DUPLICATES, &je);
    if (!o)
        return vb_error_set(err, "snapshot manifest: not JSON: %s (line %d)", je.text, je.line);
    int rc = parse_object(o, m, err);
    json_decref(o);
    return rc;
}

/* json_int_t for a size; -1 when it does not fit */
static int json_size(json_t *o, const char *name, uint64_t v, const char *path,
                     struct vb_error *err)
{
    if (v > INT64_MAX)
        return vb_error_set(err, "snapshot manifest: %s%s%s: %llu does not fit", path,
                            path[0] ? "." : "", name, (unsigned long long)v);
    if (json_object_set_new(o, name, json_integer((json_int_t)v)) < 0)
        return vb_error_set(err, "snapshot manifest: out of memory");
    return 0;
}

static json_t *str_or_null(const char *s)
{
    return s ? json_string(s) : json_null();
}

static json_t *digest_json(const repo_digest *d)
{
    char hex[REPO_DIGEST_HEX + 1];
    repo_digest_hex(d, hex);
    return json_string(hex);
}

static json_t *build(const struct repo_manifest *m, struct vb_error *err)
{
    json_t *o = json_object(), *disks = json_array(), *blobs = json_array();
    json_t *cp = json_null();
    if (m->has_checkpoint)
        cp = json_pack("{s:o, s:I, s:o}", "name", str_or_null(m->checkpoint.name), "creation_time",
                       (json_int_t)m->checkpoint.creation_time, "xml",
                       str_or_null(m->checkpoint.xml));
    if (!o || !disks || !blobs || !cp)
        goto nomem;
    if (json_object_set_new(o, "format", json_string(REPO_MANIFEST_FORMAT)) < 0 ||
        json_object_set_new(o, "version", json_integer(REPO_MANIFEST_VERSION)) < 0 ||
        json_object_set_new(o, "id", json_string(m->id)) < 0 ||
        json_object_set_new(o, "vm", str_or_null(m->vm)) < 0 ||
        json_object_set_new(o, "uuid", json_string(m->uuid)) < 0 ||
        json_object_set_new(o, "time", json_string(m->time)) < 0 ||
        json_object_set_new(o, "level", str_or_null(repo_level_name(m->level))) < 0 ||
        json_object_set_new(o, "parent", m->parent[0] ? json_string(m->parent) : json_null()) < 0 ||
        json_object_set_new(o, "checkpoint", cp) < 0 ||
        json_object_set_new(o, "domain_xml", str_or_null(m->domain_xml)) < 0 ||
        (m->full_time[0] && json_object_set_new(o, "full_time", json_string(m->full_time)) < 0) ||
        (m->source && json_object_set_new(o, "source", json_string(m->source)) < 0))
        goto nomem_cp_owned;
    for (size_t i = 0; i < m->n_disks; i++) {
        const struct repo_manifest_disk *d = &m->disks[i];
        char path[32];
        snprintf(path, sizeof(path), "disks[%zu]", i);
        json_t *j = json_object();
        if (!j || json_array_append_new(disks, j) < 0)
            goto nomem_cp_owned;
        if (json_object_set_new(j, "target", str_or_null(d->target)) < 0 ||
            json_size(j, "virtual_size", d->virtual_size, path, err) < 0 ||
            json_size(j, "chunk_size", d->chunk_size, path, err) < 0 ||
            json_object_set_new(j, "index", digest_json(&d->index)) < 0 ||
            json_object_set_new(j, "format", str_or_null(d->format)) < 0 ||
            json_object_set_new(j, "qcow_json", str_or_null(d->qcow_json)) < 0 ||
            json_size(j, "bytes_read", d->bytes_read, path, err) < 0 ||
            json_size(j, "bytes_new", d->bytes_new, path, err) < 0 ||
            json_size(j, "bytes_stored", d->bytes_stored, path, err) < 0)
            goto fail;
    }
    for (size_t i = 0; i < m->n_blobs; i++) {
        const struct repo_manifest_blob *b = &m->blobs[i];
        char path[32];
        snprintf(path, sizeof(path), "blobs[%zu]", i);
        json_t *j = json_object();
        if (!j || json_array_append_new(blobs, j) < 0)
            goto nomem_cp_owned;
        if (json_object_set_new(j, "kind", str_or_null(repo_blob_kind_name(b->kind))) < 0 ||
            json_object_set_new(j, "path", str_or_null(b->path)) < 0 ||
            json_size(j, "size", b->size, path, err) < 0 ||
            json_object_set_new(j, "index", digest_json(&b->index)) < 0)
            goto fail;
    }
    json_t *d = disks, *b = blobs;
    disks = blobs = NULL;
    if (json_object_set_new(o, "disks", d) < 0 || json_object_set_new(o, "blobs", b) < 0)
        goto nomem_cp_owned;
    return o;

nomem:
    json_decref(cp);
nomem_cp_owned:
    vb_error_set(err, "snapshot manifest: out of memory");
fail:
    json_decref(o);
    json_decref(disks);
    json_decref(blobs);
    return NULL;
}

char *repo_manifest_to_json(const struct repo_manifest *m, struct vb_error *err)
{
    json_t *o = build(m, err);
    if (!o)
        return NULL;
    char *text = json_dumps(o, JSON_INDENT(2));
    json_decref(o);
    if (!text) {
        vb_error_set(err, "snapshot manifest: cannot build the JSON text (out of memory)");
        return NULL;
    }
    /* what is written must read back: the parser is the one definition of a valid manifest */
    struct repo_manifest check;
    int rc = repo_manifest_parse(text, strlen(text), &check, err);
    repo_manifest_free(&check);
    if (rc < 0) {
        free(text);
        return NULL;
    }
    return text;
}

json_t *repo_manifest_build_json(const struct repo_manifest *m, struct vb_error *err)
{
    return build(m, err);
}
