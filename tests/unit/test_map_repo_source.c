/* virtmap's repository data source (repo_source.h) on a small repository made here: reads
 * of any size and alignment equal the disk, also from several threads at once with the
 * read-ahead workers running; all-zero chunks are holes in the block status, runs merged;
 * a damaged chunk fails the reads that need it, naming the disk, the offset and the chunk's
 * digest, while reads of other chunks still work; --verify's walk finds it too; the overlay
 * identity names the snapshot. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "block_cache.h"
#include "fetch_pool.h"
#include "nbd_proto.h"
#include "repo.h"
#include "repo_source.h"
#include "testutil.h"

#define CS     (64u << 10)
#define NCHUNK 40
#define SIZE   ((uint64_t)NCHUNK * CS - 1000) /* a short last chunk */

static uint8_t *disk;
static struct map_source *src;

/* chunks 3..9 and 20 all-zero; chunks 11 and 12 the same content (stored once) */
static bool zero_chunk(size_t n)
{
    return (n >= 3 && n <= 9) || n == 20;
}

static struct repo *make_repo(struct repo_index *idx, struct vb_error *err)
{
    struct repo_config cfg;
    repo_config_default(&cfg);
    cfg.chunk_size = CS;
    if (repo_init(test_path("repo"), &cfg, err) < 0)
        return NULL;
    struct repo *r = repo_open(test_path("repo"), NULL, err);
    if (!r || repo_index_init(idx, SIZE, CS, err) < 0)
        return NULL;
    disk = calloc(1, SIZE);
    for (size_t n = 0; n < NCHUNK; n++) {
        uint32_t len = repo_index_chunk_len(idx, n);
        if (zero_chunk(n))
            continue;
        test_fill(disk + n * CS, len, n == 12 ? 11 : n + 1);
        repo_digest_of(disk + n * CS, len, &idx->digests[n]);
        if (repo_put_chunk(r, &idx->digests[n], disk + n * CS, len, NULL, NULL, err) < 0)
            return NULL;
    }
    return r;
}

struct reader {
    unsigned seed;
    int bad;
};

static void *reader_main(void *arg)
{
    struct reader *rd = arg;
    uint8_t *buf = malloc(3 * CS);
    struct vb_error err = {0};
    for (int i = 0; i < 300; i++) {
        uint64_t off = (uint64_t)rand_r(&rd->seed) % SIZE;
        size_t len = 1 + (size_t)rand_r(&rd->seed) % (3 * CS);
        if (len > SIZE - off)
            len = SIZE - off;
        if (src->ops->read(src, off, len, buf, &err) < 0 || memcmp(buf, disk + off, len) != 0)
            rd->bad++;
    }
    /* and a sequential pass, which the read-ahead serves */
    for (uint64_t off = 0; off < SIZE; off += 4096) {
        size_t len = SIZE - off < 4096 ? (size_t)(SIZE - off) : 4096;
        if (src->ops->read(src, off, len, buf, &err) < 0 || memcmp(buf, disk + off, len) != 0)
            rd->bad++;
    }
    free(buf);
    return NULL;
}

