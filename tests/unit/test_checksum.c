/* stream_adler32 (libdeflate) must give zlib's adler32 for every length, alignment and way of
 * splitting the input: the .chksum files are read and written by the reference too. */
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <zlib.h>

#include "checksum.h"
#include "testutil.h"

static uint32_t zlib_sum(const unsigned char *p, size_t n)
{
    return (uint32_t)adler32(adler32(0L, Z_NULL, 0), p, (uInt)n);
}

/* Short inputs at every alignment: the vector code's head and tail paths. */
static void test_lengths_and_alignments(const unsigned char *data)
{
    int bad = 0;
    for (size_t off = 0; off < 64; off++)
        for (size_t n = 0; n <= 1100; n++)
            bad += stream_adler32(STREAM_ADLER32_INIT, data + off, n) != zlib_sum(data + off, n);
    CHECK_MSG(bad == 0, "%d of 64 x 1101 short sums differ from zlib's", bad);
}

/* All-0xff bytes make the sums grow fastest: any missed modulo shows up. */
static void test_worst_case_bytes(size_t len)
{
    unsigned char *ff = malloc(len);
    CHECK(ff != NULL);
    if (!ff)
        return;
    memset(ff, 0xff, len);
    CHECK(stream_adler32(STREAM_ADLER32_INIT, ff, len) == zlib_sum(ff, len));
    free(ff);
}

/* A running sum fed in random pieces, and sums of pieces combined, equal one pass. */
static void test_pieces(const unsigned char *data, size_t len)
{
    uint32_t whole = zlib_sum(data, len);
    uint64_t seed = 0x9e3779b97f4a7c15u;
    for (int round = 0; round < 20; round++) {
        uint32_t running = STREAM_ADLER32_INIT, combined = STREAM_ADLER32_INIT;
        for (size_t pos = 0; pos < len;) {
            seed ^= seed << 13, seed ^= seed >> 7, seed ^= seed << 17;
            size_t n = (size_t)(seed % 300000);
            if (n > len - pos)
                n = len - pos;
            running = stream_adler32(running, data + pos, n);
            combined = stream_adler32_combine(
                combined, stream_adler32(STREAM_ADLER32_INIT, data + pos, n), n);
            pos += n;
        }
        CHECK(running == whole);
        CHECK(combined == whole);
    }
}

/* More than 4 GiB in one call (zlib's interface takes 32-bit lengths; ours does not): zero
 * pages, whose sum is known: A = 1, B = n mod 65521. */
static void test_beyond_4gib(void)
{
    size_t n = ((size_t)4 << 30) + 12345;
    void *z = mmap(NULL, n, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (z == MAP_FAILED) {
        fprintf(stderr, "test_checksum: no 4 GiB mapping here, the >4 GiB case is skipped\n");
        return;
    }
    uint32_t want = ((uint32_t)(n % 65521u) << 16) | 1u;
    CHECK(stream_adler32(STREAM_ADLER32_INIT, z, n) == want);
    munmap(z, n);
}

int main(void)
{
    size_t len = 8u << 20;
    unsigned char *data = malloc(len);
    CHECK(data != NULL);
    if (!data)
        return test_finish("test_checksum");
    test_fill(data, len, 42);
    test_lengths_and_alignments(data);
    test_worst_case_bytes(5u << 20);
    test_pieces(data, len);
    CHECK(stream_adler32(STREAM_ADLER32_INIT, NULL, 0) == STREAM_ADLER32_INIT);
    test_beyond_4gib();
    free(data);
    return test_finish("test_checksum");
}
