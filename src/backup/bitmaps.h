#ifndef VB_BACKUP_BITMAPS_H
#define VB_BACKUP_BITMAPS_H

#include "backup.h"

struct stray_bitmap {
    char *node; /* qemu block node */
    char *name;
};

/* Bitmaps named prefix* in the running domain's images that are not among checkpoints. */
int stray_bitmaps_find(virDomainPtr dom, const char *prefix, char **checkpoints,
                       size_t ncheckpoints, struct stray_bitmap **out, size_t *nout,
                       struct vb_error *err);
int stray_bitmaps_remove(virDomainPtr dom, const struct stray_bitmap *b, size_t n,
                         struct vb_error *err);
void stray_bitmaps_free(struct stray_bitmap *b, size_t n);

#endif
