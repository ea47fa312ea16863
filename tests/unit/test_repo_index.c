/* src/repo: the disk/blob index of virtbackup-repository(5) (sizes, the short last chunk,
 * bytes on disk, strict decoding, truncation), object keys, snapshot ids and ISO times. */
#include <stdlib.h>
#include <string.h>

#include "index.h"
#include "keys.h"
#include "object.h"
#include "testutil.h"
#include "timefmt.h"

static void refused(const void *raw, size_t len, const char *want, const char *what)
{
    struct repo_index idx;
    struct vb_error err = {0};
    int rc = repo_index_decode(raw, len, &idx, &err);
    CHECK_MSG(rc == -1, "%s: accepted", what);
    if (rc == 0)
        repo_index_free(&idx);
    else
        CHECK_MSG(strstr(err.msg, want) != NULL, "%s: message \"%s\" lacks \"%s\"", what, err.msg,
                  want);
}

static void test_sizes(void)
{
    struct vb_error err = {0};
    struct repo_index idx;
    uint32_t cs = 64 << 10;
    CHECK(repo_index_init(&idx, 0, cs, &err) == 0 && idx.n == 0);
    repo_index_free(&idx);
    CHECK(repo_index_init(&idx, 1, cs, &err) == 0 && idx.n == 1);
    CHECK(repo_index_chunk_len(&idx, 0) == 1 && repo_index_chunk_len(&idx, 1) == 0);
    repo_index_free(&idx);
    CHECK(repo_index_init(&idx, 10ull * cs, cs, &err) == 0 && idx.n == 10);
    CHECK(repo_index_chunk_len(&idx, 9) == cs);
    repo_index_free(&idx);
    CHECK(repo_index_init(&idx, 10ull * cs + 5, cs, &err) == 0 && idx.n == 11);
    CHECK(repo_index_chunk_len(&idx, 9) == cs && repo_index_chunk_len(&idx, 10) == 5);
    CHECK(repo_digest_is_zero(&idx.digests[10]));
    repo_index_free(&idx);
    /* chunk sizes: powers of two from 64 KiB to 64 MiB */
    CHECK(repo_chunk_size_valid(64 << 10) && repo_chunk_size_valid(64 << 20));
    CHECK(!repo_chunk_size_valid(32 << 10) && !repo_chunk_size_valid(128 << 20));
    CHECK(!repo_chunk_size_valid((4 << 20) + 4096) && !repo_chunk_size_valid(0));
    CHECK(repo_index_init(&idx, 1, 3 << 20, &err) == -1);
    CHECK_MSG(strstr(err.msg, "chunk size 3145728") != NULL, "%s", err.msg);
    /* one index object holds 2^21 - 1 digests */
    uint64_t max = (REPO_OBJECT_MAX_RAW - 24) / 32;
    CHECK(max == (1u << 21) - 1);
    CHECK(repo_index_fits(max * cs, cs) && !repo_index_fits(max * cs + 1, cs));
    CHECK(repo_index_init(&idx, max * cs + 1, cs, &err) == -1);
    CHECK_MSG(strstr(err.msg, "more than the") != NULL, "%s", err.msg);
}

