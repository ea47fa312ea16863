/* The repository handle (src/repo/repo.c): init and open and what they refuse, chunks put
 * once (an intact object is not put again, a damaged one is replaced), reads that find
 * damage and name the chunk, indexes, manifests, the snapshot list and deletion. The rules
 * are in virtbackup-repository(5). */
#include "object.h"
#include "repo.h"
#include "snapshot_writer.h"
#include "testutil.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#define UUID1 "0f9a6d1e-4c3b-4e8a-9d2f-1a2b3c4d5e6f"
#define UUID2 "aa9a6d1e-4c3b-4e8a-9d2f-1a2b3c4d5e6f"

static int mode_of(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 ? (int)(st.st_mode & 07777) : -1;
}

static ino_t inode_of(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 ? st.st_ino : 0;
}

static bool has(const struct vb_error *err, const char *what)
{
    return strstr(err->msg, what) != NULL;
}

static void test_init_open(void)
{
    struct repo_config cfg;
    repo_config_default(&cfg);
    struct vb_error err = {0};

    /* a new directory, made private */
    CHECK_MSG(repo_init(test_path("r1"), &cfg, &err) == 0, "%s", err.msg);
    CHECK(mode_of(test_path("r1")) == 0700);
    CHECK(repo_is_repository(test_path("r1")));
    CHECK(repo_init(test_path("r1"), &cfg, &err) == -1);
    CHECK_MSG(has(&err, "is a repository already"), "%s", err.msg);

    /* an empty existing directory is taken and made private; one with anything in it not */
    CHECK(mkdir(test_path("r2"), 0755) == 0);
    CHECK_MSG(repo_init(test_path("r2"), &cfg, &err) == 0, "%s", err.msg);
    CHECK(mode_of(test_path("r2")) == 0700);
    CHECK(mkdir(test_path("full"), 0755) == 0);
    CHECK(test_write_file(test_path("full/vda.full.data"), "x", 1) == 0);
    CHECK(repo_init(test_path("full"), &cfg, &err) == -1);
    CHECK_MSG(has(&err, "not empty") && has(&err, "full"), "%s", err.msg);
    CHECK(!repo_is_repository(test_path("full")));
    CHECK(access(test_path("full/config"), F_OK) == -1);
    CHECK(test_write_file(test_path("afile"), "x", 1) == 0);
    CHECK(repo_init(test_path("afile"), &cfg, &err) == -1);
    CHECK(!repo_is_repository(test_path("afile")));
    CHECK(repo_init(test_path("no/such/parent"), &cfg, &err) == -1);
    CHECK(!repo_is_repository(test_path("nothing")));

    /* an invalid config is refused before anything is made */
    struct repo_config bad = cfg;
    bad.chunk_size = 1000;
    CHECK(repo_init(test_path("r3"), &bad, &err) == -1);
    CHECK_MSG(has(&err, "chunk_size"), "%s", err.msg);
    CHECK(access(test_path("r3"), F_OK) == -1);

    /* open reads the config back */
    struct repo *r = repo_open(test_path("r1"), NULL, &err);
    CHECK_MSG(r != NULL, "%s", err.msg);
    if (r) {
        CHECK(strcmp(r->config.id, cfg.id) == 0);
        CHECK(r->config.chunk_size == cfg.chunk_size);
        CHECK(r->config.compression == cfg.compression);
        repo_close(r);
    }

    /* what open refuses, naming the file */
    CHECK(repo_open(test_path("nothing"), NULL, &err) == NULL);
    CHECK(repo_open(test_path("full"), NULL, &err) == NULL);
    CHECK_MSG(has(&err, "not a repository"), "%s", err.msg);
    CHECK(mkdir(test_path("v2"), 0700) == 0);
    const char *v2 = "{\"format\": \"virtbackup-repository\", \"version\": 2, \"id\": "
                     "\"0123456789abcdef0123456789abcdef\", \"chunk_size\": 4194304, "
                     "\"compression\": \"zstd\", \"compression_level\": 1, \"created\": "
                     "\"2026-12-07T18:00:00Z\", \"encryption\": \"none\"}";
    CHECK(test_write_file(test_path("v2/config"), v2, strlen(v2)) == 0);
    CHECK(repo_is_repository(test_path("v2"))); /* a repository, of a later version */
    CHECK(repo_open(test_path("v2"), NULL, &err) == NULL);
    CHECK_MSG(has(&err, "v2/config") && has(&err, "version"), "%s", err.msg);
    CHECK(mkdir(test_path("other"), 0700) == 0);
    CHECK(test_write_file(test_path("other/config"), "{\"format\": \"x\"}", 15) == 0);
    CHECK(!repo_is_repository(test_path("other")));
    CHECK(repo_open(test_path("other"), NULL, &err) == NULL);
    CHECK_MSG(has(&err, "other/config"), "%s", err.msg);
}

