/* The saved domain configuration of the point being restored, and what virtrestore does with
 * it after the disks: copy boot files (loader, nvram, kernel, initrd) next to the images,
 * write the (with -c adjusted) config into the restore directory, define it with -D. */
#ifndef VR_CONFIG_H
#define VR_CONFIG_H

#include <stdbool.h>
#include <stddef.h>

#include "backup_set.h"
#include "domxml.h"
#include "restore.h"

struct restore_config {
    char *ident; /* of the vmconfig actually used */
    char *name;  /* its input name: vmconfig.<ident>.xml */
    struct domxml *dom;
    struct domxml_disk *disks;
    size_t ndisks;
};

/* The outcome of one disk, for the config rewrite. */
struct restored_disk {
    char dev[64];
    char *path;      /* restored image */
    char *format;    /* its format */
    char *data_file; /* its external data file, or NULL */
    bool ok;
};

/* Frees the n outcomes and the array. */
void restored_free(struct restored_disk *rd, size_t n);

/* Loads vmconfig.<ident>.xml, or if that is missing the newest config by chain order (with a
 * warning). *cfg is NULL when the backup holds no config at all. */
int config_load(struct bset *set, const char *ident, struct restore_config **cfg,
                struct vb_error *err);
void config_free(struct restore_config *cfg);
const struct domxml_disk *config_disk(const struct restore_config *cfg, const char *dev);

int config_finish(const struct restore_opts *o, struct bset *set, struct restore_config *cfg,
                  const struct restored_disk *rd, size_t nrd, struct vb_error *err);

#endif
