#include "plan.h"

#include <inttypes.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "checkpoint_name.h"
#include "chksum.h"
#include "log.h"
#include "source_tap.h"
#include "stream_index.h"
#include "util.h"
#include "vector.h"

bool bset_data_name(const char *name, char *dev, size_t devlen)
{
    size_t len = strlen(name);
    if (strchr(name, '/') || len < 6 || strcmp(name + len - 5, ".data") != 0)
        return false;
    const char *dot = strchr(name, '.');
    if (!dot || dot == name || (size_t)(dot - name) >= devlen)
        return false;
    const char *rest = dot + 1;
    bool ok = strcmp(rest, "full.data") == 0 || strcmp(rest, "copy.data") == 0 ||
              (strncmp(rest, "inc.", 4) == 0 && strlen(rest) > 9) ||
              (strncmp(rest, "diff.", 5) == 0 && strlen(rest) > 10);
    if (ok) {
        memcpy(dev, name, (size_t)(dot - name));
        dev[dot - name] = '\0';
    }
    return ok;
}

int bset_data_files(struct bset *set, char ***names, size_t *n, struct vb_error *err)
{
    *names = NULL;
    *n = 0;
    char dev[64];
    size_t total = bset_count(set);
    *names = calloc(total + 1, sizeof **names);
    if (!*names)
        return vb_error_set(err, "out of memory");
    for (size_t i = 0; i < total; i++) {
        const char *name = bset_name(set, i);
        if (!bset_data_name(name, dev, sizeof dev))
            continue;
        if (!((*names)[*n] = strdup(name)))
            return vb_error_set(err, "out of memory");
        (*n)++;
    }
    return 0;
}

void bset_names_free(char **names, size_t n)
{
    for (size_t i = 0; names && i < n; i++)
        free(names[i]);
    free(names);
}

/* The checkpoint name of a META names files of the restore (vmconfig.<name>.xml, the boot
 * files' copies): refused unless it is a plain name. */
static int check_checkpoint_name(struct bset *set, const char *name, const struct stream_meta *meta,
                                 struct vb_error *err)
{
    if (!vb_checkpoint_name_problem(meta->checkpoint_name))
        return 0;
    char *shown = bset_display(set, name);
    vb_checkpoint_name_check(meta->checkpoint_name, shown ? shown : name, err);
    free(shown);
    return -1;
}

static void chain_free(struct bset_chain *dc)
{
    chain_index_free(dc->ci);
    for (size_t k = 0; dc->applied && k < dc->plan.n; k++)
        stream_index_free(dc->applied[k]);
    free(dc->applied);
    free(dc->chksums);
    chain_plan_free(&dc->plan);
    bset_names_free(dc->names, dc->nfiles);
    free(dc->files);
}

void bset_chains_free(struct bset_chain *chains, size_t n)
{
    for (size_t i = 0; chains && i < n; i++)
        chain_free(&chains[i]);
    free(chains);
}

bool bset_is_raw_image(struct stream_source *src, const char *name)
{
    char magic[4] = {0};
    struct vb_error ignored = {0};
    size_t nl = strlen(name);
    return src->size >= 4 && src->ops->pread(src, magic, 4, 0, &ignored) == 4 &&
           memcmp(magic, "meta", 4) != 0 && nl > 10 && strcmp(name + nl - 10, ".copy.data") == 0;
}

/* Reads the META frame of every file of the chain; a raw image (no META) is only allowed as
 * the single copy of a raw disk. With check_dev, every META must name the disk dc->dev. */
static int read_metas(struct bset *set, struct bset_chain *dc, bool check_dev, struct vb_error *err)
{
    dc->files = calloc(dc->nfiles, sizeof *dc->files);
    if (!dc->files)
        return vb_error_set(err, "out of memory");
    for (size_t i = 0; i < dc->nfiles; i++) {
        struct stream_source *src = bset_source(set, dc->names[i], err);
        if (!src)
            return -1;
        if (dc->nfiles == 1 && bset_is_raw_image(src, dc->names[i])) {
            dc->raw_image = true;
            stream_source_free(src);
            dc->files[i].path = dc->names[i];
            return 0;
        }
        uint64_t end;
        int rc = stream_read_meta(src, &dc->files[i].meta, &end, err);
        stream_source_free(src);
        if (rc < 0 || check_checkpoint_name(set, dc->names[i], &dc->files[i].meta, err) < 0)
            return -1;
        dc->files[i].path = dc->names[i];
        if (check_dev && strcmp(dc->files[i].meta.disk_name, dc->dev) != 0)
            return vb_error_set(err, "%s: metadata names disk '%s', the file name says '%s'",
                                dc->names[i], dc->files[i].meta.disk_name, dc->dev);
        if (chain_classify(&dc->files[i], err) < 0)
            return -1;
    }
    return 0;
}