/* repo_put_chunk: 0 put, 1 there already, -1 error */
static int put_chunk(struct repo *r, const repo_digest *d, const void *raw, size_t len,
                     uint64_t *stored, struct vb_error *err)
{
    bool was_new = true;
    uint64_t n = 12345;
    int rc = repo_put_chunk(r, d, raw, len, &was_new, &n, err);
    CHECK(rc < 0 || (was_new ? n > 0 : n == 0));
    if (stored)
        *stored = n;
    return rc < 0 ? -1 : was_new ? 0 : 1;
}

static const char *chunk_path(struct repo *r, const repo_digest *d)
{
    char key[80];
    repo_chunk_key(d, key);
    static char path[4096];
    snprintf(path, sizeof path, "%s/%s", r->path, key);
    return path;
}

static void flip_byte(const char *path, size_t off)
{
    void *buf;
    size_t len;
    CHECK(test_read_file(path, &buf, &len) == 0 && off < len);
    ((unsigned char *)buf)[off] ^= 0x40;
    CHECK(test_write_file(path, buf, len) == 0);
    free(buf);
}

static void test_chunks(void)
{
    struct repo_config cfg;
    repo_config_default(&cfg);
    struct vb_error err = {0};
    CHECK(repo_init(test_path("chunks"), &cfg, &err) == 0);
    struct repo *r = repo_open(test_path("chunks"), NULL, &err);
    CHECK_MSG(r != NULL, "%s", err.msg);
    if (!r)
        return;

    size_t len = 1u << 20;
    unsigned char *data = malloc(len);
    test_fill(data, len, 42);
    repo_digest d;
    repo_digest_of(data, len, &d);
    char hex[REPO_DIGEST_HEX + 1];
    repo_digest_hex(&d, hex);

    uint64_t stored = 0;
    CHECK_MSG(put_chunk(r, &d, data, len, &stored, &err) == 0, "%s", err.msg);
    CHECK(stored >= len && stored == (uint64_t)len + REPO_OBJECT_HEADER_SIZE); /* random */
    ino_t ino = inode_of(chunk_path(r, &d));
    CHECK(ino != 0);
    uint32_t raw_size = 0;
    CHECK(repo_chunk_check(r, &d, &raw_size, &err) == 0 && raw_size == len);
    CHECK(repo_chunk_size(r) == cfg.chunk_size);

    /* present and intact: not put again */
    CHECK(put_chunk(r, &d, data, len, &stored, &err) == 1 && stored == 0);
    CHECK(inode_of(chunk_path(r, &d)) == ino);

    void *back = NULL;
    size_t back_len = 0;
    CHECK_MSG(repo_get_chunk(r, &d, &back, &back_len, &err) == 0, "%s", err.msg);
    CHECK(back_len == len && memcmp(back, data, len) == 0);
    free(back);

    /* a truncated object is replaced */
    CHECK(truncate(chunk_path(r, &d), 1000) == 0);
    CHECK(repo_chunk_check(r, &d, &raw_size, &err) == -1);
    CHECK_MSG(has(&err, hex), "%s", err.msg);
    CHECK(repo_get_chunk(r, &d, &back, &back_len, &err) == -1);
    CHECK_MSG(has(&err, hex), "%s", err.msg);
    CHECK(put_chunk(r, &d, data, len, &stored, &err) == 0 && stored > 0);
    CHECK(repo_get_chunk(r, &d, &back, &back_len, &err) == 0 && back_len == len);
    free(back);

    /* a damaged header is replaced */
    flip_byte(chunk_path(r, &d), 9);
    CHECK(put_chunk(r, &d, data, len, &stored, &err) == 0 && stored > 0);
    CHECK(repo_get_chunk(r, &d, &back, &back_len, &err) == 0 && back_len == len);
    free(back);

    /* damage in the payload passes the header check (no data read to put) but not a read */
    flip_byte(chunk_path(r, &d), 5000);
    CHECK(put_chunk(r, &d, data, len, &stored, &err) == 1);
    CHECK(repo_get_chunk(r, &d, &back, &back_len, &err) == -1);
    CHECK_MSG(has(&err, "chunk") && has(&err, hex), "%s", err.msg);

    /* another chunk's object under this name: the digest check finds it */
    unsigned char *other = malloc(len);
    test_fill(other, len, 43);
    repo_digest od;
    repo_digest_of(other, len, &od);
    CHECK(put_chunk(r, &od, other, len, NULL, &err) == 0);
    void *obj;
    size_t obj_len;
    CHECK(test_read_file(chunk_path(r, &od), &obj, &obj_len) == 0);
    CHECK(test_write_file(chunk_path(r, &d), obj, obj_len) == 0);
    free(obj);
    CHECK(repo_get_chunk(r, &d, &back, &back_len, &err) == -1);
    CHECK_MSG(has(&err, hex), "%s", err.msg);

    /* missing */
    CHECK(unlink(chunk_path(r, &d)) == 0);
    CHECK(repo_chunk_check(r, &d, &raw_size, &err) == 1);
    CHECK(repo_get_chunk(r, &d, &back, &back_len, &err) == -1);
    CHECK_MSG(has(&err, hex) && has(&err, "missing"), "%s", err.msg);
    CHECK(put_chunk(r, &d, data, len, &stored, &err) == 0);

    /* compressible content is stored smaller; a short last chunk keeps its size */
    memset(data, 'a', len);
    repo_digest_of(data, 12345, &d);
    CHECK(put_chunk(r, &d, data, 12345, &stored, &err) == 0);
    CHECK(stored > 0 && stored < 12345);
    CHECK(repo_get_chunk(r, &d, &back, &back_len, &err) == 0 && back_len == 12345);
    free(back);
    CHECK(put_chunk(r, &d, data, 12345, &stored, &err) == 1);
    /* an intact object of another content size under this digest: the caller's digest is
     * wrong, and the object stays */
    CHECK(put_chunk(r, &d, data, 100, &stored, &err) == -1);
    CHECK_MSG(has(&err, "12345") && has(&err, "100"), "%s", err.msg);
    CHECK(repo_get_chunk(r, &d, &back, &back_len, &err) == 0 && back_len == 12345);
    free(back);

    /* refused: the zero mark, more than the chunk size */
    repo_digest zero = {{0}};
    CHECK(put_chunk(r, &zero, data, 10, &stored, &err) == -1);
    CHECK(put_chunk(r, &d, data, (size_t)cfg.chunk_size + 1, &stored, &err) == -1);

    free(data);
    free(other);
    repo_close(r);
}

