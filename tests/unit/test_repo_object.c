/* src/repo: SHA-256 (known answers, incremental), hex digests, and the object envelope of
 * virtbackup-repository(5): round trips for every compression (empty, incompressible and
 * maximum-size content), and every damage a reader must refuse, each with its message. */
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "digest.h"
#include "object.h"
#include "testutil.h"

static void put32(unsigned char *p, uint32_t v)
{
    for (int i = 0; i < 4; i++)
        p[i] = (unsigned char)(v >> (8 * i));
}

static uint32_t get32(const unsigned char *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

/* recomputes the header crc after a field was changed on purpose */
static void fix_header_crc(unsigned char *o)
{
    put32(o + 20, (uint32_t)crc32(0, o, 20));
}

static void check_hex(const void *data, size_t len, const char *want)
{
    repo_digest d;
    char hex[65];
    repo_digest_of(data, len, &d);
    repo_digest_hex(&d, hex);
    CHECK_MSG(strcmp(hex, want) == 0, "SHA-256 of %zu bytes: %s, want %s", len, hex, want);
}

static void test_sha256(void)
{
    /* FIPS 180-2 examples */
    check_hex("", 0, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
    check_hex("abc", 3, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    const char *two = "abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq";
    check_hex(two, strlen(two), "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
    char *million = malloc(1000000);
    memset(million, 'a', 1000000);
    check_hex(million, 1000000, "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0");

    /* incremental, in uneven pieces, equals one shot */
    struct vb_error err = {0};
    struct repo_digest_ctx *c = repo_digest_begin(&err);
    CHECK(c != NULL);
    size_t pieces[] = {1, 63, 64, 65, 999807};
    for (size_t i = 0, off = 0; i < 5; off += pieces[i], i++)
        repo_digest_update(c, million + off, pieces[i]);
    repo_digest inc, one;
    repo_digest_end(c, &inc);
    repo_digest_of(million, 1000000, &one);
    CHECK(repo_digest_equal(&inc, &one));
    free(million);
}

static void test_hex(void)
{
    repo_digest d, back;
    test_fill(d.b, sizeof(d.b), 7);
    char hex[65];
    repo_digest_hex(&d, hex);
    CHECK(strlen(hex) == 64);
    CHECK(repo_digest_parse(hex, &back) == 0 && repo_digest_equal(&d, &back));
    for (char *p = hex; *p; p++)
        if (*p >= 'a' && *p <= 'f')
            *p = (char)(*p - 'a' + 'A');
    CHECK(repo_digest_parse(hex, &back) == 0 && repo_digest_equal(&d, &back));
    char bad[70];
    strcpy(bad, hex);
    bad[63] = '\0'; /* 63 digits */
    CHECK(repo_digest_parse(bad, &back) == -1);
    strcpy(bad, hex);
    strcat(bad, "0"); /* 65 */
    CHECK(repo_digest_parse(bad, &back) == -1);
    strcpy(bad, hex);
    bad[10] = 'g';
    CHECK(repo_digest_parse(bad, &back) == -1);
    repo_digest zero = {{0}};
    CHECK(repo_digest_is_zero(&zero));
    zero.b[31] = 1;
    CHECK(!repo_digest_is_zero(&zero));
}

/* encode + decode; returns the compression the object was stored with, or -1 */
static int round_trip(const void *raw, size_t len, enum repo_compression c, int level)
{
    struct vb_error err = {0};
    void *obj = NULL, *back = NULL;
    size_t obj_len = 0, back_len = 0;
    if (repo_object_encode(REPO_KIND_CHUNK, raw, len, c, level, &obj, &obj_len, &err) < 0) {
        CHECK_MSG(0, "encode of %zu bytes (%s): %s", len, repo_compression_name(c), err.msg);
        return -1;
    }
    repo_digest d;
    repo_digest_of(raw, len, &d);
    int stored = ((unsigned char *)obj)[6];
    uint32_t rs = 0, ss = 0;
    CHECK(repo_object_check_header(obj, REPO_OBJECT_HEADER_SIZE, obj_len, REPO_KIND_CHUNK, &rs, &ss,
                                   &err) == 0);
    CHECK(rs == len && ss + REPO_OBJECT_HEADER_SIZE == obj_len);
    CHECK(stored == REPO_COMP_NONE ? ss == len : ss < len);
    if (repo_object_decode(REPO_KIND_CHUNK, obj, obj_len, &d, &back, &back_len, &err) < 0) {
        CHECK_MSG(0, "decode of %zu bytes (%s): %s", len, repo_compression_name(c), err.msg);
        stored = -1;
    } else {
        CHECK(back_len == len && (len == 0 || memcmp(back, raw, len) == 0));
    }
    /* into a caller's buffer: exactly large enough decodes, one byte short is refused */
    void *into = malloc(len ? len : 1);
    size_t into_len = 0;
    CHECK(repo_object_decode_into(REPO_KIND_CHUNK, obj, obj_len, &d, into, len, &into_len, &err) ==
          0);
    CHECK(into_len == len && (len == 0 || memcmp(into, raw, len) == 0));
    if (len > 0)
        CHECK(repo_object_decode_into(REPO_KIND_CHUNK, obj, obj_len, &d, into, len - 1, &into_len,
                                      &err) == -1 &&
              strstr(err.msg, "more than the") != NULL);
    free(into);
    free(obj);
    free(back);
    return stored;
}

static void test_round_trips(void)
{
    size_t big = REPO_OBJECT_MAX_RAW;
    unsigned char *text = malloc(big), *random = malloc(big);
    for (size_t i = 0; i < big; i++)
        text[i] = (unsigned char)("virtbackup repository "[i % 22] ^ (i >> 16 & 3));
    test_fill(random, big, 42);
    enum repo_compression cs[] = {REPO_COMP_NONE, REPO_COMP_ZSTD, REPO_COMP_LZ4};
    for (int k = 0; k < 3; k++) {
        enum repo_compression c = cs[k];
        /* empty and one-byte content cannot shrink */
        CHECK(round_trip(text, 0, c, 1) == REPO_COMP_NONE);
        CHECK(round_trip(text, 1, c, 1) == REPO_COMP_NONE);
        /* a 4 MiB chunk, compressible, stored compressed unless none asked */
        CHECK(round_trip(text, 4u << 20, c, 1) == (int)c);
        /* incompressible: stored as none */
        CHECK(round_trip(random, 4u << 20, c, 1) == REPO_COMP_NONE);
        /* a short last chunk (not a power of two) */
        CHECK(round_trip(text, 4097, c, 3) == (int)c);
        /* the largest content an object holds */
        CHECK(round_trip(text, big, c, 1) == (int)c);
        CHECK(round_trip(random, big, c, 1) == REPO_COMP_NONE);
    }
    /* one byte over the limit, an unknown compression, a zstd level out of range */
    struct vb_error err = {0};
    void *obj = NULL;
    size_t obj_len;
    unsigned char *over = malloc(big + 1);
    memset(over, 0, big + 1);
    CHECK(repo_object_encode(REPO_KIND_CHUNK, over, big + 1, REPO_COMP_ZSTD, 1, &obj, &obj_len,
                             &err) == -1);
    CHECK_MSG(strstr(err.msg, "more than") != NULL, "%s", err.msg);
    CHECK(repo_object_encode(REPO_KIND_CHUNK, text, 10, (enum repo_compression)3, 1, &obj, &obj_len,
                             &err) == -1);
    CHECK(repo_object_encode(REPO_KIND_CHUNK, text, 10, REPO_COMP_ZSTD, 0, &obj, &obj_len, &err) ==
          -1);
    CHECK(repo_object_encode(7, text, 10, REPO_COMP_ZSTD, 1, &obj, &obj_len, &err) == -1);
    free(over);
    free(text);
    free(random);
}

/* decode of o (len bytes) fails with a message holding want */
static void refused(const unsigned char *o, size_t len, const repo_digest *d, const char *want,
                    const char *what)
{
    struct vb_error err = {0};
    void *raw = NULL;
    size_t raw_len;
    int rc = repo_object_decode(REPO_KIND_CHUNK, o, len, d, &raw, &raw_len, &err);
    CHECK_MSG(rc == -1, "%s: accepted", what);
    if (rc == 0)
        free(raw);
    else
        CHECK_MSG(strstr(err.msg, want) != NULL, "%s: message \"%s\" lacks \"%s\"", what, err.msg,
                  want);
}

static void test_corruption(enum repo_compression c)
{
    unsigned char content[3000];
    for (size_t i = 0; i < sizeof(content); i++)
        content[i] = (unsigned char)(i % 7 == 0 ? i : 'x');
    repo_digest d;
    repo_digest_of(content, sizeof(content), &d);
    struct vb_error err = {0};
    void *obj;
    size_t len;
    CHECK(repo_object_encode(REPO_KIND_CHUNK, content, sizeof(content), c, 1, &obj, &len, &err) ==
          0);
    CHECK(((unsigned char *)obj)[6] == c);
    unsigned char *o = malloc(len + 1), *good = obj;

#define MUTATE(stmt, want, what)                                                                   \
    do {                                                                                           \
        memcpy(o, good, len);                                                                      \
        stmt;                                                                                      \
        fix_header_crc(o);                                                                         \
        refused(o, len, &d, want, what);                                                           \
    } while (0)
    MUTATE(o[0] = 'X', "bad magic", "magic");
    MUTATE(o[4] = 2, "envelope version 2", "version");
    MUTATE(o[5] = REPO_KIND_INDEX, "kind 2", "kind");
    MUTATE(o[6] = 3, "unknown compression 3", "compression");
    /* a plain object flagged sealed: its sizes no longer fit (uncompressed), or there is no key
     * to open it (compressed) */
    MUTATE(o[7] = 1, c == REPO_COMP_NONE ? "differs" : "no key", "flags: encrypted");
    MUTATE(o[7] = 4, "unknown flags", "flags");
    MUTATE(put32(o + 8, REPO_OBJECT_MAX_RAW + 1), "above the limit", "raw size over the limit");
    MUTATE(put32(o + 12, get32(o + 12) + 1),
           c == REPO_COMP_NONE ? "differs from raw size" : "header says", "stored size");
    MUTATE(put32(o + 16, get32(o + 16) ^ 1), "payload checksum", "payload crc");
    if (c == REPO_COMP_NONE) {
        MUTATE(put32(o + 8, get32(o + 8) - 1), "differs from raw size", "raw size");
        MUTATE(o[6] = REPO_COMP_ZSTD, "not smaller", "compression of a raw payload");
    } else {
        MUTATE(put32(o + 8, get32(o + 8) + 1), "decompress to its", "raw size");
        MUTATE(put32(o + 8, get32(o + 8) - 1), "decompress to its", "raw size");
        MUTATE(o[6] = (c == REPO_COMP_ZSTD ? REPO_COMP_LZ4 : REPO_COMP_ZSTD), "decompress",
               "other compression");
        MUTATE(o[6] = REPO_COMP_NONE, "differs from raw size", "compressed stored as none");
    }
#undef MUTATE
    /* any header byte changed without its crc */
    for (size_t i = 4; i < REPO_OBJECT_HEADER_SIZE; i++) {
        memcpy(o, good, len);
        o[i] ^= 0x10;
        refused(o, len, &d, "header checksum", "header byte");
    }
    /* payload bytes, with and without their crc fixed */
    for (size_t i = REPO_OBJECT_HEADER_SIZE; i < len; i += 97) {
        memcpy(o, good, len);
        o[i] ^= 0x01;
        refused(o, len, &d, "payload checksum", "payload byte");
        put32(o + 16, (uint32_t)crc32(0, o + 24, (uInt)(len - 24)));
        fix_header_crc(o);
        refused(o, len, &d, c == REPO_COMP_NONE ? "content digest" : "", "payload byte, crc fixed");
    }
    /* truncation at every byte, and one byte too many */
    for (size_t cut = 0; cut < len; cut++)
        refused(good, cut, &d, cut < 24 ? "truncated header" : "header says", "truncated");
    memcpy(o, good, len);
    o[len] = 0;
    refused(o, len + 1, &d, "header says", "extended");
    /* the right object, another digest */
    repo_digest other = d;
    other.b[5] ^= 1;
    refused(good, len, &other, "content digest", "digest");
    /* a chunk is not an index */
    void *raw;
    size_t raw_len;
    CHECK(repo_object_decode(REPO_KIND_INDEX, good, len, NULL, &raw, &raw_len, &err) == -1);
    CHECK_MSG(strstr(err.msg, "index: the header says kind 1 (chunk)") != NULL, "%s", err.msg);
    /* the header alone: what "the object exists" checks */
    CHECK(repo_object_check_header(good, 24, len, REPO_KIND_CHUNK, NULL, NULL, &err) == 0);
    CHECK(repo_object_check_header(good, 24, len - 1, REPO_KIND_CHUNK, NULL, NULL, &err) == -1);
    CHECK(repo_object_check_header(good, 23, len, REPO_KIND_CHUNK, NULL, NULL, &err) == -1);
    free(o);
    free(obj);
}

static void test_crc_is_zlibs(void)
{
    /* the envelope's crc32 is zlib's: an object made by hand with zlib decodes */
    unsigned char o[24 + 5] = {'V', 'B', 'R', 'O', 1, REPO_KIND_CHUNK, REPO_COMP_NONE, 0};
    memcpy(o + 24, "hello", 5);
    put32(o + 8, 5);
    put32(o + 12, 5);
    put32(o + 16, (uint32_t)crc32(0, o + 24, 5));
    fix_header_crc(o);
    struct vb_error err = {0};
    void *raw;
    size_t raw_len;
    repo_digest d;
    repo_digest_of("hello", 5, &d);
    CHECK_MSG(repo_object_decode(REPO_KIND_CHUNK, o, sizeof(o), &d, &raw, &raw_len, &err) == 0,
              "%s", err.msg);
    if (!err.msg[0]) {
        CHECK(raw_len == 5 && memcmp(raw, "hello", 5) == 0);
        free(raw);
    }
}

int main(void)
{
    test_sha256();
    test_hex();
    test_crc_is_zlibs();
    test_round_trips();
    test_corruption(REPO_COMP_NONE);
    test_corruption(REPO_COMP_ZSTD);
    test_corruption(REPO_COMP_LZ4);
    return test_finish("test_repo_object");
}
