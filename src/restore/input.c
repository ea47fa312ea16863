#include "input.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "checksum.h"
#include "zip_source.h"

#define COPY_BLOCK (1024 * 1024)

struct input_file {
    char *name;
    struct vb_zip *zip; /* NULL: a file in the directory */
    size_t entry;
};

struct restore_input {
    char *spec;
    char *dir; /* directory input */
    size_t nzips;
    struct vb_zip **zips;
    size_t n, cap;
    struct input_file *files;
};

static int add_file(struct restore_input *in, const char *name, struct vb_zip *zip, size_t entry,
                    struct vb_error *err)
{
    for (size_t i = 0; i < in->n; i++) {
        if (strcmp(in->files[i].name, name) != 0)
            continue;
        /* The same metadata file (the .cpt, checkpoints/, qcow.json) is in every zip of a
         * chain: the later zip holds the newer copy. A data file twice is a broken set. */
        size_t l = strlen(name);
        if (l > 5 && strcmp(name + l - 5, ".data") == 0)
            return vb_error_set(err, "%s: data file '%s' is in more than one zip file", in->spec,
                                name);
        in->files[i].zip = zip;
        in->files[i].entry = entry;
        return 0;
    }
    if (in->n == in->cap) {
        size_t cap = in->cap ? in->cap * 2 : 32;
        struct input_file *nf = realloc(in->files, cap * sizeof *nf);
        if (!nf)
            return vb_error_set(err, "out of memory");
        in->files = nf;
        in->cap = cap;
    }
    in->files[in->n].name = strdup(name);
    if (!in->files[in->n].name)
        return vb_error_set(err, "out of memory");
    in->files[in->n].zip = zip;
    in->files[in->n].entry = entry;
    in->n++;
    return 0;
}

/* Lists the directory and its checkpoints/ subdirectory. */
static int scan_dir(struct restore_input *in, const char *sub, struct vb_error *err)
{
    char path[4096];
    snprintf(path, sizeof path, "%s%s%s", in->dir, sub ? "/" : "", sub ? sub : "");
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
        struct stat st;
        if (stat(full, &st) < 0 || !S_ISREG(st.st_mode))
            continue;
        char name[512];
        snprintf(name, sizeof name, "%s%s%s", sub ? sub : "", sub ? "/" : "", de->d_name);
        rc = add_file(in, name, NULL, 0, err);
    }
    closedir(d);
    return rc;
}

static int cmp_file(const void *a, const void *b)
{
    return strcmp(((const struct input_file *)a)->name, ((const struct input_file *)b)->name);
}

struct restore_input *restore_input_open(const char *spec, struct vb_error *err)
{
    struct restore_input *in = calloc(1, sizeof *in);
    if (!in || !(in->spec = strdup(spec))) {
        free(in);
        vb_error_set(err, "out of memory");
        return NULL;
    }
    struct stat st;
    int rc = 0;
    /* a path that exists is one input, even with a comma in its name */
    bool whole = stat(spec, &st) == 0;
    if (whole && S_ISDIR(st.st_mode)) {
        in->dir = strdup(spec);
        rc = in->dir ? scan_dir(in, NULL, err) : vb_error_set(err, "out of memory");
        if (rc == 0)
            rc = scan_dir(in, "checkpoints", err);
    } else {
        char *list = strdup(spec), *save = NULL;
        const char *sep = whole ? "" : ",";
        for (char *tok = list ? strtok_r(list, sep, &save) : NULL; tok && rc == 0;
             tok = strtok_r(NULL, sep, &save)) {
            if (stat(tok, &st) < 0) {
                rc = vb_error_errno(err, "%s: cannot open input", tok);
                break;
            }
            struct vb_zip *zip = vb_zip_open(tok, err);
            if (!zip) {
                rc = -1;
                break;
            }
            struct vb_zip **nz = realloc(in->zips, (in->nzips + 1) * sizeof *nz);
            if (!nz) {
                vb_zip_close(zip);
                rc = vb_error_set(err, "out of memory");
                break;
            }
            in->zips = nz;
            in->zips[in->nzips++] = zip;
            for (size_t i = 0; i < vb_zip_count(zip) && rc == 0; i++)
                rc = add_file(in, vb_zip_name(zip, i), zip, i, err);
        }
        if (!list)
            rc = vb_error_set(err, "out of memory");
        else if (rc == 0 && in->nzips == 0)
            rc = vb_error_set(err, "no input given");
        free(list);
    }
    if (rc < 0) {
        restore_input_free(in);
        return NULL;
    }
    qsort(in->files, in->n, sizeof *in->files, cmp_file);
    return in;
}

