/* stream-rewrite: reads a stream with our reader and writes it again with our writer: the
 * same META (date too, unless --new-date or --date), frames and data; compressed iff --compress.
 * Used to prove byte-identity with the reference's writer and that its restore reads our files. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "stream_writer.h"
#include "tool_common.h"

static int rewrite(struct stream_index *idx, const char *out, int level, int new_date,
                   const char *date, struct vb_error *err)
{
    struct stream_meta meta = idx->meta;
    meta.compressed = level;
    meta.stream_version = 2;
    if (!meta.compression_method[0])
        strcpy(meta.compression_method, "lz4");
    if (new_date)
        stream_meta_format_date(meta.date, sizeof meta.date);
    if (date && stream_meta_set(meta.date, sizeof meta.date, date, err) < 0)
        return -1;
    struct stream_sink *sink = stream_sink_file_open(out, err);
    if (!sink)
        return -1;
    struct stream_writer *w = stream_writer_new(sink, &meta, err);
    if (!w)
        return -1;
    void *data = malloc(STREAM_SLICE_SIZE);
    struct stream_read_buf buf = {0};
    int rc = data ? 0 : vb_error_set(err, "out of memory");
    for (size_t e = 0; rc == 0 && e < idx->nextents; e++) {
        const struct stream_extent *x = &idx->extents[e];
        if (x->zero) {
            rc = stream_writer_zero(w, x->start, x->length, err);
            continue;
        }
        rc = stream_writer_data_begin(w, x->start, x->length, err);
        for (uint64_t pos = x->start; rc == 0 && pos < x->start + x->length;) {
            uint64_t end = tool_piece_end(x, pos, x->start + x->length);
            rc = stream_index_read(idx, e, pos - x->start, end - pos, data, &buf, err);
            if (rc == 0)
                rc = stream_writer_data_append(w, data, end - pos, err);
            pos = end;
        }
        if (rc == 0)
            rc = stream_writer_data_end(w, err);
    }
    if (rc == 0)
        rc = stream_writer_finish(w, NULL, err);
    stream_writer_free(w);
    free(data);
    stream_read_buf_free(&buf);
    return rc;
}

int main(int argc, char **argv)
{
    int level = STREAM_META_COMPRESSED_FALSE, new_date = 0, c;
    const char *date = NULL;
    static const struct option opts[] = {{"compress", optional_argument, NULL, 'z'},
                                         {"new-date", no_argument, NULL, 'd'},
                                         {"date", required_argument, NULL, 'D'},
                                         {0}};
    while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        if (c == 'z')
            level = optarg ? atoi(optarg) : 2;
        else if (c == 'd')
            new_date = 1;
        else if (c == 'D')
            date = optarg;
        else
            goto usage;
    }
    if (argc - optind != 2)
        goto usage;
    struct vb_error err = {0};
    struct stream_index *idx = stream_index_open(argv[optind], &err);
    if (!idx || rewrite(idx, argv[optind + 1], level, new_date, date, &err) < 0) {
        fprintf(stderr, "stream-rewrite: %s\n", err.msg);
        stream_index_free(idx);
        return 1;
    }
    stream_index_free(idx);
    return 0;
usage:
    fprintf(stderr, "usage: stream-rewrite [--compress[=N]] [--new-date | --date DATE] IN OUT\n");
    return 1;
}
