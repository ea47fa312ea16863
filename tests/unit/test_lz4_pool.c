/* stream_lz4_pool: the frames compressed on worker threads are byte for byte those of the
 * single-context encoder (stream_lz4_encoder), decode with liblz4 (checksums verified), and
 * come out in order with the stream bytes between them; errors come back through vb_error. */
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "frame.h"
#include "sink.h"
#include "stream_lz4.h"
#include "stream_lz4_pool.h"
#include "stream_writer.h"
#include "streamgen.h"
#include "testutil.h"

#define KiB ((size_t)1024)
#define MiB (1024 * KiB)

enum kind { RANDOM, TEXT, ZEROES, MIXED, NKINDS };
static const char *kind_name[] = {"random", "compressible", "zeroes", "mixed"};

/* Compressible: words of a small vocabulary in pseudo-random order (lz4 ratio ~2-3). */
static void fill_text(uint8_t *p, size_t n, uint64_t seed)
{
    static const char *words[] = {"backup ", "stream ", "frame ",  "block ", "lz4 ",
                                  "qemu ",   "nbd ",    "extent ", "\n",     "checkpoint "};
    uint64_t x = seed * 0x9E3779B97F4A7C15ull + 7;
    size_t i = 0;
    while (i < n) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        const char *w = words[(x >> 20) % 10];
        for (size_t k = 0; w[k] && i < n; k++)
            p[i++] = (uint8_t)w[k];
    }
}

static uint8_t *make_input(enum kind k, size_t n, uint64_t seed)
{
    uint8_t *p = malloc(n ? n : 1);
    if (k == RANDOM) {
        test_fill(p, n, seed);
    } else if (k == TEXT) {
        fill_text(p, n, seed);
    } else if (k == ZEROES) {
        memset(p, 0, n);
    } else {
        /* 64 KiB blocks of random, text and zeroes, and a block that is half of each */
        for (size_t off = 0, b = 0; off < n; off += 64 * KiB, b++) {
            size_t len = n - off < 64 * KiB ? n - off : 64 * KiB;
            if (b % 4 == 0)
                test_fill(p + off, len, seed + b);
            else if (b % 4 == 1)
                fill_text(p + off, len, seed + b);
            else if (b % 4 == 2)
                memset(p + off, 0, len);
            else {
                fill_text(p + off, len, seed + b);
                test_fill(p + off, len / 2, seed + b);
            }
        }
    }
    return p;
}

struct buf {
    uint8_t *p;
    size_t len, cap;
    uint64_t sizes[64];
    size_t nsizes;
    long fail_after; /* emit fails once this many calls went through (-1: never) */
    long calls;
};

static void buf_put(struct buf *b, const void *p, size_t n)
{
    if (b->len + n > b->cap) {
        b->cap = (b->len + n) * 2;
        b->p = realloc(b->p, b->cap);
    }
    memcpy(b->p + b->len, p, n);
    b->len += n;
}

static int emit_cb(void *opaque, const void *p, size_t n, uint32_t adler, struct vb_error *err)
{
    struct buf *b = opaque;
    if (adler != (uint32_t)adler32(adler32(0, NULL, 0), p, (uInt)n))
        return vb_error_set(err, "wrong adler32 for %zu bytes", n);
    if (b->fail_after >= 0 && b->calls++ >= b->fail_after)
        return vb_error_set(err, "test sink: no space left");
    buf_put(b, p, n);
    return 0;
}

static int frame_cb(void *opaque, uint64_t stored, struct vb_error *err)
{
    struct buf *b = opaque;
    if (b->nsizes == 64)
        return vb_error_set(err, "too many frames");
    b->sizes[b->nsizes++] = stored;
    return 0;
}

