/* The object envelope (object.h; the byte table is in virtbackup-repository(5)). zstd keeps
 * one compression and one decompression context per thread (their setup costs more than a
 * small chunk's work); lz4 is the block format, the raw size is in the header. The crc32 is
 * zlib's (IEEE 802.3), computed with libdeflate's vectorised implementation. */
#include <errno.h>
#include <libdeflate.h>
#include <lz4.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <zstd.h>

#include "crypto.h"
#include "object.h"

static const unsigned char magic[4] = {'V', 'B', 'R', 'O'};

static pthread_once_t keys_once = PTHREAD_ONCE_INIT;
static pthread_key_t cctx_key, dctx_key, scratch_key;
static int keys_ok;

static void free_cctx(void *p)
{
    ZSTD_freeCCtx(p);
}

static void free_dctx(void *p)
{
    ZSTD_freeDCtx(p);
}

/* a thread's buffer for opened (decrypted) payloads that are then decompressed: a chunk's
 * worth of fresh pages per chunk would cost more than the decryption */
struct scratch {
    size_t cap;
    unsigned char data[];
};

static void make_keys(void)
{
    keys_ok = pthread_key_create(&cctx_key, free_cctx) == 0 &&
              pthread_key_create(&dctx_key, free_dctx) == 0 &&
              pthread_key_create(&scratch_key, free) == 0;
}

/* the thread's scratch buffer of at least len bytes, or NULL */
static unsigned char *thread_scratch(size_t len)
{
    pthread_once(&keys_once, make_keys);
    if (!keys_ok)
        return NULL;
    struct scratch *s = pthread_getspecific(scratch_key);
    if (!s || s->cap < len) {
        struct scratch *n = malloc(sizeof *n + (len ? len : 1));
        if (!n || pthread_setspecific(scratch_key, n) != 0) {
            free(n);
            return NULL;
        }
        free(s);
        n->cap = len;
        s = n;
    }
    return s->data;
}

static ZSTD_CCtx *thread_cctx(void)
{
    pthread_once(&keys_once, make_keys);
    if (!keys_ok)
        return NULL;
    ZSTD_CCtx *c = pthread_getspecific(cctx_key);
    if (!c) {
        c = ZSTD_createCCtx();
        if (c && pthread_setspecific(cctx_key, c) != 0) {
            ZSTD_freeCCtx(c);
            c = NULL;
        }
    }
    return c;
}

static ZSTD_DCtx *thread_dctx(void)
{
    pthread_once(&keys_once, make_keys);
    if (!keys_ok)
        return NULL;
    ZSTD_DCtx *d = pthread_getspecific(dctx_key);
    if (!d) {
        d = ZSTD_createDCtx();
        if (d && pthread_setspecific(dctx_key, d) != 0) {
            ZSTD_freeDCtx(d);
            d = NULL;
        }
    }
    return d;
}