/* The chain's .cpt list, if the input has one (with several, as in a list of zips each
 * holding the list of its time, the longest). */
static int load_cpt(struct bset *set, char ***names, size_t *n, char **which, struct vb_error *err)
{
    *names = NULL;
    *n = 0;
    *which = NULL;
    for (size_t i = 0; i < bset_count(set); i++) {
        const char *name = bset_name(set, i);
        size_t len = strlen(name);
        if (len < 5 || strcmp(name + len - 4, ".cpt") != 0 || strchr(name, '/'))
            continue;
        char *text;
        size_t tlen;
        if (bset_read(set, name, 1 << 20, &text, &tlen, err) < 0)
            return -1;
        json_t *root = json_loadb(text, tlen, 0, NULL);
        free(text);
        if (!json_is_array(root)) {
            json_decref(root);
            return vb_error_set(err, "%s: not a JSON list of checkpoint names", name);
        }
        if (json_array_size(root) > *n) {
            for (size_t k = 0; k < *n; k++)
                free((*names)[k]);
            free(*names);
            free(*which);
            *n = json_array_size(root);
            *names = calloc(*n, sizeof **names);
            for (size_t k = 0; *names && k < *n; k++) {
                const char *v = json_string_value(json_array_get(root, k));
                (*names)[k] = strdup(v ? v : "");
            }
            *which = bset_display(set, name);
        }
        json_decref(root);
    }
    return 0;
}

static void free_cpt(char **names, size_t n, char *which)
{
    for (size_t k = 0; k < n; k++)
        free(names[k]);
    free(names);
    free(which);
}

/* Orders the files of one disk (dc->names) and cuts the chain at until. */
static int plan_disk(struct bset *set, struct bset_chain *dc, bool check_dev, const char *until,
                     char **cpt, size_t ncpt, const char *cpt_file, struct vb_error *err)
{
    const char *dev = dc->dev;
    if (read_metas(set, dc, check_dev, err) < 0)
        return -1;
    if (dc->raw_image) {
        dc->plan.n = 1;
        dc->plan.order = calloc(1, sizeof *dc->plan.order);
        if (until && strcmp(until, "copy") != 0)
            return vb_error_set(err, "disk %s: a raw image has no checkpoint '%s'", dev, until);
        if (!dc->plan.order)
            return vb_error_set(err, "out of memory");
        return 0;
    }
    if (chain_plan_build(dc->files, dc->nfiles, until, &dc->plan, err) < 0)
        return vb_error_prefix(err, "disk %s", dev);
    if (ncpt) {
        struct vb_error cerr = {0};
        int c = chain_check_cpt(dc->files, &dc->plan, cpt, ncpt, cpt_file, until == NULL, &cerr);
        if (c < 0)
            return vb_error_set(err, "disk %s: %s", dev, cerr.msg);
        if (c > 0)
            vb_warn("disk %s: %s", dev, cerr.msg);
    }
    return 0;
}

