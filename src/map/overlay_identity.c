#include "overlay_identity.h"

#include <errno.h>
#include <inttypes.h>
#include <libdeflate.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "util.h"

#define SAMPLES      256
#define SAMPLE_BYTES (16u * 1024)

/* Writes s with control characters and backslashes as \xNN, so that the text stays one
 * line per item whatever a META frame holds. */
static void put_escaped(FILE *f, const char *s)
{
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if (*p < 0x20 || *p == 0x7f || *p == '\\')
            fprintf(f, "\\x%02x", *p);
        else
            fputc(*p, f);
    }
}

/* "name (checkpoint C, DATE)" */
static void put_point(FILE *f, const char *path, const struct stream_meta *m)
{
    put_escaped(f, vb_base_name(path));
    const char *sep = " (";
    if (m->checkpoint_name[0]) {
        fprintf(f, "%scheckpoint ", sep);
        put_escaped(f, m->checkpoint_name);
        sep = ", ";
    }
    if (m->date[0]) {
        fputs(sep, f);
        put_escaped(f, m->date);
        sep = ", ";
    }
    if (strcmp(sep, ", ") == 0)
        fputc(')', f);
}

/* Closes the memory stream: *buf is only final after that. */
static char *finish(FILE *f, char **buf, struct vb_error *err)
{
    if (fclose(f) != 0 || !*buf) {
        free(*buf);
        vb_error_set(err, "out of memory");
        return NULL;
    }
    return *buf;
}

char *overlay_identity_chain(struct stream_index *const *files, char *const *paths, size_t n,
                             uint64_t size, struct vb_error *err)
{
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    if (!f) {
        vb_error_set(err, "out of memory");
        return NULL;
    }
    put_point(f, paths[0], &files[0]->meta);
    if (n > 1) {
        fputs(" to ", f);
        put_point(f, paths[n - 1], &files[n - 1]->meta);
        fprintf(f, ", %zu files", n);
    }
    fprintf(f, ", disk of %" PRIu64 " bytes\n", size);
    for (size_t i = 0; i < n; i++) {
        const struct stream_meta *m = &files[i]->meta;
        fputs("file ", f);
        put_escaped(f, vb_base_name(paths[i]));
        fprintf(f, " bytes=%" PRIu64 " disk=", files[i]->source->size);
        put_escaped(f, m->disk_name);
        fputs(" checkpoint=", f);
        put_escaped(f, m->checkpoint_name);
        fputs(" parent=", f);
        if (m->parent_is_false)
            fputs("false", f);
        else
            put_escaped(f, m->parent_checkpoint);
        fputs(" date=", f);
        put_escaped(f, m->date);
        fprintf(f,
                " dataSize=%" PRIu64 " virtualSize=%" PRIu64 " incremental=%d compressed=%d"
                " streamVersion=%d\n",
                m->data_size, m->virtual_size, m->incremental ? 1 : 0, m->compressed,
                m->stream_version);
    }
    return finish(f, &buf, err);
}

char *overlay_identity_raw(struct stream_source *src, const char *path, uint64_t size,
                           struct vb_error *err)
{
    uint8_t *sample = malloc(SAMPLE_BYTES);
    if (!sample) {
        vb_error_set(err, "out of memory");
        return NULL;
    }
    uint32_t crc = 0;
    for (unsigned i = 0; i < SAMPLES; i++) {
        uint64_t span = size > SAMPLE_BYTES ? size - SAMPLE_BYTES : 0;
        uint64_t off = span / (SAMPLES - 1) * i / 4096 * 4096;
        size_t want = size - off < SAMPLE_BYTES ? (size_t)(size - off) : SAMPLE_BYTES;
        /* shorter than it was: what is there */
        ssize_t got = src->ops->pread(src, sample, want, off, err);
        if (got < 0) {
            free(sample);
            return NULL;
        }
        crc = (uint32_t)libdeflate_crc32(crc, sample, (size_t)got);
    }
    free(sample);
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    if (!f) {
        vb_error_set(err, "out of memory");
        return NULL;
    }
    put_escaped(f, vb_base_name(path));
    fprintf(f, " (raw image, sample crc32 %08" PRIx32 "), disk of %" PRIu64 " bytes\n", crc, size);
    fputs("raw ", f);
    put_escaped(f, vb_base_name(path));
    fprintf(f, " bytes=%" PRIu64 " sample=%08" PRIx32 " (%u pieces of %u bytes)\n", size, crc,
            SAMPLES, SAMPLE_BYTES);
    return finish(f, &buf, err);
}

void overlay_identity_summary(const char *identity, char *buf, size_t len)
{
    size_t k = 0;
    for (const unsigned char *p = (const unsigned char *)identity; *p && *p != '\n'; p++) {
        char esc[8];
        int n = *p < 0x20 || *p == 0x7f ? snprintf(esc, sizeof esc, "\\x%02x", *p)
                                        : snprintf(esc, sizeof esc, "%c", *p);
        if (k + (size_t)n + 4 >= len) {
            snprintf(buf + k, len - k, "...");
            return;
        }
        memcpy(buf + k, esc, (size_t)n);
        k += (size_t)n;
    }
    buf[k] = '\0';
}

char *overlay_identity_repo(const char *repo_id, const struct repo_manifest *m,
                            const struct repo_manifest_disk *d, struct vb_error *err)
{
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    if (!f) {
        vb_error_set(err, "out of memory");
        return NULL;
    }
    char hex[65];
    repo_digest_hex(&d->index, hex);
    fputs("snapshot ", f);
    put_escaped(f, m->id);
    fputs(" of ", f);
    put_escaped(f, m->vm);
    fputs(", disk ", f);
    put_escaped(f, d->target);
    fprintf(f, " of %" PRIu64 " bytes\n", d->virtual_size);
    fprintf(f, "repository %s\nvm %s\nsnapshot ", repo_id, m->uuid);
    put_escaped(f, m->id);
    fputs("\ndisk ", f);
    put_escaped(f, d->target);
    fprintf(f, " size=%" PRIu64 " chunk=%" PRIu32 " index=%s\n", d->virtual_size, d->chunk_size,
            hex);
    return finish(f, &buf, err);
}
