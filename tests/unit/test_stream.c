/* Writer and indexing reader: round trips, the exact layout, the lz4 framing at the 32 MiB
 * boundaries, and hostile inputs (truncation everywhere, bit flips). */
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zlib.h>

#include "frame.h"
#include "stream_index.h"
#include "stream_lz4.h"
#include "stream_writer.h"
#include "streamgen.h"
#include "testutil.h"

#define MiB (1024ull * 1024)

/* Compressible but not trivial content: random bytes in half of every 4 KiB. */
static uint8_t *make_disk(uint64_t size, uint64_t seed)
{
    uint8_t *d = malloc(size);
    for (uint64_t off = 0; off < size; off += 4096) {
        uint64_t n = size - off < 4096 ? size - off : 4096;
        memset(d + off, (int)(off >> 12), n);
        test_fill(d + off, n / 2, seed + off);
    }
    return d;
}

static int read_extent_all(struct stream_index *idx, size_t e, uint8_t *dst,
                           struct stream_read_buf *buf, struct vb_error *err)
{
    const struct stream_extent *x = &idx->extents[e];
    for (uint64_t pos = 0; pos < x->length;) {
        uint64_t n = x->length - pos;
        if (n > STREAM_SLICE_SIZE - pos % STREAM_SLICE_SIZE)
            n = STREAM_SLICE_SIZE - pos % STREAM_SLICE_SIZE;
        if (stream_index_read(idx, e, pos, n, dst + pos, buf, err) < 0)
            return -1;
        pos += n;
    }
    return 0;
}

/* Everything the index says, and every byte, matches what was written. */
static void verify_stream(const struct gen_stream *g)
{
    struct vb_error err = {0};
    struct stream_index *idx = stream_index_open(g->path, &err);
    CHECK_MSG(idx != NULL, "%s", err.msg);
    if (!idx)
        return;
    CHECK(idx->nextents == g->nextents);
    CHECK(idx->compressed == (g->compressed != STREAM_META_COMPRESSED_FALSE));
    struct stream_read_buf buf = {0};
    for (size_t e = 0; e < idx->nextents && e < g->nextents; e++) {
        const struct stream_extent *x = &idx->extents[e];
        CHECK(x->start == g->extents[e].start && x->length == g->extents[e].length);
        CHECK(x->zero == g->extents[e].zero);
        if (x->zero)
            continue;
        uint8_t *got = malloc(x->length);
        CHECK_MSG(read_extent_all(idx, e, got, &buf, &err) == 0, "%s", err.msg);
        CHECK(memcmp(got, g->disk + x->start, x->length) == 0);
        /* partial reads: across 64 KiB blocks and 32 MiB slices */
        uint64_t probes[][2] = {{0, 1},           {1, 4095},          {65535, 2},
                                {100000, 200000}, {x->length - 1, 1}, {STREAM_SLICE_SIZE - 3, 7}};
        for (size_t p = 0; p < sizeof probes / sizeof probes[0]; p++) {
            uint64_t off = probes[p][0], len = probes[p][1];
            if (off + len > x->length)
                continue;
            memset(got, 0xee, len);
            CHECK_MSG(stream_index_read(idx, e, off, len, got, &buf, &err) == 0, "%s", err.msg);
            CHECK_MSG(memcmp(got, g->disk + x->start + off, len) == 0,
                      "partial read %" PRIu64 "+%" PRIu64 " of extent %zu", off, len, e);
        }
        free(got);
    }
    /* lookups */
    for (size_t e = 0; e < idx->nextents; e++) {
        CHECK(stream_index_lookup(idx, idx->extents[e].start) == e);
        CHECK(stream_index_lookup(idx, idx->extents[e].start + idx->extents[e].length - 1) == e);
    }
    CHECK(stream_index_lookup(idx, g->virtual_size) == idx->nextents);
    stream_read_buf_free(&buf);
    stream_index_free(idx);
}

