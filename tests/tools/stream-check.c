/* stream-check: full structural check of stream files (frames, terminators, trailer,
 * dataSize, every LZ4 frame decoded with its checksums, adler32 against .chksum when present).
 * Prints one JSON line per good file; the first problem of a bad file goes to stderr. */
#include <inttypes.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "frame.h"
#include "stream_verify.h"
#include "tool_common.h"

static int read_all_data(struct stream_index *idx, struct vb_error *err)
{
    struct stream_read_buf buf = {0};
    void *data = malloc(STREAM_SLICE_SIZE);
    int rc = data ? 0 : vb_error_set(err, "out of memory");
    for (size_t e = 0; rc == 0 && e < idx->nextents; e++) {
        const struct stream_extent *x = &idx->extents[e];
        if (x->zero)
            continue;
        for (uint64_t pos = x->start; rc == 0 && pos < x->start + x->length;) {
            uint64_t end = tool_piece_end(x, pos, x->start + x->length);
            rc = stream_index_read(idx, e, pos - x->start, end - pos, data, &buf, err);
            pos = end;
        }
    }
    free(data);
    stream_read_buf_free(&buf);
    return rc;
}

/* adler32 of the whole file compared with <path>.chksum; *have = 0 if there is none. */
static int check_checksum(const char *path, struct stream_source *src, int *have, uint32_t *value,
                          struct vb_error *err)
{
    char chk[4096], text[64] = "";
    snprintf(chk, sizeof chk, "%s.chksum", path);
    FILE *f = fopen(chk, "r");
    *have = 0;
    if (!f)
        return 0;
    text[fread(text, 1, sizeof text - 1, f)] = '\0';
    fclose(f);
    uint32_t want, a;
    int found = stream_chksum_parse(text, chk, &want, err);
    if (found <= 0 || stream_source_adler32(src, 0, &a, err) < 0)
        return found < 0 ? -1 : found;
    if (a != want)
        return vb_error_set(err, "%s: adler32 is %u, %s says %u", path, a, chk, want);
    *have = 1;
    *value = a;
    return 0;
}

static json_t *raw_meta(struct stream_source *src, struct vb_error *err)
{
    char hdr[STREAM_FRAME_LEN];
    struct stream_frame f;
    if (stream_source_read_exact(src, hdr, sizeof hdr, 0, err) < 0 ||
        stream_frame_parse(hdr, &f, err) < 0)
        return NULL;
    char *text = malloc(f.length);
    json_t *j = NULL;
    if (text && stream_source_read_exact(src, text, f.length, STREAM_FRAME_LEN, err) == 0)
        j = json_loadb(text, f.length, 0, NULL);
    free(text);
    return j;
}

int main(int argc, char **argv)
{
    int quiet = 0, first = 1, failed = 0;
    if (argc > 1 && strcmp(argv[1], "-q") == 0) {
        quiet = 1;
        first = 2;
    }
    if (first >= argc) {
        fprintf(stderr, "usage: stream-check [-q] FILE...\n");
        return 1;
    }
    for (int i = first; i < argc; i++) {
        struct vb_error err = {0};
        struct stream_index *idx = stream_index_open(argv[i], &err);
        int have_sum = 0;
        uint32_t sum = 0;
        if (!idx || read_all_data(idx, &err) < 0 ||
            check_checksum(argv[i], idx->source, &have_sum, &sum, &err) < 0) {
            fprintf(stderr, "stream-check: %s\n", err.msg);
            failed = 1;
            stream_index_free(idx);
            continue;
        }
        if (!quiet) {
            json_t *o = json_object();
            json_object_set_new(o, "file", json_string(argv[i]));
            json_object_set_new(o, "meta", raw_meta(idx->source, &err));
            json_object_set_new(o, "data_frames", json_integer((json_int_t)idx->data_frames));
            json_object_set_new(o, "zero_frames", json_integer((json_int_t)idx->zero_frames));
            json_object_set_new(o, "data_bytes", json_integer((json_int_t)idx->data_bytes));
            json_object_set_new(o, "zero_bytes", json_integer((json_int_t)idx->zero_bytes));
            json_object_set_new(o, "compressed", json_boolean(idx->compressed));
            json_object_set_new(o, "checksum", have_sum ? json_integer(sum) : json_null());
            char *line = json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER);
            puts(line);
            free(line);
            json_decref(o);
        }
        stream_index_free(idx);
    }
    return failed;
}