static void test_round_trip(void)
{
    struct vb_error err = {0};
    struct repo_index idx, back;
    uint32_t cs = 4 << 20;
    uint64_t size = 7ull * cs + 12345; /* 8 chunks, the last one short */
    CHECK(repo_index_init(&idx, size, cs, &err) == 0 && idx.n == 8);
    for (size_t i = 0; i < idx.n; i++)
        if (i != 3) /* chunk 3 all zero */
            test_fill(idx.digests[i].b, 32, i + 1);
    void *raw;
    size_t len;
    CHECK(repo_index_encode(&idx, &raw, &len, &err) == 0);
    CHECK(len == 24 + 8 * 32);
    unsigned char *b = raw;
    /* the byte table: magic with its NUL, size and chunk size little-endian, reserved */
    CHECK(memcmp(b, "VBRIDX1\0", 8) == 0);
    CHECK(b[8] == (size & 0xff) && b[9] == (size >> 8 & 0xff) && b[11] == (size >> 24 & 0xff));
    CHECK(b[16] == 0 && b[17] == 0 && b[18] == 0x40 && b[19] == 0);
    CHECK(b[20] == 0 && b[23] == 0);
    CHECK(memcmp(b + 24 + 32, idx.digests[1].b, 32) == 0);
    CHECK(repo_index_decode(raw, len, &back, &err) == 0);
    CHECK(back.virtual_size == size && back.chunk_size == cs && back.n == 8);
    CHECK(memcmp(back.digests, idx.digests, 8 * 32) == 0);
    CHECK(repo_digest_is_zero(&back.digests[3]));
    repo_index_free(&back);

    /* through the envelope: an index object, and the short last chunk as a chunk object */
    void *obj, *raw2;
    size_t obj_len, raw2_len;
    repo_digest d;
    repo_digest_of(raw, len, &d);
    CHECK(repo_object_encode(REPO_KIND_INDEX, raw, len, REPO_COMP_ZSTD, 1, &obj, &obj_len, &err) ==
          0);
    CHECK(repo_object_decode(REPO_KIND_INDEX, obj, obj_len, &d, &raw2, &raw2_len, &err) == 0);
    CHECK(raw2_len == len && memcmp(raw2, raw, len) == 0);
    free(obj);
    free(raw2);
    uint32_t last = repo_index_chunk_len(&idx, 7);
    CHECK(last == 12345);
    unsigned char *chunk = malloc(last);
    test_fill(chunk, last, 99);
    repo_digest_of(chunk, last, &d);
    CHECK(repo_object_encode(REPO_KIND_CHUNK, chunk, last, REPO_COMP_LZ4, 0, &obj, &obj_len,
                             &err) == 0);
    CHECK(repo_object_decode(REPO_KIND_CHUNK, obj, obj_len, &d, &raw2, &raw2_len, &err) == 0);
    CHECK(raw2_len == last && memcmp(raw2, chunk, last) == 0);
    free(raw2);
    free(obj);
    free(chunk);

    /* strict decoding */
    unsigned char *m = malloc(len + 32);
#define MUTATE(stmt, l, want, what)                                                                \
    do {                                                                                           \
        memcpy(m, raw, len);                                                                       \
        stmt;                                                                                      \
        refused(m, l, want, what);                                                                 \
    } while (0)
    MUTATE(m[7] = '1', len, "bad magic", "magic's NUL");
    MUTATE(m[0] = 'X', len, "bad magic", "magic");
    MUTATE(m[21] = 1, len, "reserved", "reserved");
    MUTATE(m[18] = 0x30, len, "chunk size", "chunk size not a power of two");
    MUTATE((m[17] = 0x80, m[18] = 0), len, "chunk size", "chunk size 32 KiB");
    MUTATE((m[18] = 0, m[19] = 0x08), len, "chunk size", "chunk size 128 MiB");
    MUTATE(m[10] ^= 0x80, len, "need", "virtual size 8 MiB smaller");
    MUTATE(m[11] += 0x40, len, "need", "a chunk more than digests");
    MUTATE(memset(m + len, 0, 32), len + 32, "need", "a digest too many");
    MUTATE(memset(m + len, 0, 32), len + 1, "need", "a partial digest");
    MUTATE((memset(m + 8, 0, 8), m[15] = 0x40), len, "more than the", "an exabyte of chunks");
#undef MUTATE
    for (size_t cut = 0; cut < len; cut++)
        refused(raw, cut, cut < 24 ? "shorter than its" : "need", "truncated");
    free(m);
    free(raw);
    repo_index_free(&idx);
}