static void test_layout(void)
{
    /* the layout of virtbackup-stream(5), LAYOUT, small */
    uint64_t size = 4 * MiB;
    uint8_t *disk = make_disk(size, 1);
    struct gen_extent ext[] = {
        {0, 65536, false}, {65536, 0xf0000, true}, {MiB, MiB, false}, {2 * MiB, 2 * MiB, true}};
    struct gen_stream g = {.path = test_path("layout.data"),
                           .disk = disk,
                           .virtual_size = size,
                           .compressed = STREAM_META_COMPRESSED_FALSE,
                           .extents = ext,
                           .nextents = 4};
    CHECK(gen_write(&g) == 0);
    void *buf;
    size_t len;
    CHECK(test_read_file(g.path, &buf, &len) == 0);
    const char *p = buf;
    CHECK(memcmp(p, "meta 0000000000000000 ", 22) == 0);
    uint64_t mlen = strtoull(p + 22, NULL, 16);
    uint64_t off = 40 + mlen;
    CHECK(memcmp(p + off, "\r\n", 2) == 0);
    off += 2;
    CHECK(memcmp(p + off, "data 0000000000000000 0000000000010000\r\n", 40) == 0);
    CHECK(memcmp(p + off + 40, disk, 65536) == 0);
    off += 40 + 65536;
    CHECK(memcmp(p + off, "\r\nzero 0000000000010000 00000000000f0000\r\n", 42) == 0);
    off += 42;
    CHECK(memcmp(p + off, "data 0000000000100000 0000000000100000\r\n", 40) == 0);
    off += 40 + MiB + 2;
    CHECK(memcmp(p + off, "zero 0000000000200000 0000000000200000\r\n", 40) == 0);
    off += 40;
    CHECK(memcmp(p + off, "stop 0000000000000000 0000000000000000\r\n", 40) == 0);
    CHECK(off + 40 == len);
    /* the .chksum holds the decimal adler32 of the whole file, no newline */
    void *chk;
    size_t chklen;
    char want[16];
    snprintf(want, sizeof want, "%lu", adler32(adler32(0, NULL, 0), buf, (uInt)len));
    CHECK(test_read_file(test_path("layout.data.chksum"), &chk, &chklen) == 0);
    CHECK(chklen == strlen(want) && memcmp(chk, want, chklen) == 0);
    free(chk);
    free(buf);
    verify_stream(&g);
    g.compressed = 2;
    CHECK(gen_write(&g) == 0);
    verify_stream(&g);
    free(disk);
}

/* The trailer text of a compressed stream. */
static char *trailer_of(const char *path)
{
    void *buf;
    size_t len;
    if (test_read_file(path, &buf, &len) < 0)
        return NULL;
    const char *p = buf;
    uint64_t tlen = strtoull(p + len - 40 + 22, NULL, 16);
    char *t = strndup(p + len - 42 - tlen, tlen);
    free(buf);
    return t;
}

