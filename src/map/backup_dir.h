/* Which files make each served disk: from a backup directory (-i DIR [--until NAME], every
 * disk of the chain) or an explicit list (-f FULL[,INC...], one disk). Order and the point in
 * time come from the files' metadata (chains.md), exactly as virtrestore plans a restore; this
 * is a small directory-only copy of that approach (src/restore/plan.c also reads zip files). */
#ifndef VM_BACKUP_DIR_H
#define VM_BACKUP_DIR_H

#include <stdbool.h>
#include <stddef.h>

#include "error.h"

struct map_disk {
    char dev[64];    /* target (vda), the export's default name */
    size_t nfiles;   /* planned files, oldest first */
    char **paths;    /* full paths */
    bool raw_image;  /* a single <dev>.copy.data that is a plain raw image, not a stream */
    char ident[288]; /* the last file's point: checkpoint name, "copy" or a diff's time */
};

int backup_dir_plan(const char *dir, const char *until, struct map_disk **disks, size_t *n,
                    struct vb_error *err);
int backup_files_plan(const char *list, struct map_disk **disk, struct vb_error *err);
void map_disks_free(struct map_disk *disks, size_t n);

#endif
