/* Data files named one by one (`virtmap -f FULL,INC...`), wherever they are: listed under
 * their base names, shown by the paths given. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "store.h"
#include "util.h"

struct files_store {
    struct bset_store base;
    size_t n;
    char **paths;
};

static const char *path_of(const struct files_store *fs, const char *name)
{
    for (size_t i = 0; i < fs->n; i++)
        if (strcmp(vb_base_name(fs->paths[i]), name) == 0)
            return fs->paths[i];
    return NULL;
}

static int files_list(struct bset_store *st, bset_add_fn add, void *ctx, struct vb_error *err)
{
    struct files_store *fs = (struct files_store *)st;
    for (size_t i = 0; i < fs->n; i++) {
        const char *name = vb_base_name(fs->paths[i]);
        if (path_of(fs, name) != fs->paths[i])
            return vb_error_set(err, "%s and %s: two files of one name", path_of(fs, name),
                                fs->paths[i]);
        if (add(ctx, name, true, err) < 0)
            return -1;
    }
    return 0;
}

static struct stream_source *files_open(struct bset_store *st, const char *name, bool plain,
                                        struct vb_error *err)
{
    (void)plain;
    const char *path = path_of((struct files_store *)st, name);
    if (!path) {
        vb_error_set(err, "%s: no file '%s'", st->describe, name);
        return NULL;
    }
    return stream_source_file_open(path, err);
}

static char *files_display(const struct bset_store *st, const char *name)
{
    const char *path = path_of((const struct files_store *)st, name);
    return strdup(path ? path : name);
}

static void files_free(struct bset_store *st)
{
    struct files_store *fs = (struct files_store *)st;
    for (size_t i = 0; i < fs->n; i++)
        free(fs->paths[i]);
    free(fs->paths);
    free(st->describe);
    free(fs);
}

static const struct bset_store_ops files_ops = {
    .list = files_list,
    .open = files_open,
    .display = files_display,
    .free = files_free,
};

struct bset_store *bset_store_files_open(const char *list, struct vb_error *err)
{
    struct files_store *fs = calloc(1, sizeof *fs);
    char *copy = strdup(list), *save = NULL;
    if (!fs || !copy || !(fs->base.describe = strdup(list))) {
        free(fs);
        free(copy);
        vb_error_set(err, "out of memory");
        return NULL;
    }
    fs->base.ops = &files_ops;
    int rc = 0;
    for (char *tok = strtok_r(copy, ",", &save); tok && rc == 0; tok = strtok_r(NULL, ",", &save)) {
        struct stat st;
        if (stat(tok, &st) < 0) {
            rc = vb_error_errno(err, "%s: cannot open", tok);
            break;
        }
        char **p = realloc(fs->paths, (fs->n + 1) * sizeof *p);
        if (!p || !(p[fs->n] = strdup(tok))) {
            fs->paths = p ? p : fs->paths;
            rc = vb_error_set(err, "out of memory");
            break;
        }
        fs->paths = p;
        fs->n++;
    }
    free(copy);
    if (rc == 0 && fs->n == 0)
        rc = vb_error_set(err, "-f: no files given");
    if (rc < 0) {
        files_free(&fs->base);
        return NULL;
    }
    return &fs->base;
}