static void test_large_frames(void)
{
    /* virtbackup-stream(5), COMPRESSION: DATA frames of 32 MiB - 512, 32 MiB, 32 MiB + 512
     * and 96 MiB, around the 32 MiB slice */
    const uint64_t S = STREAM_SLICE_SIZE;
    uint64_t lens[] = {S - 512, S, S + 512, 3 * S};
    uint64_t size = 0;
    for (size_t i = 0; i < 4; i++)
        size += lens[i] + MiB;
    uint8_t *disk = make_disk(size, 7);
    struct gen_extent ext[8];
    uint64_t pos = 0;
    for (size_t i = 0; i < 4; i++) {
        ext[2 * i] = (struct gen_extent){pos, lens[i], false};
        ext[2 * i + 1] = (struct gen_extent){pos + lens[i], MiB, true};
        pos += lens[i] + MiB;
    }
    struct gen_stream g = {.path = test_path("large.data"),
                           .disk = disk,
                           .virtual_size = size,
                           .compressed = STREAM_META_COMPRESSED_FALSE,
                           .extents = ext,
                           .nextents = 8};
    CHECK(gen_write(&g) == 0);
    verify_stream(&g);
    g.compressed = 2;
    CHECK(gen_write(&g) == 0);
    verify_stream(&g);
    void *whole;
    size_t whole_len;
    CHECK(test_read_file(g.path, &whole, &whole_len) == 0);
    /* the same stream delivered in odd pieces (as a read pipeline does) is byte-identical */
    g.piece = 777777;
    CHECK(gen_write(&g) == 0);
    verify_stream(&g);
    void *pieces;
    size_t pieces_len;
    CHECK(test_read_file(g.path, &pieces, &pieces_len) == 0);
    CHECK(pieces_len == whole_len && memcmp(pieces, whole, whole_len) == 0);
    free(whole);
    free(pieces);
    /* plain streams with checksums computed by the caller: same bytes, same .chksum */
    g.compressed = STREAM_META_COMPRESSED_FALSE;
    g.piece = 0;
    CHECK(gen_write(&g) == 0);
    void *plain, *plain_sum, *summed, *summed_sum;
    size_t plain_len, plain_sum_len, summed_len, summed_sum_len;
    CHECK(test_read_file(g.path, &plain, &plain_len) == 0);
    CHECK(test_read_file(test_path("large.data.chksum"), &plain_sum, &plain_sum_len) == 0);
    g.piece = 1000000;
    g.summed = true;
    CHECK(gen_write(&g) == 0);
    CHECK(test_read_file(g.path, &summed, &summed_len) == 0);
    CHECK(test_read_file(test_path("large.data.chksum"), &summed_sum, &summed_sum_len) == 0);
    CHECK(plain_len == summed_len && memcmp(plain, summed, plain_len) == 0);
    CHECK(plain_sum_len == summed_sum_len && memcmp(plain_sum, summed_sum, plain_sum_len) == 0);
    free(plain);
    free(plain_sum);
    free(summed);
    free(summed_sum);
    g.summed = false;
    g.compressed = 2;
    g.piece = 0;
    CHECK(gen_write(&g) == 0);
    /* through the async sink (checksum and writes on another thread): the same bytes */
    void *sync_data, *sync_sum, *async_data, *async_sum;
    size_t sync_len, sync_sum_len, async_len, async_sum_len;
    CHECK(test_read_file(g.path, &sync_data, &sync_len) == 0);
    CHECK(test_read_file(test_path("large.data.chksum"), &sync_sum, &sync_sum_len) == 0);
    g.async = true;
    g.piece = 333333;
    CHECK(gen_write(&g) == 0);
    CHECK(test_read_file(g.path, &async_data, &async_len) == 0);
    CHECK(test_read_file(test_path("large.data.chksum"), &async_sum, &async_sum_len) == 0);
    CHECK(sync_len == async_len && memcmp(sync_data, async_data, sync_len) == 0);
    CHECK(sync_sum_len == async_sum_len && memcmp(sync_sum, async_sum, sync_sum_len) == 0);
    free(sync_data);
    free(sync_sum);
    free(async_data);
    free(async_sum);
    g.async = false;
    g.piece = 0;
    /* below 32 MiB an integer, from 32 MiB on {"total": [one size per 32 MiB slice]} */
    char *t = trailer_of(g.path);
    CHECK(t != NULL);
    unsigned long long a, tot1, s1, tot2, s2a, s2b, tot3, s3a, s3b, s3c;
    int n = t ? sscanf(t,
                       "[%llu, {\"%llu\": [%llu]}, {\"%llu\": [%llu, %llu]}, {\"%llu\": [%llu, "
                       "%llu, %llu]}]",
                       &a, &tot1, &s1, &tot2, &s2a, &s2b, &tot3, &s3a, &s3b, &s3c)
              : 0;
    CHECK_MSG(n == 10, "trailer \"%s\"", t ? t : "(null)");
    if (n == 10) {
        CHECK(tot1 == s1 && tot2 == s2a + s2b && tot3 == s3a + s3b + s3c);
    }
    free(t);
    free(disk);
}

/* A stream source over memory, so hostile variants need no file I/O. */
struct mem_source {
    struct stream_source base;
    const uint8_t *data;
};

