#ifndef VB_BACKUP_RUN_H
#define VB_BACKUP_RUN_H

#include "backup.h"

/* The whole run; returns the exit status (0, 1, or 2 with --strict and warnings). */
int backup_main(struct backup_opts *opts);

#endif
