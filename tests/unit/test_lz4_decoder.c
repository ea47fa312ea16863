/* stream_lz4_decoder: one LZ4 frame fed in pieces of any size (1 byte up to the whole frame)
 * decodes to the same bytes as in one go, for linked blocks (python-lz4's default, so the
 * reference's frames) and our independent ones; a frame cut anywhere fails at finish, bytes
 * after its end and a flipped byte fail at feed, and the errors say which. */
#include <lz4frame.h>
#include <stdlib.h>
#include <string.h>

#include "stream_lz4.h"
#include "testutil.h"

#define RAW_LEN (300 * 1024 + 17)

static size_t make_frame(const uint8_t *raw, size_t n, bool linked, uint8_t **frame)
{
    LZ4F_preferences_t p;
    memset(&p, 0, sizeof p);
    p.frameInfo.blockSizeID = LZ4F_max64KB;
    p.frameInfo.blockMode = linked ? LZ4F_blockLinked : LZ4F_blockIndependent;
    p.frameInfo.contentChecksumFlag = LZ4F_contentChecksumEnabled;
    p.frameInfo.blockChecksumFlag = LZ4F_blockChecksumEnabled;
    p.frameInfo.contentSize = linked ? 0 : n; /* the reference's frames carry no size */
    size_t cap = LZ4F_compressFrameBound(n, &p);
    *frame = malloc(cap);
    size_t r = LZ4F_compressFrame(*frame, cap, raw, n, &p);
    CHECK(!LZ4F_isError(r));
    return LZ4F_isError(r) ? 0 : r;
}

/* Feeds frame[0..n) in pieces of step bytes; returns 0 or -1 with err set. */
static int decode_in_pieces(const uint8_t *frame, size_t n, size_t step, uint8_t *out,
                            size_t expect, struct vb_error *err)
{
    struct stream_lz4_decoder dec;
    if (stream_lz4_decoder_init(&dec, out, expect, true, err) < 0)
        return -1;
    int rc = 0;
    for (size_t done = 0; rc == 0 && done < n; done += step)
        rc = stream_lz4_decoder_feed(&dec, frame + done, n - done < step ? n - done : step, err);
    if (rc == 0)
        rc = stream_lz4_decoder_finish(&dec, err);
    stream_lz4_decoder_free(&dec);
    return rc;
}

static void check_kind(bool linked)
{
    const char *what = linked ? "linked" : "independent";
    uint8_t *raw = malloc(RAW_LEN), *out = malloc(RAW_LEN), *frame;
    for (size_t i = 0; i < RAW_LEN; i += 4096) /* compressible, with random parts */
        test_fill(raw + i, (RAW_LEN - i < 4096 ? RAW_LEN - i : 4096) / 4, i);
    for (size_t i = 0; i < RAW_LEN; i++)
        if (!raw[i])
            raw[i] = (uint8_t)(i / 1000);
    size_t n = make_frame(raw, RAW_LEN, linked, &frame);
    struct vb_error err = {0};

    static const size_t steps[] = {1, 3, 4096, 65539, 1 << 20};
    for (size_t s = 0; s < sizeof steps / sizeof *steps; s++) {
        memset(out, 0xee, RAW_LEN);
        int rc = decode_in_pieces(frame, n, steps[s], out, RAW_LEN, &err);
        CHECK_MSG(rc == 0 && memcmp(out, raw, RAW_LEN) == 0, "%s, pieces of %zu: %s", what,
                  steps[s], rc ? err.msg : "wrong bytes");
    }

    /* cut short anywhere (in the header, a block, a checksum, before the end mark) */
    static const size_t cuts[] = {5, 11, 100, 70000, 0};
    for (size_t c = 0; c < sizeof cuts / sizeof *cuts; c++) {
        size_t len = cuts[c] ? cuts[c] : n - 1;
        int rc = decode_in_pieces(frame, len, 4096, out, RAW_LEN, &err);
        CHECK_MSG(rc < 0 && (strstr(err.msg, "truncated") || strstr(err.msg, "header")),
                  "%s cut at %zu: %s", what, len, rc ? err.msg : "accepted");
    }

    /* bytes after the frame */
    uint8_t *longer = malloc(n + 9);
    memcpy(longer, frame, n);
    memset(longer + n, 0x5a, 9);
    int rc = decode_in_pieces(longer, n + 9, 1000, out, RAW_LEN, &err);
    CHECK_MSG(rc < 0 && strstr(err.msg, "stray bytes"), "%s + 9 bytes: %s", what,
              rc ? err.msg : "accepted");

    /* a flipped byte in the middle: the checksums catch what decoding does not */
    memcpy(longer, frame, n);
    longer[n / 2] ^= 0x10;
    rc = decode_in_pieces(longer, n, 777, out, RAW_LEN, &err);
    CHECK_MSG(rc < 0 && strstr(err.msg, "corrupt"), "%s flipped: %s", what,
              rc ? err.msg : "accepted");

    /* a frame that holds more, or less, than the caller expects */
    rc = decode_in_pieces(frame, n, 65536, out, RAW_LEN - 1, &err);
    CHECK_MSG(rc < 0, "%s: one byte more than expected was accepted", what);
    uint8_t *bigger = malloc(RAW_LEN + 1);
    rc = decode_in_pieces(frame, n, 65536, bigger, RAW_LEN + 1, &err);
    CHECK_MSG(rc < 0, "%s: one byte less than expected was accepted", what);

    free(bigger);
    free(longer);
    free(frame);
    free(out);
    free(raw);
}

int main(void)
{
    check_kind(true);
    check_kind(false);
    return test_finish("test_lz4_decoder");
}