int bset_plan_chains(struct bset *set, const char *disk, const char *until,
                     struct bset_chain **chains, size_t *n, struct vb_error *err)
{
    char **names;
    size_t nnames;
    *chains = NULL;
    *n = 0;
    if (bset_data_files(set, &names, &nnames, err) < 0) {
        bset_names_free(names, nnames);
        return -1;
    }
    char **cpt, *cpt_file;
    size_t ncpt;
    if (load_cpt(set, &cpt, &ncpt, &cpt_file, err) < 0) {
        bset_names_free(names, nnames);
        return -1;
    }
    int rc = 0;
    struct bset_chain *dcs = calloc(nnames + 1, sizeof *dcs);
    size_t ndc = 0;
    if (!dcs)
        rc = vb_error_set(err, "out of memory");
    /* names are sorted, so the files of one disk are adjacent */
    for (size_t i = 0; rc == 0 && i < nnames;) {
        char dev[64], dev2[64];
        bset_data_name(names[i], dev, sizeof dev);
        size_t j = i;
        while (j < nnames && bset_data_name(names[j], dev2, sizeof dev2) && strcmp(dev, dev2) == 0)
            j++;
        if (!disk || strcmp(disk, dev) == 0) {
            struct bset_chain *dc = &dcs[ndc++];
            snprintf(dc->dev, sizeof dc->dev, "%s", dev);
            dc->nfiles = j - i;
            dc->names = calloc(dc->nfiles, sizeof *dc->names);
            if (!dc->names) {
                rc = vb_error_set(err, "out of memory");
                break;
            }
            for (size_t k = i; k < j; k++) {
                dc->names[k - i] = names[k];
                names[k] = NULL;
            }
            rc = plan_disk(set, dc, true, until, cpt, ncpt, cpt_file, err);
        }
        i = j;
    }
    bset_names_free(names, nnames);
    free_cpt(cpt, ncpt, cpt_file);
    if (rc == 0 && ndc == 0) {
        if (disk)
            rc = vb_error_set(err, "%s: no backup data of disk '%s'", bset_describe(set), disk);
        else
            rc = vb_error_set(err, "%s: no backup data files (*.data) found", bset_describe(set));
    }
    if (rc < 0) {
        bset_chains_free(dcs, ndc);
        return -1;
    }
    *chains = dcs;
    *n = ndc;
    return 0;
}

int bset_plan_files(struct bset *set, struct bset_chain **chain, struct vb_error *err)
{
    struct bset_chain *dc = calloc(1, sizeof *dc);
    size_t n = bset_count(set);
    int rc = dc && (dc->names = calloc(n + 1, sizeof *dc->names))
                 ? 0
                 : vb_error_set(err, "out of memory");
    for (size_t i = 0; rc == 0 && i < n; i++) {
        if (!(dc->names[i] = strdup(bset_name(set, i))))
            rc = vb_error_set(err, "out of memory");
        else
            dc->nfiles++;
    }
    if (rc == 0 && dc->nfiles == 0)
        rc = vb_error_set(err, "%s: no files", bset_describe(set));
    /* the disk is the one the first file's name says, checked against each META */
    bool named = rc == 0 && bset_data_name(dc->names[0], dc->dev, sizeof dc->dev);
    if (rc == 0)
        rc = plan_disk(set, dc, named, NULL, NULL, 0, NULL, err);
    if (rc < 0) {
        if (dc)
            bset_chains_free(dc, 1);
        return -1;
    }
    *chain = dc;
    return 0;
}

