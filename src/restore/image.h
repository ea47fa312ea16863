/* Creating the target image with qemu-img, as the original was made: the options come from
 * the qemu-img info JSON saved with the backup (<dev>.<ident>.qcow.json). */
#ifndef VR_IMAGE_H
#define VR_IMAGE_H

#include <stdbool.h>
#include <stdint.h>

#include "error.h"

struct vb_host;

struct image_spec {
    const char *path;      /* file to create (the .partial name) */
    const char *format;    /* qcow2, raw */
    uint64_t size;         /* virtual size in bytes */
    bool preallocate;      /* -o preallocation=full */
    const char *qcow_json; /* qemu-img info JSON text, or NULL for defaults */
    const char *data_dir;  /* where an external data file is recreated (the restore dir) */
    struct vb_host *host;  /* where qemu-img runs (NULL: here) */
};

/* What image_create made, so that a failed restore can remove it. */
struct image_created {
    char *data_file; /* external data file, or NULL */
};

int image_create(const struct image_spec *spec, struct image_created *made, struct vb_error *err);
void image_created_free(struct image_created *made);

/* The qemu-img create options (-o ...) for the saved JSON, as one comma-joined string
 * (malloc'ed, may be empty); data_file gets the recreated external data file path or NULL.
 * Exposed for tests. */
int image_options(const char *qcow_json, const char *data_dir, char **options, char **data_file,
                  struct vb_error *err);

#endif
