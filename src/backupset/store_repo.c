/* A snapshot of a repository (virtbackup-repository(5)) seen as the files of a backup set, so
 * that the vmconfig and boot-file logic above the store works on it unchanged. It lists
 *   vmconfig.<id>.xml          the manifest's domain_xml
 *   <dev>.<id>.qcow.json       each disk's saved qemu-img info, where there is one
 *   <basename>.<id>            each blob (loader, nvram, kernel, initrd) under the base name
 *                              of its original path, read chunk by chunk through its index
 * where <id> is the snapshot's id. The disks' data is not listed: a restore reads it through
 * the disk's index (repo.h), not as a stream file. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "checkpoint_name.h"
#include "log.h"
#include "manifest.h"
#include "repo.h"
#include "snapshot_reader.h"
#include "store.h"
#include "util.h"

struct repo_file {
    char *name;
    char *text;       /* in memory (config, qcow.json), or NULL for a blob */
    repo_digest blob; /* the blob's index */
    uint64_t size;
};

struct repo_set_store {
    struct bset_store base;
    struct repo *repo;
    size_t n;
    struct repo_file *files;
};

struct text_source {
    struct stream_source base;
    const char *text; /* owned by the store */
};

struct blob_source {
    struct stream_source base;
    struct repo_disk_reader *rd;
};

static const struct repo_file *file_of(const struct repo_set_store *rs, const char *name)
{
    for (size_t i = 0; i < rs->n; i++)
        if (strcmp(rs->files[i].name, name) == 0)
            return &rs->files[i];
    return NULL;
}

static int repo_list(struct bset_store *st, bset_add_fn add, void *ctx, struct vb_error *err)
{
    struct repo_set_store *rs = (struct repo_set_store *)st;
    for (size_t i = 0; i < rs->n; i++)
        if (add(ctx, rs->files[i].name, true, err) < 0)
            return -1;
    return 0;
}

static ssize_t text_pread(struct stream_source *src, void *buf, size_t len, uint64_t off,
                          struct vb_error *err)
{
    (void)err;
    struct text_source *ts = (struct text_source *)src;
    if (off >= src->size)
        return 0;
    size_t n = src->size - off < len ? (size_t)(src->size - off) : len;
    memcpy(buf, ts->text + off, n);
    return (ssize_t)n;
}

static void text_free(struct stream_source *src)
{
    free(src->name);
    free(src);
}

static ssize_t blob_pread(struct stream_source *src, void *buf, size_t len, uint64_t off,
                          struct vb_error *err)
{
    struct blob_source *bs = (struct blob_source *)src;
    if (off >= src->size)
        return 0;
    size_t n = src->size - off < len ? (size_t)(src->size - off) : len;
    if (repo_disk_reader_pread(bs->rd, buf, n, off, err) < 0)
        return vb_error_prefix(err, "%s", src->name);
    return (ssize_t)n;
}

static void blob_free(struct stream_source *src)
{
    struct blob_source *bs = (struct blob_source *)src;
    repo_disk_reader_close(bs->rd);
    free(src->name);
    free(src);
}

static const struct stream_source_ops text_ops = {.pread = text_pread, .free = text_free};
static const struct stream_source_ops blob_ops = {.pread = blob_pread, .free = blob_free};

static char *repo_display(const struct bset_store *st, const char *name)
{
    char *s = NULL;
    if (asprintf(&s, "%s:%s", st->describe, name) < 0)
        return NULL;
    return s;
}

