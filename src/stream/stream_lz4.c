#include "stream_lz4.h"

#include <lz4.h>
#include <lz4frame.h>
#include <string.h>

static LZ4F_preferences_t prefs_for(size_t n, int level)
{
    LZ4F_preferences_t prefs;
    memset(&prefs, 0, sizeof prefs);
    prefs.frameInfo.blockSizeID = LZ4F_max64KB;
    prefs.frameInfo.blockMode = LZ4F_blockIndependent;
    prefs.frameInfo.contentChecksumFlag = LZ4F_contentChecksumEnabled;
    prefs.frameInfo.blockChecksumFlag = LZ4F_blockChecksumEnabled;
    prefs.frameInfo.contentSize = n;
    prefs.compressionLevel = level;
    return prefs;
}

size_t stream_lz4_bound(size_t n)
{
    LZ4F_preferences_t prefs = prefs_for(n, 0);
    return LZ4F_compressFrameBound(n, &prefs);
}

size_t stream_lz4_compress(const void *src, size_t n, int level, void *dst, size_t cap,
                           struct vb_error *err)
{
    LZ4F_preferences_t prefs = prefs_for(n, level);
    size_t r = LZ4F_compressFrame(dst, cap, src, n, &prefs);
    if (LZ4F_isError(r)) {
        vb_error_set(err, "lz4 compression failed: %s", LZ4F_getErrorName(r));
        return 0;
    }
    return r;
}

int stream_lz4_encoder_init(struct stream_lz4_encoder *enc, int level, struct vb_error *err)
{
    LZ4F_cctx *cctx;
    if (LZ4F_isError(LZ4F_createCompressionContext(&cctx, LZ4F_VERSION)))
        return vb_error_set(err, "out of memory for the lz4 encoder");
    enc->cctx = cctx;
    enc->level = level;
    return 0;
}

void stream_lz4_encoder_free(struct stream_lz4_encoder *enc)
{
    if (enc->cctx)
        LZ4F_freeCompressionContext(enc->cctx);
    enc->cctx = NULL;
}

size_t stream_lz4_encoder_bound(size_t n)
{
    LZ4F_preferences_t prefs = prefs_for(0, 0);
    return LZ4F_HEADER_SIZE_MAX + LZ4F_compressBound(n, &prefs);
}

int64_t stream_lz4_encoder_begin(struct stream_lz4_encoder *enc, uint64_t content_size, void *dst,
                                 size_t cap, struct vb_error *err)
{
    LZ4F_preferences_t prefs = prefs_for((size_t)content_size, enc->level);
    size_t r = LZ4F_compressBegin(enc->cctx, dst, cap, &prefs);
    if (LZ4F_isError(r))
        return vb_error_set(err, "lz4 compression failed: %s", LZ4F_getErrorName(r));
    return (int64_t)r;
}

int64_t stream_lz4_encoder_update(struct stream_lz4_encoder *enc, const void *src, size_t n,
                                  void *dst, size_t cap, struct vb_error *err)
{
    size_t r = LZ4F_compressUpdate(enc->cctx, dst, cap, src, n, NULL);
    if (LZ4F_isError(r))
        return vb_error_set(err, "lz4 compression failed: %s", LZ4F_getErrorName(r));
    return (int64_t)r;
}

int64_t stream_lz4_encoder_end(struct stream_lz4_encoder *enc, void *dst, size_t cap,
                               struct vb_error *err)
{
    size_t r = LZ4F_compressEnd(enc->cctx, dst, cap, NULL);
    if (LZ4F_isError(r))
        return vb_error_set(err, "lz4 compression failed: %s", LZ4F_getErrorName(r));
    return (int64_t)r;
}

int stream_lz4_decompress(const void *src, size_t n, void *dst, size_t expect, struct vb_error *err)
{
    return stream_lz4_decompress_opts(src, n, dst, expect, true, err);
}

