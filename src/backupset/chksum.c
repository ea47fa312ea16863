#include "chksum.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>

#include "stream_verify.h"

int bset_read_chksum(struct bset *set, const char *name, uint32_t *want, struct vb_error *err)
{
    char cname[600];
    snprintf(cname, sizeof cname, "%s.chksum", name);
    if (!bset_has(set, cname))
        return 0;
    char *text = NULL;
    size_t len;
    if (bset_read(set, cname, 64, &text, &len, err) < 0)
        return -1;
    int rc = stream_chksum_parse(text, cname, want, err);
    free(text);
    return rc;
}

int bset_chksum_mismatch(const struct bset *set, const char *name, uint32_t have, uint32_t want,
                         struct vb_error *err)
{
    char *shown = bset_display(set, name);
    int rc = vb_error_set(err, "%s: damaged: its adler32 is %" PRIu32 ", %s.chksum says %" PRIu32,
                          shown ? shown : name, have, name, want);
    free(shown);
    return rc;
}

int bset_match_chksum(struct bset *set, const char *name, uint32_t have, bool *checked,
                      struct vb_error *err)
{
    uint32_t want = 0;
    *checked = false;
    int found = bset_read_chksum(set, name, &want, err);
    if (found <= 0)
        return found;
    if (have != want)
        return bset_chksum_mismatch(set, name, have, want, err);
    *checked = true;
    return 0;
}