static struct stream_source *repo_open_file(struct bset_store *st, const char *name, bool plain,
                                            struct vb_error *err)
{
    (void)plain;
    struct repo_set_store *rs = (struct repo_set_store *)st;
    const struct repo_file *f = file_of(rs, name);
    if (!f) {
        vb_error_set(err, "%s: no file '%s'", st->describe, name);
        return NULL;
    }
    char *shown = repo_display(st, name);
    if (!shown) {
        vb_error_set(err, "out of memory");
        return NULL;
    }
    if (f->text) {
        struct text_source *ts = calloc(1, sizeof *ts);
        if (!ts) {
            free(shown);
            vb_error_set(err, "out of memory");
            return NULL;
        }
        ts->base = (struct stream_source){.ops = &text_ops, .name = shown, .size = f->size};
        ts->text = f->text;
        return &ts->base;
    }
    struct blob_source *bs = calloc(1, sizeof *bs);
    if (!bs || !(bs->rd = repo_disk_reader_open(rs->repo, &f->blob, err))) {
        if (!bs)
            vb_error_set(err, "out of memory");
        else
            vb_error_prefix(err, "%s", shown);
        free(bs);
        free(shown);
        return NULL;
    }
    if (repo_disk_reader_size(bs->rd) != f->size) {
        vb_error_set(err, "%s: the index holds %llu bytes, the manifest says %llu", shown,
                     (unsigned long long)repo_disk_reader_size(bs->rd),
                     (unsigned long long)f->size);
        repo_disk_reader_close(bs->rd);
        free(bs);
        free(shown);
        return NULL;
    }
    bs->base = (struct stream_source){.ops = &blob_ops, .name = shown, .size = f->size};
    return &bs->base;
}

static void repo_store_free(struct bset_store *st)
{
    struct repo_set_store *rs = (struct repo_set_store *)st;
    for (size_t i = 0; i < rs->n; i++) {
        free(rs->files[i].name);
        free(rs->files[i].text);
    }
    free(rs->files);
    free(st->describe);
    free(rs);
}

static const struct bset_store_ops repo_ops = {
    .list = repo_list,
    .open = repo_open_file,
    .display = repo_display,
    .free = repo_store_free,
};

static int add_entry(struct repo_set_store *rs, char *name, char *text, const repo_digest *blob,
                     uint64_t size, struct vb_error *err)
{
    if (!name || (!text && !blob)) {
        free(name);
        free(text);
        return vb_error_set(err, "out of memory");
    }
    if (file_of(rs, name)) { /* two blobs of one base name: the first is kept */
        vb_warn("%s: two files saved as %s, using the first", rs->base.describe, name);
        free(name);
        free(text);
        return 0;
    }
    struct repo_file *f = &rs->files[rs->n++];
    *f = (struct repo_file){.name = name, .text = text, .size = size};
    if (blob)
        f->blob = *blob;
    return 0;
}

static char *joined(const char *a, const char *b, const char *c)
{
    char *s = NULL;
    return asprintf(&s, "%s%s%s", a, b, c) < 0 ? NULL : s;
}

struct bset_store *bset_store_repo_open(struct repo *r, const struct repo_manifest *m,
                                        struct vb_error *err)
{
    struct repo_set_store *rs = calloc(1, sizeof *rs);
    if (!rs) {
        vb_error_set(err, "out of memory");
        return NULL;
    }
    rs->base.ops = &repo_ops;
    rs->repo = r;
    rs->files = calloc(1 + m->n_disks + m->n_blobs, sizeof *rs->files);
    if (asprintf(&rs->base.describe, "%s snapshot %s", r->path, m->id) < 0)
        rs->base.describe = NULL;
    int rc = rs->files && rs->base.describe ? 0 : vb_error_set(err, "out of memory");
    if (rc == 0 && m->domain_xml)
        rc = add_entry(rs, joined("vmconfig.", m->id, ".xml"), strdup(m->domain_xml), NULL,
                       strlen(m->domain_xml), err);
    for (size_t i = 0; rc == 0 && i < m->n_disks; i++) {
        const struct repo_manifest_disk *d = &m->disks[i];
        if (!d->qcow_json)
            continue;
        char *name = NULL;
        if (asprintf(&name, "%s.%s.qcow.json", d->target, m->id) < 0)
            name = NULL;
        rc = add_entry(rs, name, strdup(d->qcow_json), NULL, strlen(d->qcow_json), err);
    }
    for (size_t i = 0; rc == 0 && i < m->n_blobs; i++) {
        const struct repo_manifest_blob *b = &m->blobs[i];
        const char *base = vb_base_name(b->path);
        /* the name becomes a file name of the restore: a plain one only */
        if (vb_checkpoint_name_problem(base)) {
            vb_warn("%s: %s blob %s has no plain file name, not offered", rs->base.describe,
                    repo_blob_kind_name(b->kind), b->path);
            continue;
        }
        rc = add_entry(rs, joined(base, ".", m->id), NULL, &b->index, b->size, err);
    }
    if (rc < 0) {
        repo_store_free(&rs->base);
        return NULL;
    }
    return &rs->base;
}
