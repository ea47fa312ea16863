/* The streaming reader (src/stream/stream_reader.c): every byte of plain and compressed
 * streams, read front to back in chunks of many sizes, with forward skips, backwards and at
 * random; compressed streams with our independent 64 KiB blocks and rewritten with linked
 * blocks (as python-lz4 writes them for the reference) of 64 KiB and 4 MiB; corrupt, short
 * and overlong LZ4 frames fail naming the file and offset, and the reader recovers. */
#include <inttypes.h>
#include <lz4frame.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "frame.h"
#include "stream_index.h"
#include "stream_lz4.h"
#include "stream_reader.h"
#include "streamgen.h"
#include "testutil.h"

#define MiB (1024ull * 1024)

/* Compressible content with random parts. */
static uint8_t *make_disk(uint64_t size, uint64_t seed)
{
    uint8_t *d = malloc(size);
    for (uint64_t off = 0; off < size; off += 4096) {
        uint64_t n = size - off < 4096 ? size - off : 4096;
        memset(d + off, (int)(off >> 12), n);
        test_fill(d + off, n / 3, seed + off);
    }
    return d;
}

struct buf {
    uint8_t *p;
    size_t len, cap;
};

static void put(struct buf *b, const void *p, size_t n)
{
    if (b->len + n > b->cap) {
        b->cap = (b->len + n) * 2;
        b->p = realloc(b->p, b->cap);
    }
    memcpy(b->p + b->len, p, n);
    b->len += n;
}

/* Rewrites the compressed stream src as dst with every LZ4 frame re-encoded with linked
 * blocks of the given size (no content size, like python-lz4), plus junk bytes appended
 * to the first frame (counted in the trailer) when junk is set, or its last byte cut. */
static int relink(const char *src, const char *dst, LZ4F_blockSizeID_t bsize, int junk, int cut)
{
    struct vb_error err = {0};
    struct stream_index *idx = stream_index_open(src, &err);
    void *data;
    size_t size;
    if (!idx || test_read_file(src, &data, &size) < 0) {
        fprintf(stderr, "relink: %s\n", err.msg);
        return -1;
    }
    const uint8_t *in = data;
    struct stream_frame comp;
    stream_frame_parse((const char *)in + size - STREAM_FRAME_LEN, &comp, &err);
    size_t frames_end = size - STREAM_FRAME_LEN - STREAM_TERM_LEN - comp.length;
    struct buf out = {0}, json = {0};
    put(&json, "[", 1);
    size_t pos = 0;
    bool first = true;
    for (size_t e = 0; e < idx->nextents; e++) {
        const struct stream_extent *x = &idx->extents[e];
        if (x->zero)
            continue;
        put(&out, in + pos, x->file_offset - pos);
        char tmp[64];
        if (!first)
            put(&json, ", ", 2);
        struct buf sizes = {0};
        uint64_t total = 0;
        for (uint32_t s = 0; s < x->slice_count; s++) {
            const struct stream_slice *sl = &idx->slices[x->slice_first + s];
            uint8_t *raw = malloc(sl->raw_length);
            if (stream_lz4_decompress(in + sl->file_offset, sl->stored, raw, sl->raw_length, &err) <
                0) {
                fprintf(stderr, "relink: %s\n", err.msg);
                return -1;
            }
            LZ4F_preferences_t prefs;
            memset(&prefs, 0, sizeof prefs);
            prefs.frameInfo.blockSizeID = bsize;
            prefs.frameInfo.blockMode = LZ4F_blockLinked;
            prefs.frameInfo.contentChecksumFlag = LZ4F_contentChecksumEnabled;
            size_t cap = LZ4F_compressFrameBound(sl->raw_length, &prefs) + 16;
            uint8_t *z = malloc(cap);
            size_t zn = LZ4F_compressFrame(z, cap, raw, sl->raw_length, &prefs);
            if (LZ4F_isError(zn))
                return -1;
            if (first && junk) {
                memset(z + zn, 0x5a, (size_t)junk);
                zn += (size_t)junk;
            }
            if (first && cut)
                zn -= (size_t)cut;
            first = false;
            put(&out, z, zn);
            snprintf(tmp, sizeof tmp, "%s%zu", s ? ", " : "", zn);
            put(&sizes, tmp, strlen(tmp));
            total += zn;
            free(z);
            free(raw);
        }
        if (x->slice_count > 1) {
            snprintf(tmp, sizeof tmp, "{\"%" PRIu64 "\": [", total);
            put(&json, tmp, strlen(tmp));
            put(&json, sizes.p, sizes.len);
            put(&json, "]}", 2);
        } else {
            put(&json, sizes.p, sizes.len);
        }
        free(sizes.p);
        pos = x->file_offset + x->stored;
    }
    put(&json, "]", 1);
    put(&out, in + pos, frames_end - pos);
    put(&out, json.p, json.len);
    put(&out, STREAM_TERM, STREAM_TERM_LEN);
    char hdr[STREAM_FRAME_LEN];
    stream_frame_format(hdr, STREAM_FRAME_COMP, 0, json.len);
    put(&out, hdr, sizeof hdr);
    int rc = test_write_file(dst, out.p, out.len);
    free(out.p);
    free(json.p);
    free(data);
    stream_index_free(idx);
    return rc;
}