int main(void)
{
    struct vb_error err = {0};
    struct repo_index idx = {0};
    struct repo *r = make_repo(&idx, &err);
    CHECK_MSG(r != NULL, "%s", err.msg);
    if (!r)
        return test_finish("test_map_repo_source");
    repo_digest id;
    CHECK_MSG(repo_put_index(r, &idx, &id, &err) == 0, "%s", err.msg);
    struct repo_manifest_disk d = {
        .target = "vda", .virtual_size = SIZE, .chunk_size = CS, .index = id};
    struct repo_manifest m = {.id = "20261208T000000Z-0a0b0c0d",
                              .vm = "vm1",
                              .uuid = "11111111-2222-3333-4444-555555555555",
                              .time = "2026-12-08T00:00:00+00:00",
                              .level = REPO_LEVEL_FULL};
    struct block_cache *cache = block_cache_new(8 * CS);
    struct fetch_pool *pool = fetch_pool_new(3, &err);
    CHECK(cache && pool);
    struct chunk_buffers *bufs = chunk_buffers_new(CS, 2);
    block_cache_set_release(cache, chunk_buffers_put, bufs);
    src = repo_source_open(r, &m, &d, cache, pool, bufs, &err);
    CHECK_MSG(src != NULL, "%s", err.msg);
    if (!src)
        return test_finish("test_map_repo_source");
    CHECK(src->size == SIZE);
    CHECK(strstr(src->identity, "snapshot 20261208T000000Z-0a0b0c0d") != NULL);
    CHECK(strstr(src->description, "32 of 40 chunks") != NULL);

    /* four readers at once, random and sequential, the workers fetching ahead */
    pthread_t t[4];
    struct reader rd[4];
    for (int i = 0; i < 4; i++) {
        rd[i] = (struct reader){.seed = (unsigned)i * 7 + 1};
        pthread_create(&t[i], NULL, reader_main, &rd[i]);
    }
    for (int i = 0; i < 4; i++) {
        pthread_join(t[i], NULL);
        CHECK_MSG(rd[i].bad == 0, "reader %d: %d reads differ or failed", i, rd[i].bad);
    }
    struct block_cache_stats st;
    block_cache_stats(cache, &st);
    CHECK_MSG(st.bytes <= st.limit, "the cache holds %zu bytes, over its %zu", st.bytes, st.limit);

    /* block status: chunks 0-2 data, 3-9 hole, from 10 data to 20, which is a hole */
    uint64_t run;
    CHECK(src->ops->status(src, 100, SIZE - 100, &run) == 0 && run == 3 * CS - 100);
    CHECK(src->ops->status(src, 3 * CS + 5, SIZE, &run) == (NBD_STATE_HOLE | NBD_STATE_ZERO) &&
          run == 7 * CS - 5);
    CHECK(src->ops->status(src, 10 * CS, 4096, &run) == 0 && run == 4096);
    CHECK(src->ops->status(src, 20 * CS, SIZE - 20 * CS, &run) ==
              (NBD_STATE_HOLE | NBD_STATE_ZERO) &&
          run == CS);
    CHECK(src->ops->status(src, 39 * CS, SIZE - 39 * CS, &run) == 0 && run == SIZE - 39 * CS);
    CHECK(src->ops->verify(src, &err) == 0);

    /* chunk 30 damaged: its reads fail naming it; chunk 29 and 31 still read */
    fetch_pool_free(pool);
    pool = NULL;
    block_cache_free(cache);
    chunk_buffers_free(bufs);
    cache = block_cache_new(8 * CS);
    src->ops->close(src);
    src = repo_source_open(r, &m, &d, cache, NULL, NULL, &err);
    CHECK_MSG(src != NULL, "%s", err.msg);
    char hex[65], key[80], path[4200];
    repo_digest_hex(&idx.digests[30], hex);
    repo_chunk_key(&idx.digests[30], key);
    snprintf(path, sizeof path, "%s/%s", test_path("repo"), key);
    void *obj;
    size_t olen;
    CHECK(test_read_file(path, &obj, &olen) == 0);
    ((uint8_t *)obj)[olen - 1] ^= 1;
    CHECK(test_write_file(path, obj, olen) == 0);
    free(obj);
    uint8_t *buf = malloc(2 * CS);
    char want[200];
    snprintf(want, sizeof want, "disk vda, offset %u: chunk %s: ", 30 * CS, hex);
    CHECK(src->ops->read(src, 30 * CS + 7, 100, buf, &err) == -1);
    CHECK_MSG(strstr(err.msg, want) != NULL, "'%s' lacks '%s'", err.msg, want);
    CHECK(src->ops->read(src, 29 * CS, 2 * CS, buf, &err) == -1);
    CHECK(src->ops->read(src, 29 * CS, CS, buf, &err) == 0 && memcmp(buf, disk + 29 * CS, CS) == 0);
    CHECK(src->ops->read(src, 31 * CS, CS, buf, &err) == 0 && memcmp(buf, disk + 31 * CS, CS) == 0);
    CHECK(src->ops->verify(src, &err) == -1 && strstr(err.msg, hex) != NULL);
    free(buf);

    src->ops->close(src);
    block_cache_free(cache);
    repo_index_free(&idx);
    repo_close(r);
    free(disk);
    return test_finish("test_map_repo_source");
}