static void test_keys(void)
{
    repo_digest d;
    for (int i = 0; i < 32; i++)
        d.b[i] = (unsigned char)(0xa0 + i);
    char key[80], hex[65];
    repo_digest_hex(&d, hex);
    repo_chunk_key(&d, key);
    CHECK(strncmp(key, "chunks/a0/a0a1a2", 16) == 0 && strcmp(key + 10, hex) == 0);
    repo_index_key(&d, key);
    CHECK(strncmp(key, "indexes/", 8) == 0 && strcmp(key + 8, hex) == 0);

    const char *uuid = "6c1b9c4e-0e0b-4a5e-9f8a-1d2c3b4a5e6f";
    char id[32], later[32], skey[REPO_KEY_MAX];
    repo_snapshot_id_new(1765130400, id); /* 2025-12-07T18:00:00Z */
    CHECK_MSG(strncmp(id, "20251207T180000Z-", 17) == 0 && strlen(id) == 25, "%s", id);
    CHECK(repo_snapshot_id_valid(id));
    repo_snapshot_id_new(1765130401, later);
    CHECK(strcmp(id, later) < 0); /* ids sort by time */
    CHECK(repo_snapshot_key(uuid, id, skey) == 0);
    CHECK(strncmp(skey, "snapshots/6c1b9c4e-", 19) == 0 && strstr(skey, id) &&
          strcmp(skey + strlen(skey) - 5, ".json") == 0);
    const char *bad_ids[] = {
        "20251207T180000Z-0123456",  "20251207T180000Z-0123456G", "20251307T180000Z-01234567",
        "20250230T180000Z-01234567", "20251207T240000Z-01234567", "20251207 180000Z-01234567",
        "../../../../../../../../x", "20251207T180000Z-ABCDEF01", "20251207T180000Z-012345670"};
    for (size_t i = 0; i < sizeof(bad_ids) / sizeof(bad_ids[0]); i++) {
        CHECK_MSG(!repo_snapshot_id_valid(bad_ids[i]), "%s", bad_ids[i]);
        CHECK(repo_snapshot_key(uuid, bad_ids[i], skey) == -1);
    }
    CHECK(repo_snapshot_id_valid("20240229T235959Z-deadbeef")); /* a leap day */
    const char *bad_uuids[] = {"6C1B9C4E-0E0B-4A5E-9F8A-1D2C3B4A5E6F",
                               "6c1b9c4e-0e0b-4a5e-9f8a-1d2c3b4a5e6", "../../etc/passwd",
                               "6c1b9c4e00e0b-4a5e-9f8a-1d2c3b4a5e6f",
                               "6c1b9c4e-0e0b-4a5e-9f8a-1d2c3b4a5e6f0"};
    for (size_t i = 0; i < sizeof(bad_uuids) / sizeof(bad_uuids[0]); i++) {
        CHECK_MSG(!repo_uuid_valid(bad_uuids[i]), "%s", bad_uuids[i]);
        CHECK(repo_snapshot_key(bad_uuids[i], id, skey) == -1);
    }
}

static void test_times(void)
{
    char s[REPO_TIME_MAX];
    time_t t;
    repo_time_format(1765130400, false, s);
    CHECK_MSG(strcmp(s, "2025-12-07T18:00:00+00:00") == 0, "%s", s);
    repo_time_format(1765130400, true, s);
    CHECK(strcmp(s, "2025-12-07T18:00:00Z") == 0);
    CHECK(repo_time_parse("2025-12-07T18:00:00Z", &t) == 0 && t == 1765130400);
    CHECK(repo_time_parse("2025-12-07T19:30:00+01:30", &t) == 0 && t == 1765130400);
    CHECK(repo_time_parse("2025-12-07T13:00:00-05:00", &t) == 0 && t == 1765130400);
    const char *bad[] = {"2025-12-07T18:00:00",      "2025-12-07 18:00:00Z",
                         "2025-12-07T18:00:00+0100", "2025-13-07T18:00:00Z",
                         "2025-02-29T18:00:00Z",     "2025-12-07T18:60:00Z",
                         "2025-12-07T18:00:00Zjunk", "2025-12-07T18:00:00+24:00",
                         "2025-12-07T18:00:00.5Z",   ""};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        CHECK_MSG(repo_time_parse(bad[i], &t) == -1, "%s accepted", bad[i]);
}

int main(void)
{
    test_sizes();
    test_round_trip();
    test_keys();
    test_times();
    return test_finish("test_repo_index");
}
