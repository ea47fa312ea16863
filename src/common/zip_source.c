/* Zip input through libzip. libzip's archive handle is not safe for concurrent use, so every
 * read of one archive (seek + read on its own zip_file_t) holds the archive's mutex; the
 * callers decode outside of it, so the lock only serialises the I/O itself. */
#include "zip_source.h"

#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <zip.h>

struct zip_entry {
    char *name;
    zip_uint64_t index; /* libzip's index */
    uint64_t size;
};

struct vb_zip {
    char *path;
    zip_t *za;
    pthread_mutex_t lock;
    atomic_int refs;
    size_t n;
    struct zip_entry *entries;
};

struct vbzip_source {
    struct stream_source base;
    struct vb_zip *zip;
    zip_file_t *zf;
};

int vb_zip_name_ok(const char *name)
{
    if (!name || !*name || name[0] == '/' || strchr(name, '\\'))
        return 0;
    const char *p = name;
    while (*p) {
        const char *slash = strchr(p, '/');
        size_t len = slash ? (size_t)(slash - p) : strlen(p);
        if (len == 0 && slash)
            return 0; /* "a//b" */
        if ((len == 1 && p[0] == '.') || (len == 2 && p[0] == '.' && p[1] == '.'))
            return 0;
        if (!slash)
            break;
        p = slash + 1;
    }
    return 1;
}

static int cmp_entry_name(const void *a, const void *b)
{
    return strcmp(((const struct zip_entry *)a)->name, ((const struct zip_entry *)b)->name);
}

static void zip_unref(struct vb_zip *zip)
{
    if (!zip || atomic_fetch_sub(&zip->refs, 1) != 1)
        return;
    if (zip->za)
        zip_discard(zip->za); /* read-only: never rewrite the archive */
    for (size_t i = 0; i < zip->n; i++)
        free(zip->entries[i].name);
    free(zip->entries);
    pthread_mutex_destroy(&zip->lock);
    free(zip->path);
    free(zip);
}

void vb_zip_close(struct vb_zip *zip)
{
    zip_unref(zip);
}

static int load_entries(struct vb_zip *zip, struct vb_error *err)
{
    zip_int64_t total = zip_get_num_entries(zip->za, 0);
    if (total < 0)
        return vb_error_set(err, "%s: cannot list entries", zip->path);
    zip->entries = calloc((size_t)total + 1, sizeof *zip->entries);
    if (!zip->entries)
        return vb_error_set(err, "out of memory");
    for (zip_int64_t i = 0; i < total; i++) {
        zip_stat_t st;
        zip_stat_init(&st);
        if (zip_stat_index(zip->za, (zip_uint64_t)i, 0, &st) < 0)
            return vb_error_set(err, "%s: entry %" PRId64 ": %s", zip->path, (int64_t)i,
                                zip_strerror(zip->za));
        const char *name = (st.valid & ZIP_STAT_NAME) ? st.name : NULL;
        if (name && *name && name[strlen(name) - 1] == '/')
            continue; /* a directory entry (checkpoints/) */
        if (!vb_zip_name_ok(name))
            return vb_error_set(err, "%s: refusing entry with unsafe name '%s'", zip->path,
                                name ? name : "");
        if ((st.valid & ZIP_STAT_COMP_METHOD) && st.comp_method != ZIP_CM_STORE)
            return vb_error_set(err,
                                "%s: entry '%s' is compressed (method %d); only STORED entries "
                                "can be read in place",
                                zip->path, name, (int)st.comp_method);
        if ((st.valid & ZIP_STAT_ENCRYPTION_METHOD) && st.encryption_method != ZIP_EM_NONE)
            return vb_error_set(err, "%s: entry '%s' is encrypted", zip->path, name);
        /* a STORED entry holds exactly its bytes: other sizes mean a damaged archive (and make
         * libzip's seek read out of bounds, found by fuzzing) */
        if (!(st.valid & ZIP_STAT_SIZE) || !(st.valid & ZIP_STAT_COMP_SIZE) ||
            st.comp_size != st.size)
            return vb_error_set(err,
                                "%s: entry '%s' is damaged: stored size %" PRIu64
                                " differs from its size %" PRIu64,
                                zip->path, name, (uint64_t)st.comp_size, (uint64_t)st.size);
        struct zip_entry *e = &zip->entries[zip->n];
        e->name = strdup(name);
        if (!e->name)
            return vb_error_set(err, "out of memory");
        e->index = (zip_uint64_t)i;
        e->size = (st.valid & ZIP_STAT_SIZE) ? st.size : 0;
        zip->n++;
    }
    /* Duplicate names would make "which file is the chain" ambiguous: refuse them. The
     * sorted copy is only for the check; archive order is kept for listing. */
    struct zip_entry *sorted = malloc((zip->n + 1) * sizeof *sorted);
    if (!sorted)
        return vb_error_set(err, "out of memory");
    memcpy(sorted, zip->entries, zip->n * sizeof *sorted);
    qsort(sorted, zip->n, sizeof *sorted, cmp_entry_name);
    int rc = 0;
    for (size_t i = 1; i < zip->n && rc == 0; i++)
        if (strcmp(sorted[i - 1].name, sorted[i].name) == 0)
            rc = vb_error_set(err, "%s: duplicate entry '%s'", zip->path, sorted[i].name);
    free(sorted);
    return rc;
}

