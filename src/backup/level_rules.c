/* Level decisions without libvirt: the level a run takes, the next checkpoint's name. */
#include "level_rules.h"

#include <stdio.h>

int level_resolve(enum backup_level asked, const char *dir, size_t data_files, size_t full_files,
                  enum backup_level *level, struct vb_error *err)
{
    *level = asked;
    if (asked == LEVEL_AUTO) {
        if (data_files == 0)
            *level = LEVEL_FULL;
        else if (full_files > 0)
            *level = LEVEL_INC;
        else
            return vb_error_set(err,
                                "-l auto: %s holds %zu data files but no full backup (*.full.data)"
                                "; use a new directory or -l full into an empty one",
                                dir, data_files);
    }
    if ((*level == LEVEL_FULL || *level == LEVEL_COPY) && data_files > 0)
        return vb_error_set(err,
                            "%s already holds a backup (%zu data files): a %s backup needs "
                            "an empty directory",
                            dir, data_files, backup_level_name(*level));
    return 0;
}

void checkpoint_next(const struct cpt_list *cpt, char *checkpoint, size_t checkpoint_len,
                     char *parent, size_t parent_len)
{
    long next = 0;
    for (size_t i = 0; i < cpt->n; i++) {
        long num = stream_checkpoint_number(cpt->names[i]);
        if (num >= next)
            next = num + 1;
    }
    snprintf(checkpoint, checkpoint_len, "%s.%ld", CHECKPOINT_PREFIX, next);
    snprintf(parent, parent_len, "%s", cpt->names[cpt->n - 1]);
}
