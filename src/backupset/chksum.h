/* The <file>.chksum files of a set: the adler32 of a whole data file, as virtbackup and the
 * reference write them (virtbackup-stream(5)). */
#ifndef BSET_CHKSUM_H
#define BSET_CHKSUM_H

#include <stdbool.h>
#include <stdint.h>

#include "backup_set.h"

/* The checksum recorded in <name>.chksum: 1 found, 0 none (or the reference's "None"), -1
 * unreadable. */
int bset_read_chksum(struct bset *set, const char *name, uint32_t *want, struct vb_error *err);
/* have, the adler32 of the whole data file name, against its .chksum. *checked is false when
 * there is no .chksum; a mismatch is an error naming the file. */
int bset_match_chksum(struct bset *set, const char *name, uint32_t have, bool *checked,
                      struct vb_error *err);
/* The error of a mismatch, "<shown>: damaged: its adler32 is H, <name>.chksum says W". */
int bset_chksum_mismatch(const struct bset *set, const char *name, uint32_t have, uint32_t want,
                         struct vb_error *err);

#endif
