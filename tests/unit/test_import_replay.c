/* src/virtrepo/import_replay.c: a stream chain replayed point by point onto a repository's
 * chunk lists (virtrepo(1), IMPORT). Chunks of 64 KiB; a full whose extents span chunk
 * boundaries, with holes and a ZERO frame; an inc changing a few bytes (compressed) and
 * zeroing data; one growing the disk (the old short last chunk becomes whole) and one
 * shrinking it (a chunk cut short). Each point's disk, read back through the index, equals
 * the expected image; untouched chunks are copied, not read; a previous chunk that is gone
 * is an error when the previous point came from an earlier run. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "import_replay.h"
#include "repo.h"
#include "snapshot_reader.h"
#include "stream_index.h"
#include "streamgen.h"
#include "testutil.h"

#define KiB 1024u
#define CS  (64 * KiB)

struct point {
    uint64_t size;
    struct gen_extent ext[4];
    size_t n;
    int compressed;
};

/* The disk's content read back through index d. */
static void check_disk(struct repo *r, const repo_digest *d, const uint8_t *want, uint64_t size,
                       int k)
{
    struct vb_error err = {0};
    struct repo_disk_reader *rd = repo_disk_reader_open(r, d, &err);
    CHECK_MSG(rd != NULL, "point %d: %s", k, err.msg);
    if (!rd)
        return;
    CHECK_MSG(repo_disk_reader_size(rd) == size, "point %d: size %llu", k,
              (unsigned long long)repo_disk_reader_size(rd));
    uint8_t *got = malloc(size);
    CHECK(repo_disk_reader_pread(rd, got, size, 0, &err) == 0);
    CHECK_MSG(memcmp(got, want, size) == 0, "point %d: content differs", k);
    free(got);
    repo_disk_reader_close(rd);
}

static struct stream_index *write_point(const struct point *p, const uint8_t *img, int k)
{
    char name[32], cp[32], parent[32];
    struct vb_error err = {0};
    snprintf(name, sizeof name, "p%d.data", k);
    snprintf(cp, sizeof cp, "virtnbdbackup.%d", k);
    snprintf(parent, sizeof parent, "virtnbdbackup.%d", k - 1);
    struct gen_stream g = {.path = test_path(name),
                           .disk = img,
                           .virtual_size = p->size,
                           .compressed = p->compressed,
                           .incremental = k > 0,
                           .checkpoint = cp,
                           .parent = k ? parent : "",
                           .extents = p->ext,
                           .nextents = p->n};
    CHECK(gen_write(&g) == 0);
    struct stream_index *si = stream_index_open(g.path, &err);
    CHECK_MSG(si != NULL, "%s", err.msg);
    return si;
}

static void test_chain(void)
{
    struct vb_error err = {0};
    struct repo_config cfg;
    repo_config_default(&cfg);
    cfg.chunk_size = CS;
    CHECK_MSG(repo_init(test_path("repo"), &cfg, &err) == 0, "%s", err.msg);
    struct repo *r = repo_open(test_path("repo"), NULL, &err);
    CHECK_MSG(r != NULL, "%s", err.msg);
    if (!r)
        return;
    const struct point points[] = {
        /* a full: data across the boundary of chunks 2 and 3, a ZERO frame, holes, data in the
         * short last chunk 4 */
        {300 * KiB + 1000,
         {{0, 100 * KiB, false},
          {150 * KiB, 70 * KiB, false},
          {250 * KiB, 10 * KiB, true},
          {290 * KiB, 5 * KiB, false}},
         4,
         STREAM_META_COMPRESSED_FALSE},
        /* 4 KiB rewritten in chunk 0, data zeroed in chunk 2 (compressed) */
        {300 * KiB + 1000, {{10 * KiB, 4 * KiB, false}, {150 * KiB, 10 * KiB, true}}, 2, 2},
        /* grown: the old short chunk 4 (with data) becomes whole, data in the new chunk 6 */
        {400 * KiB + 123, {{390 * KiB, 5 * KiB, false}}, 1, STREAM_META_COMPRESSED_FALSE},
        /* shrunk: chunk 3 cut short; one small write in chunk 0 */
        {200 * KiB + 7, {{5 * KiB, 1 * KiB, false}}, 1, STREAM_META_COMPRESSED_FALSE},
    };
    const size_t npoints = sizeof points / sizeof points[0];
    uint64_t max = 400 * KiB + 123;
    uint8_t *img = calloc(1, max), *fresh = malloc(max);
    struct repo_index prev = {0};
    bool has_prev = false;
    repo_digest index[4];
    for (size_t k = 0; k < npoints; k++) {
        const struct point *p = &points[k];
        /* the disk at this point: new bytes in the data extents, zeroes in the zero ones,
         * nothing past the size */
        test_fill(fresh, max, 100 + k);
        if (p->size < max)
            memset(img + p->size, 0, max - p->size);
        for (size_t e = 0; e < p->n; e++) {
            const struct gen_extent *x = &p->ext[e];
            if (x->zero)
                memset(img + x->start, 0, x->length);
            else
                memcpy(img + x->start, fresh + x->start, x->length);
        }
        struct stream_index *si = write_point(p, img, (int)k);
        if (!si)
            break;
        struct repo_disk_stats st = {0};
        int rc = import_replay_disk(r, has_prev ? &prev : NULL, false, si, &index[k], &st, &err);
        CHECK_MSG(rc == 0, "point %zu: %s", k, err.msg);
        uint64_t data = 0;
        for (size_t e = 0; e < p->n; e++)
            data += p->ext[e].zero ? 0 : p->ext[e].length;
        CHECK_MSG(st.bytes_read == data, "point %zu: read %llu, its data is %llu", k,
                  (unsigned long long)st.bytes_read, (unsigned long long)data);
        stream_index_free(si);
        if (rc < 0)
            break;
        check_disk(r, &index[k], img, p->size, (int)k);
        if (k == 1)
            /* chunks 1 (data) and 3 keep their digests; 0 and 2 were touched */
            CHECK_MSG(st.chunks_copied >= 2, "point 1: %llu chunks copied",
                      (unsigned long long)st.chunks_copied);
        repo_index_free(&prev);
        CHECK(repo_get_index(r, &index[k], &prev, &err) == 0);
        has_prev = true;
    }

    /* point 1 again onto point 0 from an earlier run, whose chunk 1 is gone: refused */
    struct repo_index p0 = {0};
    CHECK(repo_get_index(r, &index[0], &p0, &err) == 0);
    if (p0.n > 1) {
        char key[80], path[4200];
        repo_chunk_key(&p0.digests[1], key);
        snprintf(path, sizeof path, "%s/%s", test_path("repo"), key);
        CHECK(unlink(path) == 0);
        uint8_t *img0 = calloc(1, max);
        test_fill(fresh, max, 100);
        memcpy(img0, fresh, 100 * KiB);
        struct stream_index *si = write_point(&points[1], img0, 1);
        repo_digest d;
        struct repo_disk_stats st;
        CHECK(si && import_replay_disk(r, &p0, true, si, &d, &st, &err) == -1);
        CHECK_MSG(strstr(err.msg, "chunk 1 of the previous point is missing") != NULL, "%s",
                  err.msg);
        stream_index_free(si);
        free(img0);
    }
    repo_index_free(&p0);
    repo_index_free(&prev);
    free(img);
    free(fresh);
    repo_close(r);
}

int main(void)
{
    test_chain();
    return test_finish("test_import_replay");
}