static void test_indexes(void)
{
    struct repo_config cfg;
    repo_config_default(&cfg);
    struct vb_error err = {0};
    CHECK(repo_init(test_path("indexes"), &cfg, &err) == 0);
    struct repo *r = repo_open(test_path("indexes"), NULL, &err);
    if (!r)
        return;
    struct repo_index idx, back;
    CHECK(repo_index_init(&idx, (10u << 20) + 7, 4u << 20, &err) == 0);
    test_fill(idx.digests[0].b, 32, 1);
    test_fill(idx.digests[2].b, 32, 2); /* [1] stays the zero mark */
    repo_digest d, d2;
    char key[80], path[4096];
    CHECK_MSG(repo_put_index(r, &idx, &d, &err) == 0, "%s", err.msg);
    CHECK(repo_index_exists(r, &d, &err) == 0);
    repo_index_key(&d, key);
    snprintf(path, sizeof path, "%s/%s", r->path, key);
    ino_t ino = inode_of(path);
    CHECK(repo_put_index(r, &idx, &d2, &err) == 0);
    CHECK(memcmp(&d, &d2, sizeof d) == 0);
    CHECK(inode_of(path) == ino); /* not put again */
    CHECK_MSG(repo_get_index(r, &d, &back, &err) == 0, "%s", err.msg);
    CHECK(back.virtual_size == idx.virtual_size && back.chunk_size == idx.chunk_size &&
          back.n == 3 && memcmp(back.digests, idx.digests, 3 * sizeof *idx.digests) == 0);
    repo_index_free(&back);
    repo_digest missing;
    test_fill(missing.b, 32, 99);
    char hex[REPO_DIGEST_HEX + 1];
    repo_digest_hex(&missing, hex);
    CHECK(repo_get_index(r, &missing, &back, &err) == -1);
    CHECK_MSG(has(&err, "index") && has(&err, hex), "%s", err.msg);
    repo_index_free(&back);
    CHECK(repo_index_exists(r, &missing, &err) == 1);
    /* a damaged header: not there as the format means it, and put again */
    CHECK(truncate(path, 30) == 0);
    CHECK(repo_index_exists(r, &d, &err) == -1);
    CHECK_MSG(has(&err, "index") && has(&err, "indexes/"), "%s", err.msg);
    CHECK(repo_put_index(r, &idx, &d2, &err) == 0 && repo_index_exists(r, &d, &err) == 0);
    repo_index_free(&idx);
    repo_close(r);
}

