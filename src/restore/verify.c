/* The verify action: for every data file, the adler32 of the whole file against its .chksum
 * (when one exists), and always the structural check: every frame header, the metadata,
 * dataSize, the trailer, and every LZ4 frame decoded with its checksums. So corruption is
 * found in backups that have no .chksum (the reference 1.9.15 writes none) too. Then the
 * chain of every disk is planned as a restore would (gaps, order, files of another chain). */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "chksum.h"
#include "frame.h"
#include "log.h"
#include "plan.h"
#include "restore.h"
#include "stream_index.h"
#include "stream_verify.h"

static int file_adler32(struct bset *set, const char *name, size_t bufsize, uint32_t *sum,
                        struct vb_error *err)
{
    struct stream_source *src = bset_source(set, name, err);
    if (!src)
        return -1;
    int rc = stream_source_adler32(src, bufsize, sum, err);
    stream_source_free(src);
    return rc;
}

static int verify_one(const struct restore_opts *o, struct bset *set, const char *name, char *what,
                      size_t whatlen, struct vb_error *err)
{
    size_t bufsize = o->buffsize > 0 ? (size_t)o->buffsize : 0;
    uint32_t have = 0, want = 0;
    int found = bset_read_chksum(set, name, &want, err);
    if (found < 0)
        return -1;
    int n = 0;
    struct stream_source *src = bset_source(set, name, err);
    if (!src)
        return -1;
    bool raw = bset_is_raw_image(src, name);
    if (raw) {
        stream_source_free(src);
        n = snprintf(what, whatlen, "raw image");
    } else {
        struct stream_index *idx = stream_index_build(src, err);
        if (!idx)
            return -1;
        int rc = stream_index_check_payloads(idx, err);
        if (rc == 0)
            n = snprintf(what, whatlen, "%zu data, %zu zero frames%s", idx->data_frames,
                         idx->zero_frames, idx->compressed ? ", lz4 checksums ok" : "");
        stream_index_free(idx);
        if (rc < 0)
            return -1;
    }
    if (file_adler32(set, name, bufsize, &have, err) < 0)
        return -1;
    if (found && have != want) {
        char shown[700];
        snprintf(shown, sizeof shown, "%s", name);
        return vb_error_set(err, "adler32 %" PRIu32 " does not match %u recorded in %s.chksum",
                            have, want, shown);
    }
    snprintf(what + n, whatlen - (size_t)n,
             found ? ", adler32 %" PRIu32 " matches .chksum" : ", adler32 %" PRIu32 " (no .chksum)",
             have);
    return 0;
}

int restore_verify(const struct restore_opts *o, struct bset *set)
{
    struct vb_error err = {0};
    char **names = NULL;
    size_t n = 0;
    if (bset_data_files(set, &names, &n, &err) < 0) {
        vb_error_log("%s", err.msg);
        bset_names_free(names, n);
        return -1;
    }
    int failed = 0, checked = 0;
    for (size_t i = 0; i < n; i++) {
        char dev[64], what[256] = "";
        if (o->disk && (!bset_data_name(names[i], dev, sizeof dev) || strcmp(dev, o->disk)))
            continue;
        char *shown = bset_display(set, names[i]);
        vb_error_clear(&err);
        checked++;
        if (verify_one(o, set, names[i], what, sizeof what, &err) < 0) {
            vb_error_log("%s: FAILED: %s", shown ? shown : names[i], err.msg);
            failed++;
        } else {
            vb_info("%s: OK (%s)", shown ? shown : names[i], what);
        }
        free(shown);
    }
    if (checked == 0) {
        vb_error_log("%s: no data files to verify", bset_describe(set));
        failed++;
    } else {
        /* good files can still make a broken chain: a gap, a file of another chain */
        struct bset_chain *chains = NULL;
        size_t nchains = 0;
        vb_error_clear(&err);
        if (bset_plan_chains(set, o->disk, o->until, &chains, &nchains, &err) < 0) {
            vb_error_log("chain: FAILED: %s", err.msg);
            failed++;
        }
        for (size_t i = 0; i < nchains; i++)
            vb_info("%s: chain OK: %zu file%s to restore up to %s", chains[i].dev, chains[i].plan.n,
                    chains[i].plan.n == 1 ? "" : "s",
                    chains[i].plan.n ? chains[i]
                                           .files[chains[i].plan.order[chains[i].plan.n - 1]]
                                           .meta.checkpoint_name
                                     : "-");
        bset_chains_free(chains, nchains);
    }
    bset_names_free(names, n);
    return failed ? -1 : 0;
}
