/* libFuzzer harness for the zip input of virtrestore: each input is a zip file; it is opened
 * (central directory, entry names checked, STORED only), every entry is read through its
 * stream source and, when it looks like a stream, indexed. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "stream_index.h"
#include "zip_source.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static char path[64];
    if (!path[0])
        snprintf(path, sizeof path, "/tmp/fuzz_zip.%ld.zip", (long)getpid());
    FILE *f = fopen(path, "wb");
    if (!f)
        return 0;
    fwrite(data, 1, size, f);
    fclose(f);
    struct vb_error err = {0};
    struct vb_zip *zip = vb_zip_open(path, &err);
    if (!zip)
        return 0;
    uint8_t buf[4096];
    for (size_t i = 0; i < vb_zip_count(zip) && i < 16; i++) {
        struct stream_source *src = vb_zip_source_open(zip, i, &err);
        if (!src)
            continue;
        src->ops->pread(src, buf, sizeof buf, 0, &err);
        if (src->size > 1)
            src->ops->pread(src, buf, 1, src->size - 1, &err);
        struct stream_index *idx = stream_index_build(src, &err); /* takes src */
        stream_index_free(idx);
    }
    vb_zip_close(zip);
    return 0;
}
