/* virtrestore's one-pass plan of restore pieces (src/restore/piece_plan.c): the pieces cover
 * exactly the final DATA content of a chain, never a final zero, never cross an LZ4 frame of a
 * compressed file, respect the piece size of uncompressed files, and reading them reproduces
 * the disk. */
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "chain_index.h"
#include "frame.h"
#include "piece_plan.h"
#include "stream_index.h"
#include "streamgen.h"
#include "testutil.h"

#define MiB (1024u * 1024u)

static void check_chain(int full_compressed, int inc_compressed, uint64_t max_piece)
{
    const uint64_t size = 120 * MiB;
    uint8_t *disk0 = malloc(size), *disk1 = malloc(size);
    test_fill(disk0, size, 11);
    test_fill(disk1, size, 12);
    /* full: data 0..70M (three LZ4 slices when compressed), zero, data, zero to the end */
    struct gen_extent full[] = {{0, 70 * MiB, false},
                                {70 * MiB, 10 * MiB, true},
                                {80 * MiB, 1 * MiB, false},
                                {81 * MiB, 39 * MiB, true}};
    /* inc: overwrites inside the big extent and in the zero region */
    struct gen_extent inc[] = {{5 * MiB, 2 * MiB, false}, {40 * MiB, 33 * MiB, false}};
    struct gen_stream g0 = {.path = test_path("w0.data"),
                            .disk = disk0,
                            .virtual_size = size,
                            .compressed = full_compressed,
                            .extents = full,
                            .nextents = 4};
    struct gen_stream g1 = {.path = test_path("w1.data"),
                            .disk = disk1,
                            .virtual_size = size,
                            .compressed = inc_compressed,
                            .incremental = true,
                            .checkpoint = "virtnbdbackup.1",
                            .parent = "virtnbdbackup.0",
                            .extents = inc,
                            .nextents = 2};
    CHECK(gen_write(&g0) == 0 && gen_write(&g1) == 0);
    struct vb_error err = {0};
    struct stream_index *idx[2] = {stream_index_open(g0.path, &err),
                                   stream_index_open(g1.path, &err)};
    CHECK_MSG(idx[0] && idx[1], "%s", err.msg);
    if (!idx[0] || !idx[1])
        return;
    struct chain_index *ci = chain_index_build(idx, 2, &err);
    CHECK(ci != NULL);
    struct restore_work w;
    CHECK(restore_work_build(ci, max_piece, &w, &err) == 0);

    uint8_t *want = malloc(size), *got = calloc(1, size), *piece = malloc(STREAM_SLICE_SIZE);
    struct stream_read_buf buf = {0};
    CHECK(chain_index_read(ci, 0, size, want, &buf, &err) == 0);
    uint64_t prev_end = 0, total = 0;
    for (size_t i = 0; i < w.n; i++) {
        const struct restore_piece *p = &w.pieces[i];
        const struct stream_index *fi = ci->files[p->file];
        const struct stream_extent *x = &fi->extents[p->extent];
        CHECK(p->voff >= prev_end); /* ascending, no overlap */
        CHECK(p->len > 0 && p->len <= STREAM_SLICE_SIZE);
        CHECK(!x->zero && p->voff >= x->start && p->voff + p->len <= x->start + x->length);
        if (fi->compressed) /* inside one 32 MiB slice of its extent */
            CHECK((p->voff - x->start) / STREAM_SLICE_SIZE ==
                  (p->voff + p->len - 1 - x->start) / STREAM_SLICE_SIZE);
        else
            CHECK(p->len <= max_piece);
        CHECK(stream_index_read(fi, p->extent, p->voff - x->start, p->len, piece, &buf, &err) == 0);
        memcpy(got + p->voff, piece, p->len);
        prev_end = p->voff + p->len;
        total += p->len;
    }
    CHECK(total == w.bytes && total == ci->data_bytes);
    CHECK_MSG(memcmp(got, want, size) == 0, "pieces do not rebuild the disk (%d/%d)",
              full_compressed, inc_compressed);
    /* spot checks against the model: inc wins, full's data elsewhere, zeroes stay */
    CHECK(memcmp(got + 5 * MiB, disk1 + 5 * MiB, 2 * MiB) == 0);
    CHECK(memcmp(got, disk0, 5 * MiB) == 0);
    CHECK(memcmp(got + 72 * MiB, disk1 + 72 * MiB, MiB) == 0);
    CHECK(got[75 * MiB] == 0 && got[100 * MiB] == 0);
    stream_read_buf_free(&buf);
    restore_work_free(&w);
    chain_index_free(ci);
    stream_index_free(idx[0]);
    stream_index_free(idx[1]);
    free(want);
    free(got);
    free(piece);
    free(disk0);
    free(disk1);
}

int main(void)
{
    check_chain(STREAM_META_COMPRESSED_FALSE, STREAM_META_COMPRESSED_FALSE, 8 * MiB);
    check_chain(2, STREAM_META_COMPRESSED_FALSE, 3 * MiB);
    check_chain(2, 1, 8 * MiB);
    check_chain(STREAM_META_COMPRESSED_FALSE, 2, 1 * MiB);
    return test_finish("test_piece_plan");
}