static ssize_t mem_pread(struct stream_source *src, void *buf, size_t len, uint64_t off,
                         struct vb_error *err)
{
    (void)err;
    struct mem_source *m = (struct mem_source *)src;
    if (off >= src->size)
        return 0;
    size_t n = src->size - off < len ? (size_t)(src->size - off) : len;
    memcpy(buf, m->data + off, n);
    return (ssize_t)n;
}

static void mem_free(struct stream_source *src)
{
    free(src->name);
    free(src);
}

static const struct stream_source_ops mem_ops = {.pread = mem_pread, .free = mem_free};

static struct stream_source *mem_source(const void *data, size_t len)
{
    struct mem_source *m = calloc(1, sizeof *m);
    m->base.ops = &mem_ops;
    m->base.name = strdup("bad.data");
    m->base.size = len;
    m->data = data;
    return &m->base;
}

/* The hostile tests decode a file once per byte of it: one destination buffer for all of
 * them, as a fresh one per extent got fresh pages each time under ASan (its allocator maps
 * and unmaps large blocks): minutes of page faults. */
static uint8_t *readable_buf;
static size_t readable_cap;

/* Every truncation of a good file must be refused, by the index or by reading the data. */
static int fully_readable(const void *data, size_t len, struct vb_error *err)
{
    struct stream_index *idx = stream_index_build(mem_source(data, len), err);
    if (!idx)
        return 0;
    struct stream_read_buf buf = {0};
    int ok = 1;
    for (size_t e = 0; ok && e < idx->nextents; e++) {
        size_t need = idx->extents[e].length;
        if (need > readable_cap) {
            uint8_t *p = realloc(readable_buf, need);
            if (!p) {
                ok = 0;
                vb_error_set(err, "out of memory");
                break;
            }
            readable_buf = p;
            readable_cap = need;
        }
        ok = read_extent_all(idx, e, readable_buf, &buf, err) == 0;
    }
    stream_read_buf_free(&buf);
    stream_index_free(idx);
    return ok;
}

static void hostile_for(int compressed)
{
    uint64_t size = 1 * MiB;
    uint8_t *disk = make_disk(size, 3);
    struct gen_extent ext[] = {{0, 8192, false},      {8192, 57344, true},
                               {65536, 70000, false}, {135536, 400000, true},
                               {600000, 1000, false}, {700000, 348576, true}};
    struct gen_stream g = {.path = test_path("orig.data"),
                           .disk = disk,
                           .virtual_size = size,
                           .compressed = compressed,
                           .incremental = false,
                           .extents = ext,
                           .nextents = 6};
    CHECK(gen_write(&g) == 0);
    void *orig;
    size_t len;
    struct vb_error err = {0};
    CHECK(test_read_file(g.path, &orig, &len) == 0);
    CHECK(fully_readable(orig, len, &err));
    uLong good_sum = adler32(adler32(0, NULL, 0), orig, (uInt)len);

    /* truncation at every byte: nothing shorter than the whole file is accepted */
    int accepted = 0;
    for (size_t cut = 0; cut < len; cut++)
        accepted += fully_readable(orig, cut, &err);
    CHECK_MSG(accepted == 0, "%d truncated files accepted (compressed=%d)", accepted, compressed);

    /* one flipped bit anywhere is found by the structure, lz4 or the adler32 */
    int missed = 0, structural = 0;
    uint8_t *copy = malloc(len);
    for (size_t i = 0; i < len; i++) {
        memcpy(copy, orig, len);
        copy[i] ^= (uint8_t)(1u << (i % 8));
        int ok = fully_readable(copy, len, &err);
        structural += !ok;
        missed += ok && adler32(adler32(0, NULL, 0), copy, (uInt)len) == good_sum;
    }
    CHECK_MSG(missed == 0, "%d bit flips undetected (compressed=%d)", missed, compressed);
    CHECK(structural > 0);

    /* targeted corruptions with the error message naming file and offset */
    memcpy(copy, orig, len);
    memcpy(copy, "mota", 4);
    CHECK(!fully_readable(copy, len, &err));
    CHECK_MSG(strstr(err.msg, "bad.data: offset 0:") != NULL, "%s", err.msg);

    /* an unknown frame kind in the middle */
    uint64_t mlen = strtoull((char *)orig + 22, NULL, 16);
    size_t first = 40 + mlen + 2;
    memcpy(copy, orig, len);
    memcpy(copy + first, "blob", 4);
    CHECK(!fully_readable(copy, len, &err));
    char want[64];
    snprintf(want, sizeof want, "offset %zu: unknown frame kind", first);
    CHECK_MSG(strstr(err.msg, want) != NULL, "%s", err.msg);

    /* the META dataSize disagreeing with the frames */
    memcpy(copy, orig, len);
    char *ds = strstr((char *)copy, "\"dataSize\": ");
    ds[12] = ds[12] == '9' ? '8' : (char)(ds[12] + 1);
    CHECK(!fully_readable(copy, len, &err));
    CHECK_MSG(strstr(err.msg, "dataSize") != NULL, "%s", err.msg);

    if (compressed != STREAM_META_COMPRESSED_FALSE) {
        /* a trailer that lists one frame too few */
        char *t = trailer_of(g.path);
        char *comma = strrchr(t, ',');
        CHECK(comma != NULL);
        if (comma) {
            size_t tlen = strlen(t), keep = (size_t)(comma - t);
            size_t body = len - 42 - tlen;
            memcpy(copy, orig, body);
            memcpy(copy + body, t, keep);
            memcpy(copy + body + keep, "]\r\n", 3);
            char hdr[41];
            stream_frame_format(hdr, STREAM_FRAME_COMP, 0, keep + 1);
            memcpy(copy + body + keep + 3, hdr, 40);
            CHECK(!fully_readable(copy, body + keep + 43, &err));
            CHECK_MSG(strstr(err.msg, "trailer") != NULL, "%s", err.msg);
        }
        free(t);
    }
    free(copy);
    free(orig);
    free(disk);
}

