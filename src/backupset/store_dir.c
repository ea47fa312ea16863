/* A backup directory: its files and those of its checkpoints/ subdirectory. */
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "store.h"

struct dir_store {
    struct bset_store base;
    char *dir;
};

static int scan(struct dir_store *ds, const char *sub, bset_add_fn add, void *ctx,
                struct vb_error *err)
{
    char path[4096];
    snprintf(path, sizeof path, "%s%s%s", ds->dir, sub ? "/" : "", sub ? sub : "");
    DIR *d = opendir(path);
    if (!d) {
        if (sub && errno == ENOENT)
            return 0;
        return vb_error_errno(err, "%s: cannot read directory", path);
    }
    int rc = 0;
    struct dirent *de;
    while (rc == 0 && (de = readdir(d))) {
        if (de->d_name[0] == '.')
            continue;
        char full[4096 + 256];
        snprintf(full, sizeof full, "%s/%s", path, de->d_name);
        struct stat st, lst;
        if (stat(full, &st) < 0 || !S_ISREG(st.st_mode))
            continue;
        bool plain = lstat(full, &lst) == 0 && S_ISREG(lst.st_mode);
        char name[512];
        snprintf(name, sizeof name, "%s%s%s", sub ? sub : "", sub ? "/" : "", de->d_name);
        rc = add(ctx, name, plain, err);
    }
    closedir(d);
    return rc;
}

static int dir_list(struct bset_store *st, bset_add_fn add, void *ctx, struct vb_error *err)
{
    struct dir_store *ds = (struct dir_store *)st;
    if (scan(ds, NULL, add, ctx, err) < 0)
        return -1;
    return scan(ds, "checkpoints", add, ctx, err);
}

static struct stream_source *dir_open(struct bset_store *st, const char *name, bool plain,
                                      struct vb_error *err)
{
    struct dir_store *ds = (struct dir_store *)st;
    char path[4096 + 512];
    snprintf(path, sizeof path, "%s/%s", ds->dir, name);
    return plain ? stream_source_file_open_nofollow(path, err) : stream_source_file_open(path, err);
}

static char *dir_display(const struct bset_store *st, const char *name)
{
    const struct dir_store *ds = (const struct dir_store *)st;
    char *out = NULL;
    return asprintf(&out, "%s/%s", ds->dir, name) < 0 ? NULL : out;
}

static void dir_free(struct bset_store *st)
{
    struct dir_store *ds = (struct dir_store *)st;
    free(ds->dir);
    free(st->describe);
    free(ds);
}

static const struct bset_store_ops dir_ops = {
    .list = dir_list,
    .open = dir_open,
    .display = dir_display,
    .free = dir_free,
};

struct bset_store *bset_store_dir_open(const char *dir, struct vb_error *err)
{
    struct dir_store *ds = calloc(1, sizeof *ds);
    if (!ds || !(ds->dir = strdup(dir)) || !(ds->base.describe = strdup(dir))) {
        if (ds)
            free(ds->dir);
        free(ds);
        vb_error_set(err, "out of memory");
        return NULL;
    }
    ds->base.ops = &dir_ops;
    return &ds->base;
}