static uint32_t get_le32(const unsigned char *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static void put_le32(unsigned char *p, uint32_t v)
{
    p[0] = (unsigned char)v;
    p[1] = (unsigned char)(v >> 8);
    p[2] = (unsigned char)(v >> 16);
    p[3] = (unsigned char)(v >> 24);
}

static uint32_t crc32_of(const void *buf, size_t len)
{
    return libdeflate_crc32(0, buf, len);
}

static const char *kind_name(int kind)
{
    return kind == REPO_KIND_CHUNK ? "chunk" : kind == REPO_KIND_INDEX ? "index" : "object";
}

const char *repo_compression_name(enum repo_compression c)
{
    switch (c) {
    case REPO_COMP_NONE:
        return "none";
    case REPO_COMP_ZSTD:
        return "zstd";
    case REPO_COMP_LZ4:
        return "lz4";
    }
    return NULL;
}

/* Compresses into dst of cap bytes; the stored size, or 0 when it does not fit (or fails). */
static size_t compress_into(enum repo_compression c, int level, const void *raw, size_t raw_len,
                            void *dst, size_t cap)
{
    if (cap == 0)
        return 0;
    if (c == REPO_COMP_ZSTD) {
        ZSTD_CCtx *cctx = thread_cctx();
        if (!cctx)
            return 0;
        size_t n = ZSTD_compressCCtx(cctx, dst, cap, raw, raw_len, level);
        return ZSTD_isError(n) ? 0 : n;
    }
    int n = LZ4_compress_default(raw, dst, (int)raw_len, (int)cap);
    return n > 0 ? (size_t)n : 0;
}

void repo_object_name(const struct repo_object_keys *keys, const void *data, size_t len,
                      repo_digest *out)
{
    if (!keys || !keys->id) {
        repo_digest_of(data, len, out);
        return;
    }
    struct vb_error err = {0};
    /* HMAC fails only when libcrypto cannot allocate its context */
    if (repo_hmac_sha256(keys->id, REPO_KEY_SIZE, data, len, out->b, &err) < 0)
        abort();
}

int repo_object_encode(int kind, const void *raw, size_t raw_len, enum repo_compression c,
                       int level, void **obj, size_t *obj_len, struct vb_error *err)
{
    return repo_object_encode_keyed(kind, raw, raw_len, c, level, NULL, NULL, obj, obj_len, err);
}

int repo_object_encode_keyed(int kind, const void *raw, size_t raw_len, enum repo_compression c,
                             int level, const struct repo_object_keys *keys,
                             const repo_digest *name, void **obj, size_t *obj_len,
                             struct vb_error *err)
{
    bool seal = keys && keys->enc;
    size_t tag = seal ? REPO_GCM_TAG_SIZE : 0;
    if (seal && !name)
        return vb_error_set(err, "%s: sealing needs the object's name", kind_name(kind));
    if (kind != REPO_KIND_CHUNK && kind != REPO_KIND_INDEX)
        return vb_error_set(err, "object: unknown kind %d", kind);
    if (raw_len > REPO_OBJECT_MAX_RAW)
        return vb_error_set(err, "%s: %zu bytes, more than the %u an object holds", kind_name(kind),
                            raw_len, REPO_OBJECT_MAX_RAW);
    if (!repo_compression_name(c))
        return vb_error_set(err, "%s: unknown compression %d", kind_name(kind), (int)c);
    if (c == REPO_COMP_ZSTD && (level < 1 || level > ZSTD_maxCLevel()))
        return vb_error_set(err, "%s: zstd level %d out of range", kind_name(kind), level);
    unsigned char *o = malloc(REPO_OBJECT_HEADER_SIZE + raw_len + tag);
    if (!o)
        return vb_error_errno(err, "%s: %zu bytes", kind_name(kind), raw_len);
    unsigned char *payload = o + REPO_OBJECT_HEADER_SIZE;
    size_t stored = 0;
    /* only a payload smaller than the content is worth storing compressed */
    if (c != REPO_COMP_NONE && raw_len > 1)
        stored = compress_into(c, level, raw, raw_len, payload, raw_len - 1);
    if (stored == 0) {
        c = REPO_COMP_NONE;
        if (raw_len)
            memcpy(payload, raw, raw_len);
        stored = raw_len;
    }
    memcpy(o, magic, 4);
    o[4] = REPO_OBJECT_VERSION;
    o[5] = (unsigned char)kind;
    o[6] = (unsigned char)c;
    o[7] = seal ? REPO_OBJECT_FLAG_ENCRYPTED : 0;
    put_le32(o + 8, (uint32_t)raw_len);
    if (seal) {
        /* the name is a MAC of the content: a new nonce for every other content (in place:
         * GCM allows it) */
        if (repo_gcm_seal(keys->enc, name->b, o, 12, payload, stored, payload, err) < 0) {
            free(o);
            return vb_error_prefix(err, "%s", kind_name(kind));
        }
        stored += tag;
    }
    put_le32(o + 12, (uint32_t)stored);
    put_le32(o + 16, crc32_of(payload, stored));
    put_le32(o + 20, crc32_of(o, 20));
    if (stored < raw_len + tag) {
        unsigned char *shrunk = realloc(o, REPO_OBJECT_HEADER_SIZE + stored);
        if (shrunk)
            o = shrunk;
    }
    *obj = o;
    *obj_len = REPO_OBJECT_HEADER_SIZE + stored;
    return 0;
}

int repo_object_check_header(const void *hdr, size_t hdr_len, uint64_t object_size, int kind,
                             uint32_t *raw_size, uint32_t *stored_size, struct vb_error *err)
{
    const unsigned char *h = hdr;
    const char *what = kind_name(kind);
    if (hdr_len < REPO_OBJECT_HEADER_SIZE || object_size < REPO_OBJECT_HEADER_SIZE)
        return vb_error_set(err, "%s: truncated header (%llu bytes, the header has %d)", what,
                            (unsigned long long)(hdr_len < object_size ? hdr_len : object_size),
                            REPO_OBJECT_HEADER_SIZE);
    if (memcmp(h, magic, 4) != 0)
        return vb_error_set(err, "%s: not a repository object (bad magic)", what);
    if (get_le32(h + 20) != crc32_of(h, 20))
        return vb_error_set(err, "%s: header checksum mismatch (header damaged)", what);
    if (h[4] != REPO_OBJECT_VERSION)
        return vb_error_set(err, "%s: envelope version %u, this program reads version %d", what,
                            h[4], REPO_OBJECT_VERSION);
    if (h[5] != kind)
        return vb_error_set(err, "%s: the header says kind %u (%s)", what, h[5], kind_name(h[5]));
    if (h[6] > REPO_COMP_LZ4)
        return vb_error_set(err, "%s: unknown compression %u", what, h[6]);
    if (h[7] & ~REPO_OBJECT_FLAG_ENCRYPTED)
        return vb_error_set(err, "%s: unknown flags 0x%02x", what, h[7]);
    uint32_t raw = get_le32(h + 8), stored = get_le32(h + 12);
    /* a sealed payload ends in the GCM tag: the sizes below are the compressed payload's */
    uint32_t tag = h[7] & REPO_OBJECT_FLAG_ENCRYPTED ? REPO_GCM_TAG_SIZE : 0;
    if (stored < tag)
        return vb_error_set(err, "%s: sealed payload of %u bytes, shorter than its tag", what,
                            stored);
    stored -= tag;
    if (raw > REPO_OBJECT_MAX_RAW)
        return vb_error_set(err, "%s: raw size %u above the limit of %u", what, raw,
                            REPO_OBJECT_MAX_RAW);
    if (h[6] == REPO_COMP_NONE && stored != raw)
        return vb_error_set(err, "%s: stored size %u differs from raw size %u without compression",
                            what, stored, raw);
    if (h[6] != REPO_COMP_NONE && stored >= raw)
        return vb_error_set(err,
                            "%s: compressed payload of %u bytes not smaller than its %u "
                            "raw bytes",
                            what, stored, raw);
    stored += tag;
    if (object_size != (uint64_t)REPO_OBJECT_HEADER_SIZE + stored)
        return vb_error_set(err, "%s: object has %llu bytes, its header says %llu", what,
                            (unsigned long long)object_size,
                            (unsigned long long)REPO_OBJECT_HEADER_SIZE + stored);
    if (raw_size)
        *raw_size = raw;
    if (stored_size)
        *stored_size = stored;
    return 0;
}

int repo_object_check_stored(int kind, const void *obj, size_t obj_len, uint32_t *raw_size,
                             struct vb_error *err)
{
    uint32_t ssize = 0;
    if (repo_object_check_header(obj, obj_len, obj_len, kind, raw_size, &ssize, err) < 0)
        return -1;
    const unsigned char *h = obj;
    if (crc32_of(h + REPO_OBJECT_HEADER_SIZE, ssize) != get_le32(h + 16))
        return vb_error_set(err, "%s: payload checksum mismatch (stored bytes damaged)",
                            kind_name(kind));
    return 0;
}

/* payload (ssize bytes, compressed with c) into out: exactly rsize bytes */
static int decompress(const char *what, enum repo_compression c, const unsigned char *payload,
                      uint32_t ssize, unsigned char *out, uint32_t rsize, struct vb_error *err)
{
    switch (c) {
    case REPO_COMP_NONE:
        if (out != payload)
            memcpy(out, payload, rsize);
        break;
    case REPO_COMP_ZSTD: {
        ZSTD_DCtx *d = thread_dctx();
        if (!d)
            return vb_error_set(err, "%s: zstd: no decompression context", what);
        size_t n = ZSTD_decompressDCtx(d, out, rsize, payload, ssize);
        if (ZSTD_isError(n) || n != rsize)
            return vb_error_set(err, "%s: zstd payload does not decompress to its %u raw bytes%s%s",
                                what, rsize, ZSTD_isError(n) ? ": " : "",
                                ZSTD_isError(n) ? ZSTD_getErrorName(n) : "");
        break;
    }
    case REPO_COMP_LZ4: {
        int n = LZ4_decompress_safe((const char *)payload, (char *)out, (int)ssize, (int)rsize);
        if (n < 0 || (uint32_t)n != rsize)
            return vb_error_set(err, "%s: lz4 payload does not decompress to its %u raw bytes",
                                what, rsize);
        break;
    }
    }
    return 0;
}

int repo_object_decode_into(int kind, const void *obj, size_t obj_len, const repo_digest *want,
                            void *raw, size_t cap, size_t *raw_len, struct vb_error *err)
{
    return repo_object_decode_keyed_into(kind, obj, obj_len, NULL, want, raw, cap, raw_len, err);
}

int repo_object_decode_keyed_into(int kind, const void *obj, size_t obj_len,
                                  const struct repo_object_keys *keys, const repo_digest *want,
                                  void *raw, size_t cap, size_t *raw_len, struct vb_error *err)
{
    uint32_t rsize = 0, ssize = 0; /* set by the header check; -O3 cannot see it */
    const char *what = kind_name(kind);
    if (repo_object_check_header(obj, obj_len, obj_len, kind, &rsize, &ssize, err) < 0)
        return -1;
    if (rsize > cap)
        return vb_error_set(err, "%s: %u raw bytes, more than the %zu expected", what, rsize, cap);
    const unsigned char *h = obj;
    const unsigned char *payload = h + REPO_OBJECT_HEADER_SIZE;
    if (crc32_of(payload, ssize) != get_le32(h + 16))
        return vb_error_set(err, "%s: payload checksum mismatch (stored bytes damaged)", what);
    unsigned char *out = raw, *opened = NULL;
    if (h[7] & REPO_OBJECT_FLAG_ENCRYPTED) {
        if (!keys || !keys->enc)
            return vb_error_set(err, "%s: encrypted, and no key was given", what);
        if (!want)
            return vb_error_set(err, "%s: opening needs the object's name", what);
        ssize -= REPO_GCM_TAG_SIZE;
        /* uncompressed: straight into out; else into a buffer the decompressor reads */
        opened = h[6] == REPO_COMP_NONE ? out : thread_scratch(ssize);
        if (!opened)
            return vb_error_errno(err, "%s: %u bytes", what, ssize);
        if (repo_gcm_open(keys->enc, want->b, h, 12, payload, ssize, opened, err) < 0)
            return vb_error_prefix(err, "%s", what);
        payload = opened;
    }
    if (decompress(what, (enum repo_compression)h[6], payload, ssize, out, rsize, err) < 0)
        return -1;
    if (want) {
        repo_digest got;
        repo_object_name(keys, out, rsize, &got);
        if (!repo_digest_equal(&got, want)) {
            char hw[REPO_DIGEST_HEX + 1], hg[REPO_DIGEST_HEX + 1];
            repo_digest_hex(want, hw);
            repo_digest_hex(&got, hg);
            return vb_error_set(err, "%s: content digest %s, expected %s", what, hg, hw);
        }
    }
    *raw_len = rsize;
    return 0;
}

int repo_object_decode(int kind, const void *obj, size_t obj_len, const repo_digest *want,
                       void **raw, size_t *raw_len, struct vb_error *err)
{
    return repo_object_decode_keyed(kind, obj, obj_len, NULL, want, raw, raw_len, err);
}

int repo_object_decode_keyed(int kind, const void *obj, size_t obj_len,
                             const struct repo_object_keys *keys, const repo_digest *want,
                             void **raw, size_t *raw_len, struct vb_error *err)
{
    uint32_t rsize = 0; /* set by the header check; -O3 cannot see it */
    if (repo_object_check_header(obj, obj_len, obj_len, kind, &rsize, NULL, err) < 0)
        return -1;
    void *out = malloc(rsize ? rsize : 1);
    if (!out)
        return vb_error_errno(err, "%s: %u bytes", kind_name(kind), rsize);
    if (repo_object_decode_keyed_into(kind, obj, obj_len, keys, want, out, rsize, raw_len, err) <
        0) {
        free(out);
        return -1;
    }
    *raw = out;
    return 0;
}