int stream_lz4_decompress_opts(const void *src, size_t n, void *dst, size_t expect, bool checksums,
                               struct vb_error *err)
{
    /* dst holds the whole frame's output and nothing else writes it meanwhile: stableDst
     * lets liblz4 keep linked blocks' history there instead of copying it aside */
    LZ4F_decompressOptions_t dopts = {.stableDst = 1, .skipChecksums = !checksums};
    LZ4F_dctx *dctx;
    if (LZ4F_isError(LZ4F_createDecompressionContext(&dctx, LZ4F_VERSION)))
        return vb_error_set(err, "out of memory for the lz4 decoder");
    int rc = -1;
    const char *in = src;
    char *out = dst;
    size_t in_done = 0, out_done = 0;
    LZ4F_frameInfo_t info;
    size_t in_len = n;
    size_t r = LZ4F_getFrameInfo(dctx, &info, in, &in_len);
    if (LZ4F_isError(r)) {
        vb_error_set(err, "bad lz4 frame header: %s", LZ4F_getErrorName(r));
        goto out;
    }
    in_done = in_len;
    if (info.contentSize && info.contentSize != expect) {
        vb_error_set(err, "lz4 frame holds %llu bytes, expected %zu",
                     (unsigned long long)info.contentSize, expect);
        goto out;
    }
    while (r != 0) {
        size_t out_len = expect - out_done;
        in_len = n - in_done;
        if (in_len == 0) {
            vb_error_set(err, "lz4 frame truncated after %zu bytes", n);
            goto out;
        }
        r = LZ4F_decompress(dctx, out + out_done, &out_len, in + in_done, &in_len, &dopts);
        if (LZ4F_isError(r)) {
            vb_error_set(err, "lz4 data corrupt near byte %zu of the frame: %s", in_done,
                         LZ4F_getErrorName(r));
            goto out;
        }
        in_done += in_len;
        out_done += out_len;
        if (out_done == expect && r != 0 && in_len == 0 && out_len == 0) {
            vb_error_set(err, "lz4 frame holds more than the expected %zu bytes", expect);
            goto out;
        }
    }
    if (out_done != expect) {
        vb_error_set(err, "lz4 frame decoded to %zu bytes, expected %zu", out_done, expect);
        goto out;
    }
    if (in_done != n) {
        vb_error_set(err, "%zu stray bytes after the lz4 frame", n - in_done);
        goto out;
    }
    rc = 0;
out:
    LZ4F_freeDecompressionContext(dctx);
    return rc;
}

static uint32_t le32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

int stream_lz4_parse_header(const uint8_t *frame, size_t avail, struct stream_lz4_layout *layout,
                            struct vb_error *err)
{
    memset(layout, 0, sizeof *layout);
    if (avail < 7 || le32(frame) != 0x184D2204u)
        return vb_error_set(err, "not an lz4 frame (bad magic)");
    uint8_t flg = frame[4], bd = frame[5];
    if ((flg >> 6) != 1)
        return vb_error_set(err, "unsupported lz4 frame version");
    layout->independent = flg & 0x20;
    layout->block_checksum = flg & 0x10;
    bool has_size = flg & 0x08;
    layout->content_checksum = flg & 0x04;
    bool has_dict = flg & 0x01;
    static const uint32_t sizes[] = {0, 0, 0, 0, 64 << 10, 256 << 10, 1 << 20, 4 << 20};
    layout->block_max = sizes[(bd >> 4) & 7];
    if (!layout->block_max)
        return vb_error_set(err, "bad lz4 block size in frame header");
    size_t hlen = 7 + (has_size ? 8 : 0) + (has_dict ? 4 : 0);
    if (avail < hlen)
        return vb_error_set(err, "lz4 frame header truncated");
    layout->content_size = UINT64_MAX;
    if (has_size) {
        uint64_t v = 0;
        for (int i = 7; i >= 0; i--)
            v = v << 8 | frame[6 + i];
        layout->content_size = v;
    }
    return (int)hlen;
}

int64_t stream_lz4_decode_block(const struct stream_lz4_layout *layout,
                                const struct stream_lz4_block *blk, const void *data, void *dst,
                                size_t cap, struct vb_error *err)
{
    if (blk->uncompressed) {
        if (blk->size > cap)
            return vb_error_set(err, "lz4 block larger than its frame allows");
        memcpy(dst, data, blk->size);
        return blk->size;
    }
    if (!layout->independent)
        return vb_error_set(err, "lz4 frame uses linked blocks: no random access");
    int r = LZ4_decompress_safe(data, dst, (int)blk->size, (int)cap);
    if (r < 0)
        return vb_error_set(err, "lz4 block corrupt");
    return r;
}