static void sample_manifest(struct repo_manifest *m, const char *uuid, const char *id)
{
    memset(m, 0, sizeof *m);
    snprintf(m->id, sizeof m->id, "%s", id);
    m->vm = strdup("vm1");
    snprintf(m->uuid, sizeof m->uuid, "%s", uuid);
    strcpy(m->time, "2026-12-07T18:00:00+00:00");
    m->level = REPO_LEVEL_COPY;
    m->domain_xml = strdup("<domain type='kvm'><name>vm1</name></domain>");
    m->n_disks = 1;
    m->disks = calloc(1, sizeof *m->disks);
    m->disks[0].target = strdup("vda");
    m->disks[0].virtual_size = 1 << 20;
    m->disks[0].chunk_size = 4 << 20;
    test_fill(m->disks[0].index.b, 32, 5);
    m->disks[0].format = strdup("qcow2");
}

struct refs {
    char uuid[8][REPO_UUID_LEN + 1];
    char id[8][32];
    size_t n, total;
};

/* the first 8 refs, and how many */
static int add_ref(void *ctx, const char *uuid, const char *id, struct vb_error *err)
{
    (void)err;
    struct refs *l = ctx;
    if (l->n < 8) {
        snprintf(l->uuid[l->n], sizeof l->uuid[0], "%s", uuid);
        snprintf(l->id[l->n++], sizeof l->id[0], "%s", id);
    }
    l->total++;
    return 0;
}

static int refuse_ref(void *ctx, const char *uuid, const char *id, struct vb_error *err)
{
    (void)uuid;
    (void)id;
    ++*(int *)ctx;
    return vb_error_set(err, "refused by the caller");
}

/* virtrepo init of one new directory by several processes at once: exactly one succeeds,
 * the others fail, and the config is the winner's */
enum { INIT_RACERS = 8 };

static void test_init_race(void)
{
    for (int round = 0; round < 20; round++) {
        char path[64];
        snprintf(path, sizeof path, "race%d", round);
        int go[2], res[2];
        CHECK(pipe(go) == 0 && pipe(res) == 0);
        pid_t pids[INIT_RACERS];
        for (int i = 0; i < INIT_RACERS; i++) {
            pids[i] = fork();
            if (pids[i] == 0) {
                close(go[1]);
                char c;
                /* all start when the pipe closes */
                if (read(go[0], &c, 1) < 0)
                    _exit(2);
                struct repo_config cfg;
                repo_config_default(&cfg);
                struct vb_error err = {0};
                int ok = repo_init(test_path(path), &cfg, &err) == 0;
                char line[40] = {0};
                if (ok)
                    memcpy(line, cfg.id, sizeof cfg.id < sizeof line ? sizeof cfg.id : sizeof line);
                _exit(write(res[1], line, sizeof line) == (ssize_t)sizeof line ? 0 : 2);
            }
        }
        close(go[0]);
        close(go[1]);
        close(res[1]);
        int winners = 0;
        char won_id[40] = {0}, line[40];
        while (read(res[0], line, sizeof line) == (ssize_t)sizeof line)
            if (line[0]) {
                winners++;
                memcpy(won_id, line, sizeof line);
            }
        close(res[0]);
        for (int i = 0; i < INIT_RACERS; i++)
            waitpid(pids[i], NULL, 0);
        CHECK_MSG(winners == 1, "round %d: %d of %d inits succeeded", round, winners, INIT_RACERS);
        struct vb_error err = {0};
        struct repo *r = repo_open(test_path(path), NULL, &err);
        CHECK_MSG(r != NULL, "%s", err.msg);
        if (r) {
            CHECK_MSG(strncmp(r->config.id, won_id, sizeof won_id - 1) == 0,
                      "round %d: config id %s, the winner made %s", round, r->config.id, won_id);
            repo_close(r);
        }
    }
}