/* The single-context encoder as the writer always used it: 1 MiB steps. */
static void reference_frame(struct buf *out, const uint8_t *src, size_t n, int level)
{
    struct vb_error err = {0};
    struct stream_lz4_encoder enc;
    CHECK(stream_lz4_encoder_init(&enc, level, &err) == 0);
    size_t cap = stream_lz4_encoder_bound(MiB);
    uint8_t *tmp = malloc(cap);
    int64_t r = stream_lz4_encoder_begin(&enc, n, tmp, cap, &err);
    CHECK(r > 0);
    buf_put(out, tmp, (size_t)r);
    for (size_t off = 0; off < n; off += MiB) {
        size_t k = n - off < MiB ? n - off : MiB;
        r = stream_lz4_encoder_update(&enc, src + off, k, tmp, cap, &err);
        CHECK(r >= 0);
        buf_put(out, tmp, (size_t)r);
    }
    r = stream_lz4_encoder_end(&enc, tmp, cap, &err);
    CHECK(r > 0);
    buf_put(out, tmp, (size_t)r);
    free(tmp);
    stream_lz4_encoder_free(&enc);
}

/* One frame through a pool, given in pieces of `piece` bytes (0: at once). */
static void pool_frame(struct buf *out, const uint8_t *src, size_t n, int level, unsigned workers,
                       size_t job, size_t piece)
{
    struct vb_error err = {0};
    out->fail_after = -1;
    struct stream_lz4_pool *p =
        stream_lz4_pool_new(level, workers, job, true, emit_cb, frame_cb, out, &err);
    CHECK(p != NULL);
    if (!p)
        return;
    CHECK(stream_lz4_pool_frame_begin(p, n, &err) == 0);
    for (size_t off = 0; off < n;) {
        size_t k = piece && n - off > piece ? piece : n - off;
        CHECK(stream_lz4_pool_frame_append(p, src + off, k, &err) == 0);
        off += k;
    }
    CHECK(stream_lz4_pool_frame_end(p, &err) == 0);
    CHECK(stream_lz4_pool_flush(p, &err) == 0);
    CHECK_MSG(err.msg[0] == 0, "%s", err.msg);
    stream_lz4_pool_free(p);
}

static size_t first_difference(const struct buf *a, const struct buf *b)
{
    size_t n = a->len < b->len ? a->len : b->len;
    for (size_t i = 0; i < n; i++)
        if (a->p[i] != b->p[i])
            return i;
    return n;
}

struct variant {
    unsigned workers;
    size_t job, piece;
};

static void test_identical_frames(void)
{
    static const size_t sizes[] = {0,    1,         65535,   65536,          65537,
                                   4000, 200 * KiB, MiB + 7, 32 * MiB - 512, 32 * MiB};
    static const struct variant small[] = {
        {1, 0, 0}, {2, 0, 0}, {2, 128 * KiB, 4097}, {3, MiB, 512 * KiB}, {4, 0, 1000}};
    static const struct variant big[] = {{2, 0, 512 * KiB}, {3, 192 * KiB, 0}};
    for (size_t si = 0; si < sizeof sizes / sizeof *sizes; si++) {
        size_t n = sizes[si];
        bool large = n > 2 * MiB;
        for (int k = 0; k < NKINDS; k++) {
            if (large && k == ZEROES)
                continue;
            uint8_t *src = make_input((enum kind)k, n, 100 + si);
            struct buf ref = {0};
            reference_frame(&ref, src, n, 2);
            const struct variant *v = large ? big : small;
            size_t nv = large ? sizeof big / sizeof *big : sizeof small / sizeof *small;
            for (size_t i = 0; i < nv; i++) {
                struct buf got = {0};
                pool_frame(&got, src, n, 2, v[i].workers, v[i].job, v[i].piece);
                CHECK_MSG(got.len == ref.len && memcmp(got.p, ref.p, ref.len) == 0,
                          "%s %zu bytes, %u workers, job %zu, pieces %zu: %zu bytes vs %zu, first "
                          "difference at %zu",
                          kind_name[k], n, v[i].workers, v[i].job, v[i].piece, got.len, ref.len,
                          first_difference(&got, &ref));
                CHECK(got.nsizes == 1 && got.sizes[0] == got.len);
                free(got.p);
            }
            /* liblz4 decodes it, verifying the block and content checksums */
            uint8_t *back = malloc(n ? n : 1);
            struct vb_error err = {0};
            CHECK_MSG(stream_lz4_decompress(ref.p, ref.len, back, n, &err) == 0, "%s", err.msg);
            CHECK(memcmp(back, src, n) == 0);
            free(back);
            free(ref.p);
            free(src);
        }
    }
}