int bset_plan_sequence(struct bset *set, const char *list, struct bset_chain **chain,
                       struct vb_error *err)
{
    struct bset_chain *dc = calloc(1, sizeof *dc);
    char *copy = strdup(list), *save = NULL;
    int rc = dc && copy ? 0 : vb_error_set(err, "out of memory");
    size_t cap = 0;
    for (char *tok = copy ? strtok_r(copy, ",", &save) : NULL; rc == 0 && tok;
         tok = strtok_r(NULL, ",", &save)) {
        if (vb_vector_grow(&dc->names, &cap, dc->nfiles + 1, sizeof *dc->names) < 0) {
            rc = vb_error_set(err, "out of memory");
            break;
        }
        /* "dir/name" is accepted as well as "name": only the base name picks the input's file */
        const char *base = vb_base_name(tok);
        if (!bset_has(set, base)) {
            rc = vb_error_set(err, "--sequence: %s has no file '%s'", bset_describe(set), base);
            break;
        }
        dc->names[dc->nfiles] = strdup(base);
        if (!dc->names[dc->nfiles++])
            rc = vb_error_set(err, "out of memory");
    }
    free(copy);
    if (rc == 0 && (!dc->nfiles))
        rc = vb_error_set(err, "--sequence: no files given");
    if (rc == 0 && !bset_data_name(dc->names[0], dc->dev, sizeof dc->dev))
        snprintf(dc->dev, sizeof dc->dev, "%s", "");
    if (rc == 0) {
        dc->files = calloc(dc->nfiles, sizeof *dc->files);
        dc->plan.order = calloc(dc->nfiles, sizeof *dc->plan.order);
        if (!dc->files || !dc->plan.order)
            rc = vb_error_set(err, "out of memory");
    }
    for (size_t i = 0; rc == 0 && i < dc->nfiles; i++) {
        struct stream_source *src = bset_source(set, dc->names[i], err);
        uint64_t end;
        if (!src || stream_read_meta(src, &dc->files[i].meta, &end, err) < 0 ||
            check_checkpoint_name(set, dc->names[i], &dc->files[i].meta, err) < 0)
            rc = -1;
        stream_source_free(src);
        dc->files[i].path = dc->names[i];
        if (rc == 0 && chain_classify(&dc->files[i], err) < 0)
            rc = -1;
        if (rc == 0 && i == 0 && dc->files[0].meta.incremental)
            rc = vb_error_set(err,
                              "--sequence: the first file %s is incremental; it must be a "
                              "full or copy backup",
                              dc->names[0]);
        if (rc == 0 && strcmp(dc->files[i].meta.disk_name, dc->files[0].meta.disk_name) != 0)
            rc = vb_error_set(err, "--sequence: %s is of disk '%s', %s of disk '%s'", dc->names[i],
                              dc->files[i].meta.disk_name, dc->names[0],
                              dc->files[0].meta.disk_name);
        if (rc == 0 && i > 0 && dc->files[i].meta.incremental &&
            strcmp(dc->files[i].meta.parent_checkpoint, dc->files[i - 1].meta.checkpoint_name))
            vb_warn("--sequence: %s follows checkpoint '%s' but %s is checkpoint '%s'",
                    dc->names[i], dc->files[i].meta.parent_checkpoint, dc->names[i - 1],
                    dc->files[i - 1].meta.checkpoint_name);
        dc->plan.order[i] = i;
    }
    if (rc == 0) {
        dc->plan.n = dc->nfiles;
        snprintf(dc->dev, sizeof dc->dev, "%.63s", dc->files[0].meta.disk_name);
        *chain = dc;
        return 0;
    }
    if (dc)
        bset_chains_free(dc, 1);
    return -1;
}

int bset_plan_index(struct bset *set, struct bset_chain *dc, struct vb_error *err)
{
    dc->applied = calloc(dc->plan.n + 1, sizeof *dc->applied);
    dc->chksums = calloc(dc->plan.n + 1, sizeof *dc->chksums);
    if (!dc->applied || !dc->chksums)
        return vb_error_set(err, "out of memory");
    for (size_t k = 0; k < dc->plan.n; k++) {
        const char *name = dc->names[dc->plan.order[k]];
        struct stream_source *src = bset_source(set, name, err);
        /* every byte read is checksummed on the way, for the .chksum check after the restore */
        if (!src || !(src = stream_source_tap_new(src, err)))
            return -1;
        dc->applied[k] = stream_index_build(src, err); /* owns src, also on failure */
        if (!dc->applied[k])
            return -1;
        /* A file with a .chksum is checked whole by the caller before it commits its result
         * (from the tap's adler32, dc->chksums), so LZ4's own two xxh32 passes over its data
         * would only repeat that check: a third of a -z restore's decoding time. */
        int found = bset_read_chksum(set, name, &dc->chksums[k].want, err);
        if (found < 0)
            return -1;
        dc->chksums[k].present = found > 0;
        dc->applied[k]->lz4_checksums = !dc->chksums[k].present;
        vb_debug("%s: %zu: %s, %zu data / %zu zero frames, %" PRIu64 " data bytes", dc->dev, k + 1,
                 name, dc->applied[k]->data_frames, dc->applied[k]->zero_frames,
                 dc->applied[k]->data_bytes);
    }
    dc->ci = chain_index_build(dc->applied, dc->plan.n, err);
    return dc->ci ? 0 : -1;
}

const struct chain_file *bset_chain_last(const struct bset_chain *dc)
{
    return dc->plan.n ? &dc->files[dc->plan.order[dc->plan.n - 1]] : NULL;
}

const char *bset_chain_ident(const struct bset_chain *dc, char *buf, size_t len)
{
    const struct chain_file *f = bset_chain_last(dc);
    buf[0] = '\0';
    if (!f)
        return buf;
    if (dc->raw_image || f->kind == CHAIN_FILE_COPY) {
        snprintf(buf, len, "copy");
    } else if (f->kind == CHAIN_FILE_DIFF) {
        snprintf(buf, len, "%" PRIu64, f->diff_time);
    } else {
        snprintf(buf, len, "%s", f->meta.checkpoint_name);
    }
    return buf;
}
