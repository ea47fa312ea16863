/* The dump action: every data file's META JSON as the file holds it (keys in its order), plus
 * "file", as one JSON array with 4-space indent on stdout. */
#include <inttypes.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "frame.h"
#include "log.h"
#include "meta.h"
#include "plan.h"
#include "restore.h"
#include "util.h"

static json_t *file_meta(struct bset *set, const char *name, struct vb_error *err)
{
    struct stream_source *src = bset_source(set, name, err);
    if (!src)
        return NULL;
    json_t *obj = NULL;
    char hdr[STREAM_FRAME_LEN];
    struct stream_frame fr;
    char *text = NULL;
    if (stream_source_read_exact(src, hdr, sizeof hdr, 0, err) < 0)
        goto out;
    if (stream_frame_parse(hdr, &fr, err) < 0 || fr.kind != STREAM_FRAME_META) {
        vb_error_set(err, "%s: offset 0: not a stream file (no META frame)", src->name);
        goto out;
    }
    if (fr.length > STREAM_META_MAX_JSON) {
        vb_error_set(err, "%s: META of %" PRIu64 " bytes is implausible", src->name, fr.length);
        goto out;
    }
    text = malloc((size_t)fr.length + 1);
    if (!text) {
        vb_error_set(err, "out of memory");
        goto out;
    }
    if (stream_source_read_exact(src, text, (size_t)fr.length, STREAM_FRAME_LEN, err) < 0)
        goto out;
    struct stream_meta meta;
    if (stream_meta_parse(text, (size_t)fr.length, &meta, err) < 0) {
        vb_error_prefix(err, "%s: offset %d", src->name, STREAM_FRAME_LEN);
        goto out;
    }
    json_error_t je;
    obj = json_loadb(text, (size_t)fr.length, 0, &je);
    if (!json_is_object(obj)) {
        json_decref(obj);
        obj = NULL;
        vb_error_set(err, "%s: META is not a JSON object: %s", src->name, je.text);
        goto out;
    }
    char *shown = bset_display(set, name);
    json_object_set_new(obj, "file", json_string(shown ? shown : name));
    free(shown);
out:
    free(text);
    stream_source_free(src);
    return obj;
}

int restore_dump(const struct restore_opts *o, struct bset *set)
{
    struct vb_error err = {0};
    char **names = NULL;
    size_t n = 0;
    int failed = 0;
    if (o->sequence) {
        /* the files given, in the order given */
        char *copy = strdup(o->sequence), *save = NULL;
        names = calloc(strlen(o->sequence) + 1, sizeof *names);
        for (char *t = copy && names ? strtok_r(copy, ",", &save) : NULL; t;
             t = strtok_r(NULL, ",", &save))
            names[n++] = strdup(vb_base_name(t));
        free(copy);
    } else if (bset_data_files(set, &names, &n, &err) < 0) {
        vb_error_log("%s", err.msg);
        bset_names_free(names, n);
        return -1;
    }
    json_t *arr = json_array();
    for (size_t i = 0; i < n; i++) {
        char dev[64];
        if (!names[i])
            continue;
        if (o->disk && (!bset_data_name(names[i], dev, sizeof dev) || strcmp(dev, o->disk)))
            continue;
        json_t *m = file_meta(set, names[i], &err);
        if (!m) {
            vb_error_log("%s", err.msg);
            failed++;
            continue;
        }
        json_array_append_new(arr, m);
    }
    char *out = json_dumps(arr, JSON_INDENT(4) | JSON_PRESERVE_ORDER);
    if (!out || printf("%s\n", out) < 0 || fflush(stdout) != 0) {
        vb_error_log("stdout: cannot write the dump");
        failed++;
    }
    free(out);
    json_decref(arr);
    bset_names_free(names, n);
    return failed ? -1 : 0;
}