/* The high-compression levels take the same path. */
static void test_identical_hc(void)
{
    static const size_t sizes[] = {1, 65537, 300 * KiB, MiB + 7};
    for (size_t si = 0; si < sizeof sizes / sizeof *sizes; si++) {
        uint8_t *src = make_input(MIXED, sizes[si], 7 + si);
        struct buf ref = {0}, got = {0};
        reference_frame(&ref, src, sizes[si], 9);
        pool_frame(&got, src, sizes[si], 9, 2, 128 * KiB, 70000);
        CHECK_MSG(got.len == ref.len && memcmp(got.p, ref.p, ref.len) == 0,
                  "level 9, %zu bytes: first difference at %zu", sizes[si],
                  first_difference(&got, &ref));
        free(ref.p);
        free(got.p);
        free(src);
    }
}

/* Frames and stream bytes interleaved: the order is kept, the frame sizes are reported in
 * order, and the bytes are those of a fresh single encoder per frame. */
static void test_sequence(void)
{
    static const size_t frames[] = {100,   3000,          4096,      70000, 256 * KiB,
                                    1,     256 * KiB + 1, 300 * KiB, 12,    5 * MiB + 3,
                                    65536, 2 * MiB,       200};
    size_t nframes = sizeof frames / sizeof *frames, total = 0;
    for (size_t i = 0; i < nframes; i++)
        total += frames[i];
    uint8_t *src = make_input(MIXED, total, 42);
    uint8_t raw[3000];
    test_fill(raw, sizeof raw, 5);
    for (unsigned workers = 0; workers <= 3; workers++) {
        struct buf ref = {0}, got = {.fail_after = -1};
        uint64_t ref_sizes[64];
        struct vb_error err = {0};
        struct stream_lz4_pool *p =
            stream_lz4_pool_new(2, workers, 128 * KiB, true, emit_cb, frame_cb, &got, &err);
        CHECK(p != NULL);
        size_t off = 0;
        for (size_t i = 0; i < nframes; i++) {
            /* raw bytes of several sizes (above 1 KiB they are written after a flush) */
            size_t rlen = i % 3 == 0 ? 40 : i % 3 == 1 ? 2 : 2000;
            buf_put(&ref, raw, rlen);
            CHECK(stream_lz4_pool_raw(p, raw, rlen, &err) == 0);
            size_t before = ref.len;
            reference_frame(&ref, src + off, frames[i], 2);
            ref_sizes[i] = ref.len - before;
            CHECK(stream_lz4_pool_frame_begin(p, frames[i], &err) == 0);
            for (size_t k = 0; k < frames[i];) {
                size_t step = frames[i] - k < 333333 ? frames[i] - k : 333333;
                CHECK(stream_lz4_pool_frame_append(p, src + off + k, step, &err) == 0);
                k += step;
            }
            CHECK(stream_lz4_pool_frame_end(p, &err) == 0);
            off += frames[i];
        }
        buf_put(&ref, raw, 7);
        CHECK(stream_lz4_pool_raw(p, raw, 7, &err) == 0);
        CHECK(stream_lz4_pool_flush(p, &err) == 0);
        stream_lz4_pool_free(p);
        CHECK(got.nsizes == nframes);
        if (workers > 0) {
            /* workers == 0 is the single encoder itself, whose frames below 4 KiB depend on
             * what it compressed before (liblz4 keeps its match table for small inputs) */
            CHECK_MSG(got.len == ref.len && memcmp(got.p, ref.p, ref.len) == 0,
                      "%u workers: %zu bytes vs %zu, first difference at %zu", workers, got.len,
                      ref.len, first_difference(&got, &ref));
            for (size_t i = 0; i < nframes && i < got.nsizes; i++)
                CHECK(got.sizes[i] == ref_sizes[i]);
        }
        /* decode the frames in place */
        size_t pos = 0, soff = 0;
        for (size_t i = 0; i < nframes && i < got.nsizes; i++) {
            size_t rlen = i % 3 == 0 ? 40 : i % 3 == 1 ? 2 : 2000;
            CHECK(pos + rlen <= got.len && memcmp(got.p + pos, raw, rlen) == 0);
            pos += rlen;
            uint8_t *back = malloc(frames[i]);
            CHECK(pos + got.sizes[i] <= got.len);
            CHECK_MSG(stream_lz4_decompress(got.p + pos, (size_t)got.sizes[i], back, frames[i],
                                            &err) == 0,
                      "frame %zu: %s", i, err.msg);
            CHECK(memcmp(back, src + soff, frames[i]) == 0);
            free(back);
            pos += (size_t)got.sizes[i];
            soff += frames[i];
        }
        CHECK(pos + 7 == got.len);
        free(got.p);
        free(ref.p);
    }
    free(src);
}

