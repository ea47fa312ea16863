/* A checkpoint name read from a backup (META checkpointName, the <ident> of a
 * vmconfig.<ident>.xml) becomes part of file names: vmconfig.<ident>.xml, <loader>.<ident>,
 * autostart.<ident>. A hostile backup must not be able to turn those into paths outside the
 * backup, so only a plain name is accepted: no '/', no "..", no leading '.', no control
 * characters. */
#ifndef VB_CHECKPOINT_NAME_H
#define VB_CHECKPOINT_NAME_H

#include <stdbool.h>

#include "error.h"

/* NULL if name is safe, else why not ("contains '/'", ...). */
const char *vb_checkpoint_name_problem(const char *name);

/* 0 if name is safe; else -1 with "<file>: refusing the unsafe checkpoint name "<name>"
 * (<why>)", control characters in the name shown as \xNN. */
int vb_checkpoint_name_check(const char *name, const char *file, struct vb_error *err);

#endif
