/* The decisions about levels that depend on no libvirt call: the level a run takes given the
 * directory's data files (virtbackup(1), -l), and the names of the checkpoint an incremental
 * creates and of its parent given the chain's .cpt list (virtbackup-stream(5)). */
#ifndef VB_BACKUP_LEVEL_RULES_H
#define VB_BACKUP_LEVEL_RULES_H

#include <stddef.h>

#include "backup.h"

/* The level of a run asked for `asked` into dir, which holds data_files *.data files,
 * full_files of them *.full.data: auto is full into a directory without data files and inc
 * into one that holds a full; full and copy need a directory without data files. */
int level_resolve(enum backup_level asked, const char *dir, size_t data_files, size_t full_files,
                  enum backup_level *level, struct vb_error *err);

/* The checkpoint after the chain's last one (one above the highest number in the list:
 * numbers never repeat within a directory) and its parent, the list's last one. cpt must not
 * be empty. */
void checkpoint_next(const struct cpt_list *cpt, char *checkpoint, size_t checkpoint_len,
                     char *parent, size_t parent_len);

#endif