/* A failing sink: the error comes back, stays, and nothing hangs or leaks. */
static void test_errors(void)
{
    uint8_t *src = make_input(TEXT, 3 * MiB, 3);
    for (long after = 0; after < 4; after++) {
        struct buf got = {.fail_after = after};
        struct vb_error err = {0};
        struct stream_lz4_pool *p =
            stream_lz4_pool_new(2, 2, 128 * KiB, true, emit_cb, frame_cb, &got, &err);
        CHECK(p != NULL);
        int rc = stream_lz4_pool_raw(p, "hello", 5, &err);
        for (int f = 0; rc == 0 && f < 3; f++) {
            rc = stream_lz4_pool_frame_begin(p, MiB, &err);
            if (rc == 0)
                rc = stream_lz4_pool_frame_append(p, src + (size_t)f * MiB, MiB, &err);
            if (rc == 0)
                rc = stream_lz4_pool_frame_end(p, &err);
        }
        if (rc == 0)
            rc = stream_lz4_pool_flush(p, &err);
        CHECK(rc < 0);
        CHECK_MSG(strstr(err.msg, "no space left") != NULL, "%s", err.msg);
        struct vb_error again = {0};
        CHECK(stream_lz4_pool_flush(p, &again) < 0 && strstr(again.msg, "no space left"));
        stream_lz4_pool_free(p);
        free(got.p);
    }
    /* misuse is refused */
    struct buf got = {.fail_after = -1};
    struct vb_error err = {0};
    struct stream_lz4_pool *p = stream_lz4_pool_new(2, 2, 0, true, emit_cb, frame_cb, &got, &err);
    CHECK(stream_lz4_pool_frame_begin(p, 10, &err) == 0);
    CHECK(stream_lz4_pool_frame_append(p, src, 11, &err) < 0);
    CHECK(stream_lz4_pool_frame_end(p, &err) < 0);
    CHECK(stream_lz4_pool_raw(p, "x", 1, &err) < 0);
    stream_lz4_pool_free(p); /* with a frame open */
    free(got.p);
    free(src);
}

/* Whole streams: the writer's output does not depend on the number of threads. */
static void test_writer_streams(void)
{
    uint64_t vsize = 160 * MiB;
    uint8_t *disk = malloc(vsize);
    for (uint64_t off = 0; off < vsize; off += 8 * MiB) {
        uint8_t *part = make_input((enum kind)((off >> 23) % NKINDS), 8 * MiB, off);
        memcpy(disk + off, part, 8 * MiB);
        free(part);
    }
    struct gen_extent ext[] = {
        {0, 4096, false},
        {4096, 8192, true},
        {12288, 32 * MiB - 512, false},
        {32 * MiB + 12288, 4096, true},
        {33 * MiB, 32 * MiB + 512, false},
        {66 * MiB, 96 * MiB - 66 * MiB, false},
        {96 * MiB, 65536, true},
        {96 * MiB + 65536, 300 * KiB, false},
        {100 * MiB, 40 * MiB, false},
    };
    void *files[4];
    size_t lens[4];
    int threads[4] = {-1, 1, 2, 4};
    for (int i = 0; i < 4; i++) {
        char name[32];
        snprintf(name, sizeof name, "t%d.data", threads[i]);
        struct gen_stream g = {.path = test_path(name),
                               .disk = disk,
                               .virtual_size = vsize,
                               .compressed = 2,
                               .extents = ext,
                               .nextents = sizeof ext / sizeof *ext,
                               .piece = i == 2 ? 512 * KiB : 0,
                               .threads = threads[i]};
        CHECK(gen_write(&g) == 0);
        CHECK(test_read_file(g.path, &files[i], &lens[i]) == 0);
    }
    for (int i = 1; i < 4; i++)
        CHECK_MSG(lens[i] == lens[0] && memcmp(files[i], files[0], lens[0]) == 0,
                  "%d threads: the stream differs from the single-threaded one", threads[i]);
    for (int i = 0; i < 4; i++)
        free(files[i]);
    free(disk);
}

