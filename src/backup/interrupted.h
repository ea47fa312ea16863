/* Data files of a run that was killed after committing them and before its bookkeeping
 * (virtbackup-stream(5), "The order of a run"): <dev>.inc.virtnbdbackup.N.data files whose
 * checkpoint <domain>.cpt does not list, numbered above its last one. The chain does not hold
 * them and the next run takes their number, so they are moved aside (with their .chksum) to
 * <file>.interrupted: nothing is deleted, and the chain goes on. */
#ifndef VB_INTERRUPTED_H
#define VB_INTERRUPTED_H

#include "backup.h"

/* In dir, for the chain's list cpt. Returns how many data files were moved aside, or -1. */
int interrupted_set_aside(const char *dir, const struct cpt_list *cpt, struct vb_error *err);

#endif