/* a disk whose index would not fit in one object is refused when its writer is made, before
 * any chunk is read (the index is put last) */
static void test_writer_limits(void)
{
    struct repo_config cfg;
    repo_config_default(&cfg);
    cfg.chunk_size = 64 << 10;
    struct vb_error err = {0};
    CHECK(repo_init(test_path("small"), &cfg, &err) == 0);
    struct repo *r = repo_open(test_path("small"), NULL, &err);
    if (!r)
        return;
    uint64_t max = repo_index_max_size(cfg.chunk_size);
    CHECK(max == (128ull << 30) - (64 << 10));
    CHECK(repo_disk_writer_new(r, max + 1, 1, &err) == NULL);
    CHECK_MSG(has(&err, "--chunk-size") && has(&err, "137438887936"), "%s", err.msg);
    struct repo_disk_writer *w = repo_disk_writer_new(r, 1 << 20, 1, &err);
    CHECK_MSG(w != NULL, "%s", err.msg);
    repo_disk_writer_free(w);
    repo_close(r);
}

/* an incremental's chunks taken from its base by digest: not read, counted as copied (an
 * all-zero one as zero), in the index as given; a chunk is still given once */
static void test_writer_put_digest(void)
{
    struct repo_config cfg;
    repo_config_default(&cfg);
    cfg.chunk_size = 64 << 10;
    struct vb_error err = {0};
    CHECK(repo_init(test_path("inc"), &cfg, &err) == 0);
    struct repo *r = repo_open(test_path("inc"), NULL, &err);
    if (!r)
        return;
    const size_t cs = cfg.chunk_size;
    unsigned char *data = malloc(cs);
    test_fill(data, cs, 7);
    repo_digest d, zero = {0}, idx_digest;
    repo_digest_of(data, cs, &d);
    struct repo_disk_writer *w = repo_disk_writer_new(r, 3 * cs, 1, &err);
    CHECK(w && repo_disk_writer_put(w, 0, data, cs, cs, &err) == 0);
    CHECK(w && repo_disk_writer_put_digest(w, cs, &d, &err) == 0);
    CHECK(w && repo_disk_writer_put_digest(w, 2 * cs, &zero, &err) == 0);
    CHECK(w && repo_disk_writer_put_digest(w, cs, &d, &err) == -1);
    CHECK_MSG(has(&err, "given twice"), "%s", err.msg);
    struct repo_disk_stats st = {0};
    CHECK_MSG(w && repo_disk_writer_finish(w, &idx_digest, &st, &err) == 0, "%s", err.msg);
    CHECK(st.chunks == 3 && st.chunks_copied == 1 && st.chunks_zero == 1 && st.chunks_new == 1);
    CHECK(st.bytes_read == cs && st.bytes_new == cs);
    struct repo_index idx = {0};
    CHECK(repo_get_index(r, &idx_digest, &idx, &err) == 0 && idx.n == 3);
    if (idx.n == 3)
        CHECK(memcmp(&idx.digests[0], &d, sizeof d) == 0 &&
              memcmp(&idx.digests[1], &d, sizeof d) == 0 && repo_digest_is_zero(&idx.digests[2]));
    repo_index_free(&idx);
    repo_disk_writer_free(w);
    free(data);
    repo_close(r);
}