struct vb_zip *vb_zip_open(const char *path, struct vb_error *err)
{
    struct vb_zip *zip = calloc(1, sizeof *zip);
    if (!zip) {
        vb_error_set(err, "out of memory");
        return NULL;
    }
    atomic_init(&zip->refs, 1);
    pthread_mutex_init(&zip->lock, NULL);
    zip->path = strdup(path);
    int zerr = 0;
    zip->za = zip->path ? zip_open(path, ZIP_RDONLY, &zerr) : NULL;
    if (!zip->za) {
        zip_error_t ze;
        zip_error_init_with_code(&ze, zerr);
        vb_error_set(err, "%s: not a readable zip file: %s", path, zip_error_strerror(&ze));
        zip_error_fini(&ze);
        zip_unref(zip);
        return NULL;
    }
    if (load_entries(zip, err) < 0) {
        zip_unref(zip);
        return NULL;
    }
    return zip;
}

const char *vb_zip_path(const struct vb_zip *zip)
{
    return zip->path;
}

size_t vb_zip_count(const struct vb_zip *zip)
{
    return zip->n;
}

const char *vb_zip_name(const struct vb_zip *zip, size_t i)
{
    return i < zip->n ? zip->entries[i].name : NULL;
}

uint64_t vb_zip_size(const struct vb_zip *zip, size_t i)
{
    return i < zip->n ? zip->entries[i].size : 0;
}

long vb_zip_find(const struct vb_zip *zip, const char *name)
{
    for (size_t i = 0; i < zip->n; i++)
        if (strcmp(zip->entries[i].name, name) == 0)
            return (long)i;
    return -1;
}

static ssize_t vbzip_pread(struct stream_source *src, void *buf, size_t len, uint64_t off,
                           struct vb_error *err)
{
    struct vbzip_source *zs = (struct vbzip_source *)src;
    if (off >= src->size || len == 0)
        return 0;
    if (len > src->size - off)
        len = (size_t)(src->size - off);
    pthread_mutex_lock(&zs->zip->lock);
    ssize_t done = 0;
    if (zip_fseek(zs->zf, (zip_int64_t)off, SEEK_SET) < 0) {
        vb_error_set(err, "%s: offset %" PRIu64 ": seek failed: %s", src->name, off,
                     zip_file_strerror(zs->zf));
        done = -1;
    }
    while (done >= 0 && (size_t)done < len) {
        zip_int64_t n = zip_fread(zs->zf, (char *)buf + done, len - (size_t)done);
        if (n < 0) {
            vb_error_set(err, "%s: offset %" PRIu64 ": read failed: %s", src->name,
                         off + (uint64_t)done, zip_file_strerror(zs->zf));
            done = -1;
        } else if (n == 0) {
            break;
        } else {
            done += (ssize_t)n;
        }
    }
    pthread_mutex_unlock(&zs->zip->lock);
    return done;
}

static void vbzip_free(struct stream_source *src)
{
    struct vbzip_source *zs = (struct vbzip_source *)src;
    if (zs->zf) {
        pthread_mutex_lock(&zs->zip->lock);
        zip_fclose(zs->zf);
        pthread_mutex_unlock(&zs->zip->lock);
    }
    zip_unref(zs->zip);
    free(src->name);
    free(zs);
}

static const struct stream_source_ops zip_source_ops = {
    .pread = vbzip_pread,
    .free = vbzip_free,
};

struct stream_source *vb_zip_source_open(struct vb_zip *zip, size_t i, struct vb_error *err)
{
    if (i >= zip->n) {
        vb_error_set(err, "%s: no entry %zu", zip->path, i);
        return NULL;
    }
    struct vbzip_source *zs = calloc(1, sizeof *zs);
    if (!zs) {
        vb_error_set(err, "out of memory");
        return NULL;
    }
    zs->base.ops = &zip_source_ops;
    zs->base.size = zip->entries[i].size;
    if (asprintf(&zs->base.name, "%s:%s", zip->path, zip->entries[i].name) < 0) {
        free(zs);
        vb_error_set(err, "out of memory");
        return NULL;
    }
    pthread_mutex_lock(&zip->lock);
    zs->zf = zip_fopen_index(zip->za, zip->entries[i].index, 0);
    const char *why = zs->zf ? NULL : zip_strerror(zip->za);
    if (!zs->zf)
        vb_error_set(err, "%s: cannot open entry: %s", zs->base.name, why);
    pthread_mutex_unlock(&zip->lock);
    if (!zs->zf) {
        free(zs->base.name);
        free(zs);
        return NULL;
    }
    atomic_fetch_add(&zip->refs, 1);
    zs->zip = zip;
    return &zs->base;
}
