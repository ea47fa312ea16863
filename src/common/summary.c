#include "summary.h"

#include <jansson.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "vector.h"

struct summary {
    char tool[32];
    char snapshot[64]; /* empty: none committed */
    pthread_mutex_t lock;
    size_t n, cap;
    struct summary_disk **disks; /* pointers stay valid while the array grows */
};

struct summary *summary_new(const char *tool)
{
    struct summary *s = calloc(1, sizeof *s);
    if (!s)
        return NULL;
    snprintf(s->tool, sizeof s->tool, "%s", tool);
    pthread_mutex_init(&s->lock, NULL);
    return s;
}

void summary_free(struct summary *s)
{
    if (!s)
        return;
    for (size_t i = 0; i < s->n; i++)
        free(s->disks[i]);
    free(s->disks);
    pthread_mutex_destroy(&s->lock);
    free(s);
}

struct summary_disk *summary_add_disk(struct summary *s, const char *disk)
{
    struct summary_disk *d = calloc(1, sizeof *d);
    if (!d)
        return NULL;
    snprintf(d->disk, sizeof d->disk, "%s", disk);
    pthread_mutex_lock(&s->lock);
    if (vb_vector_grow(&s->disks, &s->cap, s->n + 1, sizeof *s->disks) < 0) {
        pthread_mutex_unlock(&s->lock);
        free(d);
        return NULL;
    }
    s->disks[s->n++] = d;
    pthread_mutex_unlock(&s->lock);
    return d;
}

void summary_set_snapshot(struct summary *s, const char *id)
{
    pthread_mutex_lock(&s->lock);
    snprintf(s->snapshot, sizeof s->snapshot, "%s", id);
    pthread_mutex_unlock(&s->lock);
}

const char *summary_status_name(enum summary_status st)
{
    switch (st) {
    case SUMMARY_OK:
        return "ok";
    case SUMMARY_SKIPPED:
        return "skipped";
    default:
        return "error";
    }
}

static json_t *str_or_null(const char *s)
{
    return s && *s ? json_string(s) : json_null();
}

static json_t *disk_json(const struct summary_disk *d)
{
    json_t *o = json_object();
    json_object_set_new(o, "disk", json_string(d->disk));
    json_object_set_new(o, "level", str_or_null(d->level));
    json_object_set_new(o, "file", str_or_null(d->file));
    json_object_set_new(o, "extents", json_integer((json_int_t)d->extents));
    json_object_set_new(o, "bytes_read", json_integer((json_int_t)d->bytes_read));
    json_object_set_new(o, "bytes_written", json_integer((json_int_t)d->bytes_written));
    if (d->repository) {
        json_object_set_new(o, "bytes_new", json_integer((json_int_t)d->bytes_new));
        json_object_set_new(o, "bytes_stored", json_integer((json_int_t)d->bytes_stored));
        json_object_set_new(o, "chunks_copied", json_integer((json_int_t)d->chunks_copied));
    }
    json_object_set_new(o, "seconds", json_real(d->seconds));
    json_object_set_new(o, "checksum",
                        d->have_checksum ? json_integer((json_int_t)d->checksum) : json_null());
    json_object_set_new(o, "incremental", json_boolean(d->incremental));
    json_object_set_new(o, "checkpoint", str_or_null(d->checkpoint));
    json_object_set_new(o, "parent", str_or_null(d->parent));
    json_object_set_new(o, "status", json_string(summary_status_name(d->status)));
    json_object_set_new(o, "error", str_or_null(d->error));
    return o;
}

int summary_write(struct summary *s, const char *path, enum summary_status status, int exit_code,
                  unsigned warnings, struct vb_error *err)
{
    json_t *root = json_object();
    json_t *disks = json_array();
    if (!root || !disks) {
        json_decref(root);
        json_decref(disks);
        return vb_error_set(err, "out of memory");
    }
    json_object_set_new(root, "tool", json_string(s->tool));
    json_object_set_new(root, "status", json_string(summary_status_name(status)));
    json_object_set_new(root, "exit_code", json_integer(exit_code));
    json_object_set_new(root, "warnings", json_integer(warnings));
    pthread_mutex_lock(&s->lock);
    if (s->snapshot[0])
        json_object_set_new(root, "snapshot", json_string(s->snapshot));
    for (size_t i = 0; i < s->n; i++)
        json_array_append_new(disks, disk_json(s->disks[i]));
    pthread_mutex_unlock(&s->lock);
    json_object_set_new(root, "disks", disks);

    int rc = 0;
    size_t flags = JSON_INDENT(4) | JSON_PRESERVE_ORDER | JSON_REAL_PRECISION(6);
    if (!path || strcmp(path, "-") == 0) {
        if (json_dumpf(root, stdout, flags) < 0 || fputc('\n', stdout) == EOF ||
            fflush(stdout) != 0)
            rc = vb_error_errno(err, "stdout: cannot write the JSON summary");
    } else {
        FILE *f = fopen(path, "w");
        if (!f) {
            rc = vb_error_errno(err, "%s: cannot write the JSON summary", path);
        } else {
            if (json_dumpf(root, f, flags) < 0 || fputc('\n', f) == EOF)
                rc = vb_error_errno(err, "%s: write", path);
            if (fclose(f) != 0 && rc == 0)
                rc = vb_error_errno(err, "%s: close", path);
        }
    }
    json_decref(root);
    return rc;
}
