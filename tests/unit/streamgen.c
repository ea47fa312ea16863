#include "streamgen.h"

#include <stdio.h>
#include <string.h>
#include <unistd.h>
#include <zlib.h>

#include "stream_writer.h"

int gen_write(const struct gen_stream *g)
{
    struct vb_error err = {0};
    struct stream_meta meta;
    stream_meta_init(&meta);
    strcpy(meta.date, "2026-11-22T00:00:00.000001");
    meta.virtual_size = g->virtual_size;
    meta.compressed = g->compressed;
    meta.incremental = g->incremental;
    snprintf(meta.disk_name, sizeof meta.disk_name, "%s", g->disk_name ? g->disk_name : "vda");
    snprintf(meta.checkpoint_name, sizeof meta.checkpoint_name, "%s",
             g->checkpoint ? g->checkpoint : "virtnbdbackup.0");
    snprintf(meta.parent_checkpoint, sizeof meta.parent_checkpoint, "%s",
             g->parent ? g->parent : "");
    for (size_t i = 0; i < g->nextents; i++)
        if (!g->extents[i].zero)
            meta.data_size += g->extents[i].length;
    unlink(g->path);
    char chk[4200];
    snprintf(chk, sizeof chk, "%s.chksum", g->path);
    unlink(chk);
    struct stream_sink *sink = stream_sink_file_open(g->path, &err);
    if (sink && g->async)
        sink = stream_sink_async(sink, 100000, 3, &err);
    struct stream_writer *w = sink ? stream_writer_new(sink, &meta, &err) : NULL;
    int rc = w ? 0 : -1;
    if (w && g->threads)
        stream_writer_set_compress_threads(w, g->threads < 0 ? 0 : (unsigned)g->threads);
    for (size_t i = 0; rc == 0 && i < g->nextents; i++) {
        const struct gen_extent *e = &g->extents[i];
        if (e->zero)
            rc = stream_writer_zero(w, e->start, e->length, &err);
        else if (!g->piece)
            rc = stream_writer_data(w, e->start, g->disk + e->start, e->length, &err);
        else {
            rc = stream_writer_data_begin(w, e->start, e->length, &err);
            for (uint64_t p = 0; rc == 0 && p < e->length; p += g->piece) {
                uint64_t n = e->length - p < g->piece ? e->length - p : g->piece;
                const uint8_t *b = g->disk + e->start + p;
                rc = g->summed
                         ? stream_writer_data_append_summed(
                               w, b, n, (uint32_t)adler32(adler32(0, NULL, 0), b, (uInt)n), &err)
                         : stream_writer_data_append(w, b, n, &err);
            }
            if (rc == 0)
                rc = stream_writer_data_end(w, &err);
        }
    }
    if (rc == 0)
        rc = stream_writer_finish(w, NULL, &err);
    stream_writer_free(w);
    if (rc < 0)
        fprintf(stderr, "gen_write: %s\n", err.msg);
    return rc;
}
