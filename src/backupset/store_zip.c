/* Zip files written by `virtbackup -o -` (one per backup, the full first), read in place. The
 * chain's metadata files (the .cpt, checkpoints/, qcow.json) are in every zip: the later zip
 * holds the newer copy. A data file in two zips is a broken set. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "store.h"
#include "zip_source.h"

struct zip_store {
    struct bset_store base;
    size_t n;
    struct vb_zip **zips;
};

static bool is_data(const char *name)
{
    size_t l = strlen(name);
    return l > 5 && strcmp(name + l - 5, ".data") == 0;
}

/* The zip that holds the copy of name to use: the last one that has it. */
static struct vb_zip *holder(const struct zip_store *zs, const char *name, long *entry)
{
    for (size_t k = zs->n; k-- > 0;)
        if ((*entry = vb_zip_find(zs->zips[k], name)) >= 0)
            return zs->zips[k];
    return NULL;
}

static int zip_list(struct bset_store *st, bset_add_fn add, void *ctx, struct vb_error *err)
{
    struct zip_store *zs = (struct zip_store *)st;
    for (size_t k = 0; k < zs->n; k++) {
        for (size_t i = 0; i < vb_zip_count(zs->zips[k]); i++) {
            const char *name = vb_zip_name(zs->zips[k], i);
            bool later = false, earlier = false;
            for (size_t j = 0; j < zs->n; j++)
                if (j != k && vb_zip_find(zs->zips[j], name) >= 0)
                    *(j > k ? &later : &earlier) = true;
            if ((later || earlier) && is_data(name))
                return vb_error_set(err, "%s: data file '%s' is in more than one zip file",
                                    st->describe, name);
            if (!later && add(ctx, name, true, err) < 0)
                return -1;
        }
    }
    return 0;
}

static struct stream_source *zip_open(struct bset_store *st, const char *name, bool plain,
                                      struct vb_error *err)
{
    (void)plain;
    long entry;
    struct vb_zip *zip = holder((struct zip_store *)st, name, &entry);
    if (!zip) {
        vb_error_set(err, "%s: no file '%s'", st->describe, name);
        return NULL;
    }
    return vb_zip_source_open(zip, (size_t)entry, err);
}

static char *zip_display(const struct bset_store *st, const char *name)
{
    long entry;
    struct vb_zip *zip = holder((const struct zip_store *)st, name, &entry);
    char *out = NULL;
    int r = zip ? asprintf(&out, "%s:%s", vb_zip_path(zip), name)
                : asprintf(&out, "%s/%s", st->describe, name);
    return r < 0 ? NULL : out;
}

static void zip_free(struct bset_store *st)
{
    struct zip_store *zs = (struct zip_store *)st;
    for (size_t k = 0; k < zs->n; k++)
        vb_zip_close(zs->zips[k]);
    free(zs->zips);
    free(st->describe);
    free(zs);
}

static const struct bset_store_ops zip_ops = {
    .list = zip_list,
    .open = zip_open,
    .display = zip_display,
    .free = zip_free,
};

struct bset_store *bset_store_zips_open(const char *spec, bool split, struct vb_error *err)
{
    struct zip_store *zs = calloc(1, sizeof *zs);
    char *list = strdup(spec), *save = NULL;
    int rc = 0;
    if (!zs || !list || !(zs->base.describe = strdup(spec))) {
        rc = vb_error_set(err, "out of memory");
    } else {
        zs->base.ops = &zip_ops;
        for (char *tok = strtok_r(list, split ? "," : "", &save); tok && rc == 0;
             tok = strtok_r(NULL, split ? "," : "", &save)) {
            struct stat st;
            if (stat(tok, &st) < 0) {
                rc = vb_error_errno(err, "%s: cannot open input", tok);
                break;
            }
            struct vb_zip *zip = vb_zip_open(tok, err);
            if (!zip) {
                rc = -1;
                break;
            }
            struct vb_zip **nz = realloc(zs->zips, (zs->n + 1) * sizeof *nz);
            if (!nz) {
                vb_zip_close(zip);
                rc = vb_error_set(err, "out of memory");
                break;
            }
            zs->zips = nz;
            zs->zips[zs->n++] = zip;
        }
        if (rc == 0 && zs->n == 0)
            rc = vb_error_set(err, "no input given");
    }
    free(list);
    if (rc < 0) {
        if (zs && zs->base.ops)
            zip_free(&zs->base);
        else
            free(zs);
        return NULL;
    }
    return &zs->base;
}