static void test_snapshots(void)
{
    struct repo_config cfg;
    repo_config_default(&cfg);
    struct vb_error err = {0};
    CHECK(repo_init(test_path("snaps"), &cfg, &err) == 0);
    struct repo *r = repo_open(test_path("snaps"), NULL, &err);
    if (!r)
        return;
    static const char *const ids[][2] = {
        {UUID1, "20261207T180000Z-0000000a"},
        {UUID2, "20261201T000000Z-ffffffff"},
        {UUID1, "20261130T120000Z-12345678"},
        {UUID2, "20261207T180000Z-0000000a"}, /* the same id as another VM's */
    };
    for (size_t i = 0; i < 4; i++) {
        struct repo_manifest m;
        sample_manifest(&m, ids[i][0], ids[i][1]);
        CHECK_MSG(repo_put_manifest(r, &m, &err) == 0, "%s", err.msg);
        repo_manifest_free(&m);
    }
    struct repo_manifest m;
    sample_manifest(&m, UUID1, ids[0][1]);
    CHECK(repo_put_manifest(r, &m, &err) == -1);
    CHECK_MSG(has(&err, "exists already"), "%s", err.msg);
    repo_manifest_free(&m);

    /* a name that is no snapshot key is skipped, not listed */
    CHECK(r->store->ops->put(r->store, "snapshots/" UUID1 "/notes.txt", "x", 1, &err) == 0);

    struct refs l = {0};
    CHECK(repo_list_snapshots(r, NULL, add_ref, &l, &err) == 0);
    CHECK(l.total == 4);
    if (l.total == 4) {
        CHECK(strcmp(l.id[0], ids[2][1]) == 0 && strcmp(l.id[1], ids[1][1]) == 0);
        CHECK(strcmp(l.id[2], ids[0][1]) == 0 && strcmp(l.uuid[2], UUID1) == 0);
        CHECK(strcmp(l.id[3], ids[0][1]) == 0 && strcmp(l.uuid[3], UUID2) == 0);
    }
    memset(&l, 0, sizeof l);
    CHECK(repo_list_snapshots(r, UUID1, add_ref, &l, &err) == 0);
    CHECK(l.total == 2 && strcmp(l.id[0], ids[2][1]) == 0 && strcmp(l.id[1], ids[0][1]) == 0);
    CHECK(repo_list_snapshots(r, "../x", add_ref, &l, &err) == -1);
    int calls = 0;
    CHECK(repo_list_snapshots(r, NULL, refuse_ref, &calls, &err) == -1 && calls == 1);
    CHECK_MSG(has(&err, "refused by the caller"), "%s", err.msg);

    /* get by uuid and id, or by an id only one VM has */
    CHECK_MSG(repo_get_manifest(r, UUID2, ids[1][1], &m, &err) == 0, "%s", err.msg);
    CHECK(strcmp(m.uuid, UUID2) == 0 && strcmp(m.id, ids[1][1]) == 0);
    repo_manifest_free(&m);
    CHECK(repo_get_manifest(r, NULL, ids[2][1], &m, &err) == 0 && strcmp(m.uuid, UUID1) == 0);
    repo_manifest_free(&m);
    CHECK(repo_get_manifest(r, NULL, ids[0][1], &m, &err) == -1);
    CHECK_MSG(has(&err, "name the VM"), "%s", err.msg);
    repo_manifest_free(&m);
    CHECK(repo_get_manifest(r, UUID2, ids[2][1], &m, &err) == -1);
    CHECK_MSG(has(&err, "not in the repository"), "%s", err.msg);
    repo_manifest_free(&m);
    CHECK(repo_get_manifest(r, UUID1, "latest", &m, &err) == -1);

    /* a manifest under another snapshot's name is refused */
    void *text;
    size_t len;
    char from[4096], to[4096];
    snprintf(from, sizeof from, "%s/snapshots/%s/%s.json", r->path, UUID1, ids[2][1]);
    snprintf(to, sizeof to, "%s/snapshots/%s/%s.json", r->path, UUID1, "20261130T120001Z-12345678");
    CHECK(test_read_file(from, &text, &len) == 0);
    CHECK(test_write_file(to, text, len) == 0);
    free(text);
    CHECK(repo_get_manifest(r, UUID1, "20261130T120001Z-12345678", &m, &err) == -1);
    CHECK_MSG(has(&err, "not the one its name says"), "%s", err.msg);
    repo_manifest_free(&m);
    CHECK(repo_delete_snapshot(r, UUID1, "20261130T120001Z-12345678", &err) == 0);

    /* delete */
    CHECK_MSG(repo_delete_snapshot(r, NULL, ids[1][1], &err) == 0, "%s", err.msg);
    CHECK(repo_delete_snapshot(r, NULL, ids[1][1], &err) == -1);
    CHECK_MSG(has(&err, "not in the repository"), "%s", err.msg);
    CHECK(repo_delete_snapshot(r, UUID1, ids[1][1], &err) == -1);
    memset(&l, 0, sizeof l);
    CHECK(repo_list_snapshots(r, NULL, add_ref, &l, &err) == 0 && l.total == 3);

    /* more snapshots than one page of the store's list */
    for (unsigned i = 0; i < 1100; i++) {
        char key[128];
        snprintf(key, sizeof key, "snapshots/%s/20250101T%02u%02u%02uZ-%08x.json", UUID2, i / 3600,
                 i / 60 % 60, i % 60, i);
        CHECK(r->store->ops->put(r->store, key, "{}", 2, &err) == 0);
    }
    memset(&l, 0, sizeof l);
    CHECK(repo_list_snapshots(r, UUID2, add_ref, &l, &err) == 0);
    CHECK_MSG(l.total == 1101, "%zu", l.total);
    CHECK(strcmp(l.id[0], "20250101T000000Z-00000000") == 0 &&
          strcmp(l.id[7], "20250101T000007Z-00000007") == 0);
    repo_close(r);
}

