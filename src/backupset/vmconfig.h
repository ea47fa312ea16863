/* The saved domain configuration of a point (vmconfig.<ident>.xml) and the copies of its boot
 * files (loader, nvram, kernel, initrd: <basename>.<ident>, or <basename> as the reference
 * names them). <ident> is the point's checkpoint name, "copy", or a diff's time (plan.h). */
#ifndef BSET_VMCONFIG_H
#define BSET_VMCONFIG_H

#include <stddef.h>

#include "backup_set.h"

/* The newest vmconfig.<ident>.xml's ident by chain order (malloc'ed) in *ident, NULL if the
 * set holds none. An ident that is not a plain name is refused: it names other files. */
int bset_vmconfig_newest(const struct bset *set, char **ident, struct vb_error *err);

/* The copy of the boot file at orig (a path in the config) for the point ident: its name in
 * name. 1 found (a plain file, bset_is_plain), 0 none (a copy that is not plain is logged and
 * ignored), -1 when orig has no file name (empty, ".", "..", "/"). */
int bset_boot_file(const struct bset *set, const char *orig, const char *ident, char *name,
                   size_t len);

#endif