static void test_hostile(void)
{
    hostile_for(STREAM_META_COMPRESSED_FALSE);
    hostile_for(2);
    free(readable_buf);
    readable_buf = NULL;
    readable_cap = 0;
}

static void test_writer_rules(void)
{
    struct vb_error err = {0};
    struct stream_meta meta;
    stream_meta_init(&meta);
    meta.virtual_size = MiB;
    meta.data_size = 4096;
    strcpy(meta.disk_name, "vda");
    strcpy(meta.checkpoint_name, "virtnbdbackup.0");
    const char *path = test_path("rules.data");
    struct stream_sink *sink = stream_sink_file_open(path, &err);
    struct stream_writer *w = stream_writer_new(sink, &meta, &err);
    CHECK(w != NULL);
    uint8_t data[4096] = {1};
    CHECK(stream_writer_zero(w, 8192, 4096, &err) == 0);
    CHECK(stream_writer_zero(w, 4096, 4096, &err) < 0);      /* out of order */
    CHECK(stream_writer_data(w, MiB, data, 4096, &err) < 0); /* beyond the disk */
    CHECK(stream_writer_data(w, 16384, data, 2048, &err) == 0);
    CHECK(stream_writer_finish(w, NULL, &err) < 0); /* dataSize mismatch */
    CHECK(strstr(err.msg, "dataSize") != NULL);
    stream_writer_free(w); /* aborts */
    CHECK(access(path, F_OK) != 0);
    char partial[4200];
    snprintf(partial, sizeof partial, "%s.partial", path);
    CHECK(access(partial, F_OK) != 0);

    /* never overwrite a committed file */
    struct gen_extent ext[] = {{0, 4096, false}};
    uint8_t *disk = make_disk(MiB, 9);
    struct gen_stream g = {.path = path,
                           .disk = disk,
                           .virtual_size = MiB,
                           .compressed = STREAM_META_COMPRESSED_FALSE,
                           .extents = ext,
                           .nextents = 1};
    CHECK(gen_write(&g) == 0);
    CHECK(stream_sink_file_open(path, &err) == NULL);
    CHECK(strstr(err.msg, "refusing to overwrite") != NULL);
    free(disk);
}

