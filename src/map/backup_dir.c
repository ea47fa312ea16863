#include "backup_dir.h"

#include <dirent.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "chain.h"
#include "checkpoint_name.h"
#include "stream_index.h"

/* "<dev>.<full|copy|inc.X|diff.X>.data" -> dev */
static bool data_name(const char *name, char *dev, size_t devlen)
{
    size_t len = strlen(name);
    if (len < 6 || strcmp(name + len - 5, ".data") != 0)
        return false;
    const char *dot = strchr(name, '.');
    if (!dot || dot == name || (size_t)(dot - name) >= devlen)
        return false;
    const char *rest = dot + 1;
    if (!(strcmp(rest, "full.data") == 0 || strcmp(rest, "copy.data") == 0 ||
          (strncmp(rest, "inc.", 4) == 0 && strlen(rest) > 9) ||
          (strncmp(rest, "diff.", 5) == 0 && strlen(rest) > 10)))
        return false;
    memcpy(dev, name, (size_t)(dot - name));
    dev[dot - name] = '\0';
    return true;
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static const char *base_name(const char *p)
{
    const char *s = strrchr(p, '/');
    return s ? s + 1 : p;
}

/* A .copy.data without the stream's "meta" magic: a raw image (reference §1.7). */
static bool is_raw_image(const char *path)
{
    size_t l = strlen(path);
    if (l < 10 || strcmp(path + l - 10, ".copy.data") != 0)
        return false;
    FILE *f = fopen(path, "rb");
    char magic[4] = {0};
    bool raw = f && fread(magic, 1, 4, f) == 4 && memcmp(magic, "meta", 4) != 0;
    if (f)
        fclose(f);
    return raw;
}

/* Orders the files of one disk (paths are taken over) and keeps the planned ones. */
static int plan_disk(struct map_disk *d, char **paths, size_t n, const char *until,
                     struct vb_error *err)
{
    struct chain_file *files = calloc(n, sizeof *files);
    struct chain_plan plan = {0};
    int rc = files ? 0 : vb_error_set(err, "out of memory");
    if (rc == 0 && n == 1 && is_raw_image(paths[0])) {
        if (until && strcmp(until, "copy") != 0)
            rc = vb_error_set(err, "%s: a raw image has no checkpoint '%s'", paths[0], until);
        d->raw_image = true;
        snprintf(d->ident, sizeof d->ident, "copy");
        d->paths = paths;
        d->nfiles = 1;
        free(files);
        return rc;
    }
    for (size_t i = 0; rc == 0 && i < n; i++) {
        struct stream_source *src = stream_source_file_open(paths[i], err);
        uint64_t end;
        /* the last file's checkpoint name becomes part of file names (--boot) */
        if (!src || stream_read_meta(src, &files[i].meta, &end, err) < 0 ||
            vb_checkpoint_name_check(files[i].meta.checkpoint_name, paths[i], err) < 0)
            rc = -1;
        stream_source_free(src);
        files[i].path = base_name(paths[i]);
        if (rc == 0 && chain_classify(&files[i], err) < 0)
            rc = vb_error_prefix(err, "%s", paths[i]);
        if (rc == 0 && d->dev[0] && strcmp(files[i].meta.disk_name, d->dev) != 0)
            rc = vb_error_set(err, "%s: metadata names disk '%s', expected '%s'", paths[i],
                              files[i].meta.disk_name, d->dev);
    }
    if (rc == 0 && chain_plan_build(files, n, until, &plan, err) < 0)
        rc = -1;
    if (rc == 0) {
        d->paths = calloc(plan.n, sizeof *d->paths);
        if (!d->paths)
            rc = vb_error_set(err, "out of memory");
        for (size_t k = 0; rc == 0 && k < plan.n; k++) {
            d->paths[k] = paths[plan.order[k]];
            paths[plan.order[k]] = NULL;
        }
        if (rc == 0) {
            d->nfiles = plan.n;
            const struct chain_file *last = &files[plan.order[plan.n - 1]];
            if (last->kind == CHAIN_FILE_COPY)
                snprintf(d->ident, sizeof d->ident, "copy");
            else if (last->kind == CHAIN_FILE_DIFF)
                snprintf(d->ident, sizeof d->ident, "%" PRIu64, last->diff_time);
            else
                snprintf(d->ident, sizeof d->ident, "%s", last->meta.checkpoint_name);
        }
    }
    for (size_t i = 0; i < n; i++)
        free(paths[i]);
    free(paths);
    chain_plan_free(&plan);
    free(files);
    return rc;
}

int backup_dir_plan(const char *dir, const char *until, struct map_disk **disks, size_t *n,
                    struct vb_error *err)
{
    *disks = NULL;
    *n = 0;
    DIR *dp = opendir(dir);
    if (!dp)
        return vb_error_errno(err, "%s: cannot read the backup directory", dir);
    char **names = NULL;
    size_t nn = 0, cap = 0;
    int rc = 0;
    struct dirent *de;
    char dev[64];
    while (rc == 0 && (de = readdir(dp))) {
        if (de->d_name[0] == '.' || !data_name(de->d_name, dev, sizeof dev))
            continue;
        if (nn == cap) {
            cap = cap ? cap * 2 : 16;
            char **p = realloc(names, cap * sizeof *p);
            if (!p) {
                rc = vb_error_set(err, "out of memory");
                break;
            }
            names = p;
        }
        if (!(names[nn] = strdup(de->d_name)))
            rc = vb_error_set(err, "out of memory");
        else
            nn++;
    }
    closedir(dp);
    if (rc == 0 && nn == 0)
        rc = vb_error_set(err, "%s: no backup data files (*.data) found", dir);
    if (rc == 0)
        qsort(names, nn, sizeof *names, cmp_str);
    struct map_disk *ds = rc == 0 ? calloc(nn, sizeof *ds) : NULL;
    if (rc == 0 && !ds)
        rc = vb_error_set(err, "out of memory");
    size_t nd = 0;
    /* sorted names: the files of one disk are adjacent */
    for (size_t i = 0; rc == 0 && i < nn;) {
        char dev2[64];
        data_name(names[i], dev, sizeof dev);
        size_t j = i;
        while (j < nn && data_name(names[j], dev2, sizeof dev2) && strcmp(dev, dev2) == 0)
            j++;
        struct map_disk *d = &ds[nd++];
        snprintf(d->dev, sizeof d->dev, "%s", dev);
        char **paths = calloc(j - i, sizeof *paths);
        if (!paths) {
            rc = vb_error_set(err, "out of memory");
            break;
        }
        for (size_t k = i; k < j && rc == 0; k++)
            if (asprintf(&paths[k - i], "%s/%s", dir, names[k]) < 0) {
                paths[k - i] = NULL;
                rc = vb_error_set(err, "out of memory");
            }
        if (rc == 0 && plan_disk(d, paths, j - i, until, err) < 0)
            rc = vb_error_prefix(err, "disk %s", dev);
        else if (rc < 0) {
            for (size_t k = 0; k < j - i; k++)
                free(paths[k]);
            free(paths);
        }
        i = j;
    }
    for (size_t i = 0; i < nn; i++)
        free(names[i]);
    free(names);
    if (rc < 0) {
        map_disks_free(ds, nd);
        return -1;
    }
    *disks = ds;
    *n = nd;
    return 0;
}

int backup_files_plan(const char *list, struct map_disk **disk, struct vb_error *err)
{
    *disk = calloc(1, sizeof **disk);
    char *copy = strdup(list), *save = NULL;
    char **paths = NULL;
    size_t n = 0;
    int rc = *disk && copy ? 0 : vb_error_set(err, "out of memory");
    for (char *tok = rc == 0 ? strtok_r(copy, ",", &save) : NULL; tok && rc == 0;
         tok = strtok_r(NULL, ",", &save)) {
        struct stat st;
        if (stat(tok, &st) < 0) {
            rc = vb_error_errno(err, "%s: cannot open", tok);
            break;
        }
        char **p = realloc(paths, (n + 1) * sizeof *p);
        if (!p || !(p[n] = strdup(tok))) {
            paths = p ? p : paths;
            rc = vb_error_set(err, "out of memory");
            break;
        }
        paths = p;
        n++;
    }
    free(copy);
    if (rc == 0 && n == 0)
        rc = vb_error_set(err, "-f: no files given");
    if (rc == 0) {
        /* the disk is the one the first file's name says, checked against each META */
        if (!data_name(base_name(paths[0]), (*disk)->dev, sizeof(*disk)->dev))
            (*disk)->dev[0] = '\0';
        if (plan_disk(*disk, paths, n, NULL, err) == 0)
            return 0;
        map_disks_free(*disk, 1);
        *disk = NULL;
        return -1;
    }
    for (size_t i = 0; i < n; i++)
        free(paths[i]);
    free(paths);
    map_disks_free(*disk, 1);
    *disk = NULL;
    return -1;
}

void map_disks_free(struct map_disk *disks, size_t n)
{
    for (size_t i = 0; disks && i < n; i++) {
        for (size_t k = 0; k < disks[i].nfiles; k++)
            free(disks[i].paths[k]);
        free(disks[i].paths);
    }
    free(disks);
}