/* A sink that fails after some bytes, as a full disk does. */
struct failing_sink {
    struct stream_sink base;
    size_t left;
    bool aborted;
};

static int failing_write(struct stream_sink *sink, const void *buf, size_t len,
                         struct vb_error *err)
{
    struct failing_sink *fs = (struct failing_sink *)sink;
    (void)buf;
    if (len > fs->left)
        return vb_error_set(err, "%s.partial: write: No space left on device", sink->name);
    fs->left -= len;
    return 0;
}

static int failing_commit(struct stream_sink *sink, bool have, uint32_t sum, struct vb_error *err)
{
    (void)sink, (void)have, (void)sum;
    return vb_error_set(err, "commit reached");
}

static void failing_abort(struct stream_sink *sink)
{
    ((struct failing_sink *)sink)->aborted = true;
}

static void failing_free(struct stream_sink *sink)
{
    (void)sink;
}

static const struct stream_sink_ops failing_ops = {
    .write = failing_write, .commit = failing_commit, .abort = failing_abort, .free = failing_free};

/* The writer reports a sink error met on a worker thread, and frees everything. */
static void test_writer_sink_error(void)
{
    uint8_t *src = make_input(MIXED, 40 * MiB, 9);
    for (size_t left = 0; left < 30 * MiB; left = left * 4 + 1000) {
        struct failing_sink fs = {.base = {.ops = &failing_ops, .name = "full.data"}, .left = left};
        struct stream_meta meta;
        stream_meta_init(&meta);
        meta.virtual_size = 64 * MiB;
        meta.data_size = 40 * MiB;
        meta.compressed = 2;
        strcpy(meta.disk_name, "vda");
        strcpy(meta.checkpoint_name, "virtnbdbackup.0");
        struct vb_error err = {0};
        struct stream_writer *w = stream_writer_new(&fs.base, &meta, &err);
        int rc = w ? 0 : -1;
        if (w)
            stream_writer_set_compress_threads(w, 2);
        for (size_t e = 0; rc == 0 && e < 4; e++) {
            rc = stream_writer_data_begin(w, e * 16 * MiB, 10 * MiB, &err);
            for (size_t off = 0; rc == 0 && off < 10 * MiB; off += 512 * KiB)
                rc = stream_writer_data_append(w, src + e * 10 * MiB + off, 512 * KiB, &err);
            if (rc == 0)
                rc = stream_writer_data_end(w, &err);
        }
        if (rc == 0)
            rc = stream_writer_finish(w, NULL, &err);
        CHECK(rc < 0);
        CHECK_MSG(strstr(err.msg, "No space left") != NULL, "%s", err.msg);
        /* the sink names the file: the writer adds no second name */
        CHECK_MSG(!w || strncmp(err.msg, "full.data: full.data", 20) != 0, "%s", err.msg);
        stream_writer_free(w);
        CHECK(fs.aborted);
    }
    free(src);
}

int main(void)
{
    test_identical_frames();
    test_identical_hc();
    test_sequence();
    test_errors();
    test_writer_streams();
    test_writer_sink_error();
    return test_finish("test_lz4_pool");
}