static void test_lz4_blocks(void)
{
    /* our frames: independent 64 KiB blocks with checksums and content size */
    size_t n = 300000;
    uint8_t *src = make_disk(n, 11);
    size_t cap = stream_lz4_bound(n);
    uint8_t *dst = malloc(cap);
    struct vb_error err = {0};
    size_t c = stream_lz4_compress(src, n, 2, dst, cap, &err);
    CHECK(c > 0);
    struct stream_lz4_layout lay;
    CHECK(stream_lz4_parse_header(dst, c, &lay, &err) == 15);
    CHECK(lay.independent && lay.block_checksum && lay.content_checksum);
    CHECK(lay.block_max == 65536 && lay.content_size == n);
    uint8_t *back = malloc(n);
    CHECK(stream_lz4_decompress(dst, c, back, n, &err) == 0 && memcmp(back, src, n) == 0);
    CHECK(stream_lz4_decompress(dst, c, back, n - 1, &err) < 0); /* wrong expected size */
    CHECK(stream_lz4_decompress(dst, c - 1, back, n, &err) < 0); /* truncated */
    /* a wrong content checksum: refused, unless the caller checks the file otherwise */
    dst[c - 1] ^= 0x01;
    CHECK(stream_lz4_decompress(dst, c, back, n, &err) < 0);
    memset(back, 0, n);
    CHECK(stream_lz4_decompress_opts(dst, c, back, n, false, &err) == 0 &&
          memcmp(back, src, n) == 0);
    dst[c - 1] ^= 0x01;
    dst[c / 2] ^= 0x10;
    CHECK(stream_lz4_decompress(dst, c, back, n, &err) < 0); /* checksum */
    free(src);
    free(dst);
    free(back);
}

/* A stream version 1 file (before compression existed): "stream-version", no
 * compressed/compressionMethod keys, parentCheckpoint false. */
static void test_version1(void)
{
    const char *json = "{\"virtualSize\": 1048576, \"dataSize\": 4096, \"date\": "
                       "\"2021-01-01T00:00:00\", \"diskName\": \"sda\", \"diskFormat\": "
                       "\"qcow2\", \"checkpointName\": \"virtnbdbackup.0\", "
                       "\"parentCheckpoint\": false, \"incremental\": false, "
                       "\"stream-version\": 1}";
    static uint8_t file[8192];
    size_t n = 0;
    char hdr[STREAM_FRAME_LEN];
    stream_frame_format(hdr, STREAM_FRAME_META, 0, strlen(json));
    memcpy(file + n, hdr, 40);
    n += 40;
    memcpy(file + n, json, strlen(json));
    n += strlen(json);
    memcpy(file + n, "\r\n", 2);
    n += 2;
    stream_frame_format(hdr, STREAM_FRAME_DATA, 65536, 4096);
    memcpy(file + n, hdr, 40);
    n += 40;
    memset(file + n, 0x77, 4096);
    n += 4096;
    memcpy(file + n, "\r\n", 2);
    n += 2;
    stream_frame_format(hdr, STREAM_FRAME_STOP, 0, 0);
    memcpy(file + n, hdr, 40);
    n += 40;
    CHECK(test_write_file(test_path("v1.data"), file, n) == 0);
    struct vb_error err = {0};
    struct stream_index *idx = stream_index_open(test_path("v1.data"), &err);
    CHECK_MSG(idx != NULL, "%s", err.msg);
    if (!idx)
        return;
    CHECK(idx->meta.stream_version == 1 && idx->meta.parent_is_false && !idx->compressed);
    CHECK(idx->nextents == 1 && idx->extents[0].start == 65536 && idx->data_bytes == 4096);
    uint8_t got[4096];
    struct stream_read_buf rb = {0};
    CHECK(stream_index_read(idx, 0, 0, sizeof got, got, &rb, &err) == 0);
    CHECK(got[0] == 0x77 && got[4095] == 0x77);
    stream_read_buf_free(&rb);
    stream_index_free(idx);
}

int main(void)
{
    test_version1();
    test_layout();
    test_large_frames();
    test_hostile();
    test_writer_rules();
    test_lz4_blocks();
    return test_finish("test_stream");
}
