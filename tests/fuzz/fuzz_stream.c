/* libFuzzer harness for the stream reader: the META parser, the one-pass index (every frame
 * header, terminator, trailer) and the payload decoder (lz4, including single 64 KiB blocks),
 * and the chain index over the result. Inputs are whole stream files. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "chain_index.h"
#include "meta.h"
#include "stream_index.h"

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
    free(src);
}

static const struct stream_source_ops mem_ops = {.pread = mem_pread, .free = mem_free};

#define MAX_READ (4u << 20) /* bytes read per extent: fuzzed lengths may claim exabytes */

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct vb_error err = {0};
    struct stream_meta meta;
    stream_meta_parse((const char *)data, size, &meta, &err);

    struct mem_source *m = calloc(1, sizeof *m);
    m->base.ops = &mem_ops;
    m->base.name = "fuzz.data";
    m->base.size = size;
    m->data = data;
    struct stream_index *idx = stream_index_build(&m->base, &err);
    if (!idx)
        return 0;
    struct stream_read_buf rb = {0};
    uint8_t *buf = malloc(MAX_READ);
    for (size_t e = 0; e < idx->nextents; e++) {
        const struct stream_extent *x = &idx->extents[e];
        if (x->zero)
            continue;
        uint64_t len = x->length < MAX_READ ? x->length : MAX_READ;
        if (stream_index_read(idx, e, 0, (size_t)len, buf, &rb, &err) < 0)
            break;
        if (x->length > 3) /* a partial read in the middle: the block path */
            stream_index_read(idx, e, x->length / 2, 1, buf, &rb, &err);
    }
    struct stream_index *one[1] = {idx};
    struct chain_index *ci = chain_index_build(one, 1, &err);
    if (ci && ci->virtual_size) {
        size_t k = chain_index_lookup(ci, ci->virtual_size / 2);
        (void)k;
        uint64_t len = ci->virtual_size < 65536 ? ci->virtual_size : 65536;
        chain_index_read(ci, 0, (size_t)len, buf, &rb, &err);
    }
    chain_index_free(ci);
    free(buf);
    stream_read_buf_free(&rb);
    m->base.name = NULL;
    stream_index_free(idx);
    return 0;
}