/* Reads all of extent e in chunks of `chunk` bytes, continuing frame by frame. */
static int read_all(struct stream_reader *r, const struct stream_index *idx, size_t e, size_t chunk,
                    uint8_t *dst, struct vb_error *err)
{
    const struct stream_extent *x = &idx->extents[e];
    for (uint64_t pos = 0; pos < x->length;) {
        size_t n = x->length - pos < chunk ? (size_t)(x->length - pos) : chunk;
        if (stream_reader_read(r, idx, e, pos, n, dst + pos, err) < 0)
            return -1;
        pos += n;
    }
    return 0;
}

static void check_stream(const char *path, const uint8_t *disk, uint64_t size, const char *what)
{
    struct vb_error err = {0};
    struct stream_index *idx = stream_index_open(path, &err);
    CHECK_MSG(idx != NULL, "%s: %s", what, err.msg);
    if (!idx)
        return;
    uint8_t *got = malloc(size);
    struct stream_reader r;
    CHECK(stream_reader_init(&r, 0, &err) == 0);
    /* front to back in many chunk sizes, the reader reused across extents and files */
    static const size_t chunks[] = {1 * MiB, 100000, 40 * MiB, 4096 + 7};
    for (size_t c = 0; c < sizeof chunks / sizeof *chunks; c++) {
        memset(got, 0xee, size);
        int rc = 0;
        for (size_t e = 0; rc == 0 && e < idx->nextents; e++) {
            const struct stream_extent *x = &idx->extents[e];
            rc = read_all(&r, idx, e, chunks[c], got + x->start, &err);
        }
        CHECK_MSG(rc == 0, "%s: chunk %zu: %s", what, chunks[c], err.msg);
        for (size_t e = 0; rc == 0 && e < idx->nextents; e++) {
            const struct stream_extent *x = &idx->extents[e];
            if (x->zero) {
                CHECK(got[x->start] == 0 && got[x->start + x->length - 1] == 0);
                continue;
            }
            CHECK_MSG(memcmp(got + x->start, disk + x->start, x->length) == 0,
                      "%s: chunk %zu: extent %zu differs", what, chunks[c], e);
        }
    }
    /* forward skips inside a frame, backwards, and random reads, against stream_index_read */
    struct stream_read_buf rb = {0};
    uint64_t seed = 7;
    uint8_t *want = malloc(3 * MiB), *have = malloc(3 * MiB);
    for (int i = 0; i < 60; i++) {
        seed = seed * 6364136223846793005ull + 1442695040888963407ull;
        size_t e = (size_t)(seed >> 33) % idx->nextents;
        const struct stream_extent *x = &idx->extents[e];
        uint64_t off = (seed >> 7) % x->length;
        size_t len = (size_t)((seed >> 20) % (3 * MiB));
        if (len > x->length - off)
            len = (size_t)(x->length - off);
        if (i % 3 == 1) /* right after the previous read (or a bit behind) */
            off = off / 2;
        CHECK(stream_index_read(idx, e, off, len, want, &rb, &err) == 0);
        int rc = stream_reader_read(&r, idx, e, off, len, have, &err);
        CHECK_MSG(rc == 0, "%s: read %" PRIu64 "+%zu: %s", what, off, len, err.msg);
        CHECK_MSG(rc != 0 || memcmp(want, have, len) == 0, "%s: read %" PRIu64 "+%zu differs", what,
                  off, len);
    }
    stream_read_buf_free(&rb);
    stream_reader_free(&r);
    stream_index_free(idx);
    free(want);
    free(have);
    free(got);
}