void restore_input_free(struct restore_input *in)
{
    if (!in)
        return;
    for (size_t i = 0; i < in->n; i++)
        free(in->files[i].name);
    free(in->files);
    for (size_t i = 0; i < in->nzips; i++)
        vb_zip_close(in->zips[i]);
    free(in->zips);
    free(in->dir);
    free(in->spec);
    free(in);
}

const char *restore_input_describe(const struct restore_input *in)
{
    return in->spec;
}

bool restore_input_is_zip(const struct restore_input *in)
{
    return in->dir == NULL;
}

size_t restore_input_count(const struct restore_input *in)
{
    return in->n;
}

const char *restore_input_name(const struct restore_input *in, size_t i)
{
    return i < in->n ? in->files[i].name : NULL;
}

static const struct input_file *find(const struct restore_input *in, const char *name)
{
    struct input_file key = {.name = (char *)name};
    return bsearch(&key, in->files, in->n, sizeof key, cmp_file);
}

bool restore_input_has(const struct restore_input *in, const char *name)
{
    return find(in, name) != NULL;
}

char *restore_input_display(const struct restore_input *in, const char *name)
{
    const struct input_file *f = find(in, name);
    char *out = NULL;
    int r;
    if (f && f->zip)
        r = asprintf(&out, "%s:%s", vb_zip_path(f->zip), name);
    else
        r = asprintf(&out, "%s/%s", in->dir ? in->dir : in->spec, name);
    return r < 0 ? NULL : out;
}

struct stream_source *restore_input_source(struct restore_input *in, const char *name,
                                           struct vb_error *err)
{
    const struct input_file *f = find(in, name);
    if (!f) {
        vb_error_set(err, "%s: no file '%s'", in->spec, name);
        return NULL;
    }
    if (f->zip)
        return vb_zip_source_open(f->zip, f->entry, err);
    char path[4096 + 512];
    snprintf(path, sizeof path, "%s/%s", in->dir, name);
    return stream_source_file_open(path, err);
}

int restore_input_read(struct restore_input *in, const char *name, size_t max, char **data,
                       size_t *len, struct vb_error *err)
{
    *data = NULL;
    struct stream_source *src = restore_input_source(in, name, err);
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

static bool all_zero(const char *p, size_t n)
{
    return n == 0 || (p[0] == 0 && memcmp(p, p + 1, n - 1) == 0);
}

int restore_input_copy(struct restore_input *in, const char *name, const char *dest, unsigned mode,
                       uint32_t *adler, struct vb_error *err)
{
    struct stream_source *src = restore_input_source(in, name, err);
    if (!src)
        return -1;
    int fd = open(dest, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, mode ? mode : 0600);
    if (fd < 0) {
        int rc = vb_error_errno(err, "%s: cannot create (it is never overwritten)", dest);
        stream_source_free(src);
        return rc;
    }
    char *buf = malloc(COPY_BLOCK);
    int rc = buf ? 0 : vb_error_set(err, "out of memory");
    uint32_t sum = STREAM_ADLER32_INIT;
    for (uint64_t off = 0; rc == 0 && off < src->size;) {
        size_t n = src->size - off < COPY_BLOCK ? (size_t)(src->size - off) : COPY_BLOCK;
        if (stream_source_read_exact(src, buf, n, off, err) < 0) {
            rc = -1;
            break;
        }
        if (adler)
            sum = stream_adler32(sum, buf, n);
        /* Blocks of zeroes become holes: raw disk images stay as sparse as they were. */
        if (!all_zero(buf, n)) {
            for (size_t done = 0; done < n && rc == 0;) {
                ssize_t w = pwrite(fd, buf + done, n - done, (off_t)(off + done));
                if (w < 0)
                    rc = vb_error_errno(err, "%s: write at %" PRIu64, dest, off + done);
                else
                    done += (size_t)w;
            }
        }
        off += n;
    }
    if (rc == 0 && ftruncate(fd, (off_t)src->size) < 0)
        rc = vb_error_errno(err, "%s: truncate", dest);
    if (rc == 0 && fsync(fd) < 0)
        rc = vb_error_errno(err, "%s: fsync", dest);
    close(fd);
    if (rc < 0)
        unlink(dest);
    else if (adler)
        *adler = sum;
    free(buf);
    stream_source_free(src);
    return rc;
}
