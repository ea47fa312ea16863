#include "stream_verify.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "checksum.h"
#include "stream_reader.h"

#define DEFAULT_PIECE (1024 * 1024)

int stream_source_adler32_range(struct stream_source *src, uint64_t off, uint64_t len,
                                size_t bufsize, uint32_t *sum, struct vb_error *err)
{
    if (bufsize == 0)
        bufsize = DEFAULT_PIECE;
    char *buf = malloc(bufsize);
    if (!buf)
        return vb_error_set(err, "out of memory");
    int rc = 0;
    uint32_t a = STREAM_ADLER32_INIT;
    for (uint64_t end = off + len; rc == 0 && off < end;) {
        size_t n = end - off < bufsize ? (size_t)(end - off) : bufsize;
        if (stream_source_read_exact(src, buf, n, off, err) < 0)
            rc = -1;
        else
            a = stream_adler32(a, buf, n);
        off += n;
    }
    *sum = a;
    free(buf);
    return rc;
}

int stream_source_adler32(struct stream_source *src, size_t bufsize, uint32_t *sum,
                          struct vb_error *err)
{
    return stream_source_adler32_range(src, 0, src->size, bufsize, sum, err);
}

int stream_index_check_payloads(struct stream_index *idx, struct vb_error *err)
{
    if (!idx->compressed)
        return 0;
    struct stream_reader rd;
    if (stream_reader_init(&rd, 0, err) < 0)
        return -1;
    void *out = malloc(DEFAULT_PIECE);
    int rc = out ? 0 : vb_error_set(err, "out of memory");
    for (size_t e = 0; rc == 0 && e < idx->nextents; e++) {
        const struct stream_extent *x = &idx->extents[e];
        for (uint64_t pos = 0; rc == 0 && !x->zero && pos < x->length; pos += DEFAULT_PIECE) {
            size_t n = x->length - pos < DEFAULT_PIECE ? (size_t)(x->length - pos) : DEFAULT_PIECE;
            rc = stream_reader_read(&rd, idx, e, pos, n, out, err);
        }
    }
    free(out);
    stream_reader_free(&rd);
    return rc;
}

int stream_chksum_parse(const char *text, const char *what, uint32_t *value, struct vb_error *err)
{
    if (strncmp(text, "None", 4) == 0)
        return 0;
    char *end;
    errno = 0;
    unsigned long long v = strtoull(text, &end, 10);
    if (end == text || (*end && *end != '\n') || errno || v > UINT32_MAX)
        return vb_error_set(err, "%s: not a checksum: '%.20s'", what, text);
    *value = (uint32_t)v;
    return 1;
}

int stream_file_verify(const char *path, struct stream_index *idx, uint32_t *sum,
                       struct vb_error *err)
{
    if (stream_index_check_payloads(idx, err) < 0)
        return -1;
    char cname[4200];
    snprintf(cname, sizeof cname, "%s.chksum", path);
    FILE *f = fopen(cname, "r");
    if (!f) {
        if (errno == ENOENT)
            return 0;
        return vb_error_errno(err, "%s", cname);
    }
    char text[64] = "";
    size_t n = fread(text, 1, sizeof text - 1, f);
    fclose(f);
    text[n] = '\0';
    uint32_t want;
    int found = stream_chksum_parse(text, cname, &want, err);
    if (found <= 0)
        return found;
    if (stream_source_adler32(idx->source, 0, sum, err) < 0)
        return -1;
    if (*sum != want)
        return vb_error_set(err,
                            "%s: adler32 %" PRIu32 " does not match %" PRIu32 " recorded in %s",
                            path, *sum, want, cname);
    return 1;
}
