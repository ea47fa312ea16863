#include "image.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <jansson.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "host.h"
#include "log.h"
#include "qemu_nbd.h"

/* Appends "key=value" to a comma-separated -o list. */
static int append(char **opts, const char *key, const char *value)
{
    char *joined = NULL;
    int r =
        asprintf(&joined, "%s%s%s=%s", *opts ? *opts : "", *opts && **opts ? "," : "", key, value);
    if (r < 0)
        return -1;
    free(*opts);
    *opts = joined;
    return 0;
}

int image_options(const char *qcow_json, const char *data_dir, char **options, char **data_file,
                  struct vb_error *err)
{
    *options = strdup("");
    *data_file = NULL;
    if (!*options)
        return vb_error_set(err, "out of memory");
    if (!qcow_json)
        return 0;
    json_error_t je;
    json_t *root = json_loads(qcow_json, 0, &je);
    if (!json_is_object(root)) {
        json_decref(root);
        return vb_error_set(err, "invalid qemu-img info JSON: %s (line %d)", je.text, je.line);
    }
    int rc = 0;
    json_t *data = json_object_get(json_object_get(root, "format-specific"), "data");
    const char *compat = json_string_value(json_object_get(data, "compat"));
    json_t *cluster = json_object_get(root, "cluster-size");
    const char *ctype = json_string_value(json_object_get(data, "compression-type"));
    const char *dfile = json_string_value(json_object_get(data, "data-file"));
    char num[32];
    /* Escape commas: values end up in one -o list. */
    if (compat && strspn(compat, "0123456789.v") == strlen(compat))
        rc |= append(options, "compat", compat);
    if (json_is_integer(cluster)) {
        snprintf(num, sizeof num, "%" JSON_INTEGER_FORMAT, json_integer_value(cluster));
        rc |= append(options, "cluster_size", num);
    }
    if (json_is_true(json_object_get(data, "lazy-refcounts")))
        rc |= append(options, "lazy_refcounts", "on");
    if (ctype && strspn(ctype, "abcdefghijklmnopqrstuvwxyz0123456789") == strlen(ctype))
        rc |= append(options, "compression_type", ctype);
    if (json_is_true(json_object_get(data, "extended-l2")))
        rc |= append(options, "extended_l2", "on");
    if (dfile) {
        /* Recreated next to the restored image, never at the original VM's path. */
        char *copy = strdup(dfile);
        char *esc = NULL;
        if (copy && asprintf(data_file, "%s/%s", data_dir, basename(copy)) >= 0)
            esc = qemu_opt_escape(*data_file);
        else
            *data_file = NULL;
        free(copy);
        if (!esc)
            rc = -1;
        else
            rc |= append(options, "data_file", esc);
        free(esc);
        if (json_is_true(json_object_get(data, "data-file-raw")))
            rc |= append(options, "data_file_raw", "on");
    }
    json_decref(root);
    if (rc) {
        free(*options);
        free(*data_file);
        *options = *data_file = NULL;
        return vb_error_set(err, "out of memory");
    }
    return 0;
}

int image_create(const struct image_spec *spec, struct image_created *made, struct vb_error *err)
{
    made->data_file = NULL;
    char *opts = NULL, *data_file = NULL;
    bool qcow = strncmp(spec->format, "qcow", 4) == 0;
    if (image_options(qcow ? spec->qcow_json : NULL, spec->data_dir, &opts, &data_file, err) < 0)
        return -1;
    if (spec->preallocate && append(&opts, "preallocation", "full") < 0) {
        free(opts);
        free(data_file);
        return vb_error_set(err, "out of memory");
    }
    /* qemu-img runs on the restore host: here, or over SSH */
    struct vb_host here = {0};
    struct vb_host *host = spec->host ? spec->host : &here;
    if (data_file && vb_host_exists(host, data_file, err) != 0) {
        vb_error_set(err, "%s: external data file exists already, refusing to overwrite it",
                     data_file);
        free(opts);
        free(data_file);
        return -1;
    }
    char size[32];
    snprintf(size, sizeof size, "%" PRIu64, spec->size);
    char *argv[12];
    size_t n = 0;
    argv[n++] = "qemu-img";
    argv[n++] = "create";
    argv[n++] = "-q";
    argv[n++] = "-f";
    argv[n++] = (char *)spec->format;
    if (*opts) {
        argv[n++] = "-o";
        argv[n++] = opts;
    }
    argv[n++] = (char *)spec->path;
    argv[n++] = size;
    argv[n] = NULL;
    vb_debug("qemu-img create -f %s %s%s%s %s", spec->format, *opts ? "-o " : "", opts, spec->path,
             size);
    int rc = vb_host_run(host, argv, NULL, NULL, err);
    if (rc < 0) {
        vb_error_prefix(err, "%s: cannot create the image", spec->path);
        vb_host_unlink(host, spec->path, &(struct vb_error){0});
        if (data_file)
            vb_host_unlink(host, data_file, &(struct vb_error){0});
        free(data_file);
    } else {
        made->data_file = data_file;
    }
    free(opts);
    return rc;
}

void image_created_free(struct image_created *made)
{
    free(made->data_file);
    made->data_file = NULL;
}