/* Identical chunks put by several threads at the same moment: one object, counted new once
 * (the others find it in flight or present). */
struct racer {
    struct repo *r;
    const repo_digest *d;
    const unsigned char *data;
    size_t len;
    pthread_barrier_t *start;
    bool was_new;
    uint64_t stored;
    int rc;
};

static void *race_put(void *arg)
{
    struct racer *x = arg;
    struct vb_error err = {0};
    pthread_barrier_wait(x->start);
    x->rc = repo_put_chunk(x->r, x->d, x->data, x->len, &x->was_new, &x->stored, &err);
    return NULL;
}

static void test_concurrent_puts(void)
{
    struct repo_config cfg;
    repo_config_default(&cfg);
    struct vb_error err = {0};
    CHECK(repo_init(test_path("race"), &cfg, &err) == 0);
    struct repo *r = repo_open(test_path("race"), NULL, &err);
    CHECK_MSG(r != NULL, "%s", err.msg);
    if (!r)
        return;
    size_t len = 4u << 20;
    unsigned char *data = malloc(len);
    enum { THREADS = 8, ROUNDS = 5 };
    for (int round = 0; round < ROUNDS; round++) {
        test_fill(data, len, 1000 + (uint64_t)round);
        repo_digest d;
        repo_digest_of(data, len, &d);
        pthread_barrier_t start;
        pthread_barrier_init(&start, NULL, THREADS);
        struct racer x[THREADS];
        pthread_t t[THREADS];
        for (int i = 0; i < THREADS; i++) {
            x[i] = (struct racer){.r = r, .d = &d, .data = data, .len = len, .start = &start};
            pthread_create(&t[i], NULL, race_put, &x[i]);
        }
        int news = 0, ok = 0;
        uint64_t stored = 0;
        for (int i = 0; i < THREADS; i++) {
            pthread_join(t[i], NULL);
            ok += x[i].rc == 0;
            news += x[i].was_new;
            stored += x[i].stored;
        }
        pthread_barrier_destroy(&start);
        CHECK(ok == THREADS);
        CHECK_MSG(news == 1, "round %d: %d of %d racing puts counted the chunk new", round, news,
                  THREADS);
        CHECK_MSG(stored > 0 && stored <= len + 24, "round %d: %llu bytes counted stored", round,
                  (unsigned long long)stored);
        void *back = NULL;
        size_t back_len = 0;
        CHECK(repo_get_chunk(r, &d, &back, &back_len, &err) == 0 && back_len == len &&
              memcmp(back, data, len) == 0);
        free(back);
    }
    free(data);
    repo_close(r);
}

int main(void)
{
    test_init_open();
    test_chunks();
    test_writer_limits();
    test_writer_put_digest();
    test_init_race();
    test_indexes();
    test_snapshots();
    test_concurrent_puts();
    test_cleanup();
    return test_finish("test_repo_handle");
}
