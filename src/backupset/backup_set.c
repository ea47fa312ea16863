/* The set's sorted name list above a store (store.h). */
#include "backup_set.h"

#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "store.h"
#include "vector.h"

struct set_file {
    char *name;
    bool plain;
};

struct bset {
    struct bset_store *store;
    size_t n, cap;
    struct set_file *files;
};

static int add_file(void *ctx, const char *name, bool plain, struct vb_error *err)
{
    struct bset *set = ctx;
    if (vb_vector_grow(&set->files, &set->cap, set->n + 1, sizeof *set->files) < 0)
        return vb_error_set(err, "out of memory");
    if (!(set->files[set->n].name = strdup(name)))
        return vb_error_set(err, "out of memory");
    set->files[set->n++].plain = plain;
    return 0;
}

static int cmp_file(const void *a, const void *b)
{
    return strcmp(((const struct set_file *)a)->name, ((const struct set_file *)b)->name);
}

static struct bset *set_from(struct bset_store *store, struct vb_error *err)
{
    if (!store)
        return NULL;
    struct bset *set = calloc(1, sizeof *set);
    if (!set) {
        store->ops->free(store);
        vb_error_set(err, "out of memory");
        return NULL;
    }
    set->store = store;
    if (store->ops->list(store, add_file, set, err) < 0) {
        bset_free(set);
        return NULL;
    }
    qsort(set->files, set->n, sizeof *set->files, cmp_file);
    return set;
}

struct bset *bset_open(const char *spec, struct vb_error *err)
{
    struct stat st;
    bool whole = stat(spec, &st) == 0;
    if (whole && S_ISDIR(st.st_mode))
        return set_from(bset_store_dir_open(spec, err), err);
    return set_from(bset_store_zips_open(spec, !whole, err), err);
}

struct bset *bset_open_files(const char *list, struct vb_error *err)
{
    return set_from(bset_store_files_open(list, err), err);
}

struct bset *bset_open_repo_snapshot(struct repo *r, const struct repo_manifest *m,
                                     struct vb_error *err)
{
    return set_from(bset_store_repo_open(r, m, err), err);
}

void bset_free(struct bset *set)
{
    if (!set)
        return;
    for (size_t i = 0; i < set->n; i++)
        free(set->files[i].name);
    free(set->files);
    set->store->ops->free(set->store);
    free(set);
}

const char *bset_describe(const struct bset *set)
{
    return set->store->describe;
}

size_t bset_count(const struct bset *set)
{
    return set->n;
}

const char *bset_name(const struct bset *set, size_t i)
{
    return i < set->n ? set->files[i].name : NULL;
}

static const struct set_file *find(const struct bset *set, const char *name)
{
    struct set_file key = {.name = (char *)name};
    return set->n ? bsearch(&key, set->files, set->n, sizeof key, cmp_file) : NULL;
}

bool bset_has(const struct bset *set, const char *name)
{
    return find(set, name) != NULL;
}

bool bset_is_plain(const struct bset *set, const char *name)
{
    const struct set_file *f = find(set, name);
    return f && f->plain;
}

char *bset_display(const struct bset *set, const char *name)
{
    return set->store->ops->display(set->store, name);
}

struct stream_source *bset_source(struct bset *set, const char *name, struct vb_error *err)
{
    const struct set_file *f = find(set, name);
    if (!f) {
        vb_error_set(err, "%s: no file '%s'", bset_describe(set), name);
        return NULL;
    }
    return set->store->ops->open(set->store, name, f->plain, err);
}

int bset_read(struct bset *set, const char *name, size_t max, char **data, size_t *len,
              struct vb_error *err)
{
    *data = NULL;
    if (set->store->ops->read)
        return set->store->ops->read(set->store, name, max, data, len, err);
    struct stream_source *src = bset_source(set, name, err);
    if (!src)
        return -1;
    int rc = 0;
    if (src->size > max) {
        rc = vb_error_set(err, "%s: %" PRIu64 " bytes, more than the %zu expected", src->name,
                          src->size, max);
    } else {
        *data = malloc((size_t)src->size + 1);
        if (!*data)
            rc = vb_error_set(err, "out of memory");
        else if (stream_source_read_exact(src, *data, (size_t)src->size, 0, err) < 0)
            rc = -1;
        if (rc == 0) {
            (*data)[src->size] = '\0';
            *len = (size_t)src->size;
        }
    }
    if (rc < 0) {
        free(*data);
        *data = NULL;
    }
    stream_source_free(src);
    return rc;
}