/* Every read of the file's first frame fails naming the file and an offset, then a good
 * read of another file still works with the same reader. */
static void check_broken(const char *path, const char *expect, const char *good, size_t extent)
{
    struct vb_error err = {0};
    struct stream_index *idx = stream_index_open(path, &err);
    CHECK_MSG(idx != NULL, "%s", err.msg);
    struct stream_index *gidx = stream_index_open(good, &err);
    if (!idx || !gidx)
        return;
    struct stream_reader r;
    stream_reader_init(&r, 4096, &err);
    const struct stream_extent *x = &idx->extents[extent];
    uint8_t *dst = malloc(x->length);
    err.msg[0] = '\0';
    int rc = read_all(&r, idx, extent, 1 * MiB, dst, &err);
    CHECK_MSG(rc < 0, "%s: corrupt frame read without error", path);
    CHECK_MSG(strstr(err.msg, path) && strstr(err.msg, ": offset ") && strstr(err.msg, expect),
              "%s: message: %s", path, err.msg);
    const struct stream_extent *gx = &gidx->extents[extent];
    uint8_t *gdst = malloc(gx->length);
    CHECK_MSG(read_all(&r, gidx, extent, 1 * MiB, gdst, &err) == 0, "after an error: %s", err.msg);
    stream_reader_free(&r);
    stream_index_free(idx);
    stream_index_free(gidx);
    free(dst);
    free(gdst);
}

int main(void)
{
    const uint64_t size = 100 * MiB;
    uint8_t *disk = make_disk(size, 3);
    /* one extent of three slices (the last one short), a zero run, a small one */
    struct gen_extent ext[] = {{0, 70 * MiB, false},
                               {70 * MiB, 10 * MiB, true},
                               {80 * MiB, 1 * MiB + 12345, false},
                               {90 * MiB, 10 * MiB, true}};
    struct gen_stream plain = {.path = test_path("plain.data"),
                               .disk = disk,
                               .virtual_size = size,
                               .compressed = STREAM_META_COMPRESSED_FALSE,
                               .extents = ext,
                               .nextents = 4};
    struct gen_stream lz = plain;
    lz.path = test_path("lz4.data");
    lz.compressed = 1;
    CHECK(gen_write(&plain) == 0 && gen_write(&lz) == 0);
    check_stream(plain.path, disk, size, "plain");
    check_stream(lz.path, disk, size, "independent");

    const char *l64 = test_path("linked64.data"), *l4m = test_path("linked4m.data");
    CHECK(relink(lz.path, l64, LZ4F_max64KB, 0, 0) == 0);
    CHECK(relink(lz.path, l4m, LZ4F_max4MB, 0, 0) == 0);
    check_stream(l64, disk, size, "linked 64 KiB");
    check_stream(l4m, disk, size, "linked 4 MiB");

    /* a flipped byte inside an LZ4 payload (ours and linked) */
    const char *paths[] = {lz.path, l64};
    for (int i = 0; i < 2; i++) {
        void *data;
        size_t n;
        CHECK(test_read_file(paths[i], &data, &n) == 0);
        struct vb_error err = {0};
        struct stream_index *idx = stream_index_open(paths[i], &err);
        const struct stream_slice *sl = &idx->slices[1];
        ((uint8_t *)data)[sl->file_offset + sl->stored / 2] ^= 0x40;
        const char *bad = test_path(i ? "bad_linked.data" : "bad_ours.data");
        CHECK(test_write_file(bad, data, n) == 0);
        check_broken(bad, "lz4", paths[i], 0);
        stream_index_free(idx);
        free(data);
    }
    /* stray bytes after a frame, and a frame cut short */
    const char *junk = test_path("junk.data"), *cut = test_path("cut.data");
    CHECK(relink(lz.path, junk, LZ4F_max64KB, 3, 0) == 0);
    CHECK(relink(lz.path, cut, LZ4F_max64KB, 0, 5) == 0);
    check_broken(junk, "stray bytes", lz.path, 0);
    check_broken(cut, "lz4", lz.path, 0);

    free(disk);
    return test_finish("test_stream_decode");
}
