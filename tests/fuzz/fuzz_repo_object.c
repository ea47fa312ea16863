/* libFuzzer harness for the readers of repository objects (virtbackup-repository(5)): the
 * envelope's header check and full decode (zstd, lz4, none) as a chunk or an index, and the
 * index decoder, on the decoded content and on raw bytes; and the keyed decode of an
 * encrypted repository (a fixed key; the name, 32 bytes, before the object). The first input
 * byte picks the reader; the rest is the object. */
#include <stdint.h>
#include <stdlib.h>

#include <string.h>

#include "crypto.h"
#include "index.h"
#include "object.h"

static void decode_index(const void *raw, size_t len)
{
    struct repo_index idx;
    struct vb_error err;
    if (repo_index_decode(raw, len, &idx, &err) == 0) {
        /* what decodes encodes back to the same bytes */
        void *again;
        size_t again_len;
        if (repo_index_encode(&idx, &again, &again_len, &err) != 0 || again_len != len)
            abort();
        free(again);
        repo_index_free(&idx);
    }
}

/* keyed: what opens has the name's HMAC, and sealing it again under that name opens again */
static void decode_keyed(int kind, const uint8_t *data, size_t size)
{
    static struct repo_key k;
    static int derived;
    struct vb_error err;
    if (!derived) {
        unsigned char master[REPO_KEY_SIZE];
        memset(master, 0x42, sizeof master);
        if (repo_key_derive(master, &k, &err) != 0)
            abort();
        derived = 1;
    }
    if (size < 32)
        return;
    repo_digest name;
    memcpy(name.b, data, 32);
    struct repo_object_keys keys = {kind == REPO_KIND_CHUNK ? k.chunk_enc : NULL, k.chunk_id};
    void *raw = NULL, *obj = NULL, *again = NULL;
    size_t raw_len = 0, obj_len = 0, again_len = 0;
    if (repo_object_decode_keyed(kind, data + 32, size - 32, &keys, &name, &raw, &raw_len, &err) !=
        0)
        return;
    repo_digest d;
    repo_object_name(&keys, raw, raw_len, &d);
    if (!repo_digest_equal(&d, &name) ||
        repo_object_encode_keyed(kind, raw, raw_len, REPO_COMP_ZSTD, 1, &keys, &name, &obj,
                                 &obj_len, &err) != 0 ||
        repo_object_decode_keyed(kind, obj, obj_len, &keys, &name, &again, &again_len, &err) != 0 ||
        again_len != raw_len || memcmp(again, raw, raw_len) != 0)
        abort();
    free(raw);
    free(obj);
    free(again);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    int mode = data[0] % 5;
    const uint8_t *obj = data + 1;
    size_t len = size - 1;
    struct vb_error err;
    if (mode >= 3) {
        decode_keyed(mode == 3 ? REPO_KIND_CHUNK : REPO_KIND_INDEX, obj, len);
        return 0;
    }
    if (mode == 2) {
        decode_index(obj, len);
        return 0;
    }
    int kind = mode == 0 ? REPO_KIND_CHUNK : REPO_KIND_INDEX;
    uint32_t raw_size, stored_size;
    int hdr = repo_object_check_header(obj, len, len, kind, &raw_size, &stored_size, &err);
    void *raw = NULL;
    size_t raw_len = 0;
    if (repo_object_decode(kind, obj, len, NULL, &raw, &raw_len, &err) != 0)
        return 0;
    /* a decodable object has a valid header, and its content's digest is accepted */
    if (hdr != 0 || raw_len != raw_size)
        abort();
    repo_digest d;
    repo_digest_of(raw, raw_len, &d);
    void *again = NULL;
    size_t again_len;
    if (repo_object_decode(kind, obj, len, &d, &again, &again_len, &err) != 0)
        abort();
    free(again);
    if (kind == REPO_KIND_INDEX)
        decode_index(raw, raw_len);
    free(raw);
    return 0;
}
