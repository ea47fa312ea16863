/* The checksumming source: whatever was read through it, in whatever order, overlapping or
 * not, its whole-file adler32 equals zlib's over the file, and only the unread bytes are read
 * again for it. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zlib.h>

#include "source_tap.h"
#include "testutil.h"

static uint64_t rnd(uint64_t *s)
{
    *s ^= *s << 13;
    *s ^= *s >> 7;
    *s ^= *s << 17;
    return *s;
}

static void run(uint64_t seed, const char *path, const unsigned char *data, size_t size)
{
    struct vb_error err = {0};
    struct stream_source *src = stream_source_file_open(path, &err);
    CHECK_MSG(src != NULL, "%s", err.msg);
    src = src ? stream_source_tap_new(src, &err) : NULL;
    CHECK(src != NULL);
    if (!src)
        return;
    /* random reads: some overlapping, some repeated, some past the end; mark what was read */
    unsigned char *seen = calloc(size + 1, 1);
    unsigned char *buf = malloc(size + 1);
    int nreads = (int)(rnd(&seed) % 40);
    for (int i = 0; i < nreads; i++) {
        uint64_t off = rnd(&seed) % (size + 1), len = rnd(&seed) % (size / 4 + 2);
        ssize_t n = src->ops->pread(src, buf, len, off, &err);
        CHECK(n >= 0);
        for (ssize_t k = 0; k < n; k++)
            seen[off + (uint64_t)k] = 1;
        CHECK(n <= 0 || memcmp(buf, data + off, (size_t)n) == 0);
    }
    uint32_t sum = 0;
    uint64_t reread = 0;
    CHECK_MSG(stream_source_tap_adler32(src, &sum, &reread, &err) == 0, "%s", err.msg);
    uint32_t want = (uint32_t)adler32(adler32(0L, Z_NULL, 0), data, (uInt)size);
    CHECK_MSG(sum == want, "seed %llu: %u != %u", (unsigned long long)seed, sum, want);
    /* at least every unread byte is read again, and never more than the file */
    uint64_t unread = 0;
    for (size_t k = 0; k < size; k++)
        unread += !seen[k];
    CHECK_MSG(reread >= unread && reread <= size, "seed %llu: reread %llu, unread %llu",
              (unsigned long long)seed, (unsigned long long)reread, (unsigned long long)unread);
    if (nreads == 0)
        CHECK(reread == size);
    free(seen);
    free(buf);
    stream_source_free(src);
}

int main(void)
{
    const char *tmp = getenv("TMPDIR");
    char tpl[4096];
    snprintf(tpl, sizeof tpl, "%s/test_source_tap.XXXXXX", tmp && *tmp ? tmp : "/tmp");
    int fd = mkstemp(tpl);
    CHECK(fd >= 0);
    size_t size = 3 * 1024 * 1024 + 77;
    unsigned char *data = malloc(size);
    uint64_t s = 42;
    for (size_t i = 0; i < size; i++)
        data[i] = (unsigned char)(i % 7 == 0 ? 0 : rnd(&s));
    CHECK(write(fd, data, size) == (ssize_t)size);
    close(fd);
    for (uint64_t seed = 1; seed <= 200; seed++)
        run(seed, tpl, data, size);
    /* a tap over a source that is not one is refused, not misread */
    struct vb_error err = {0};
    struct stream_source *plain = stream_source_file_open(tpl, &err);
    uint32_t sum;
    uint64_t reread;
    CHECK(plain && stream_source_tap_adler32(plain, &sum, &reread, &err) < 0);
    stream_source_free(plain);
    unlink(tpl);
    free(data);
    return test_finish("test_source_tap");
}
