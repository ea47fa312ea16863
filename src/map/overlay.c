#include "overlay.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fileutil.h"
#include "log.h"
#include "overlay_identity.h"
#include "overlay_mapfile.h"
#include "overlay_maplog.h"

#define CHUNK_BLOCKS OVERLAY_CHUNK_BLOCKS
#define CHUNK_BYTES  ((uint64_t)CHUNK_BLOCKS * OVERLAY_BLOCK)
#define CHUNK_WORDS  OVERLAY_CHUNK_WORDS /* 2 bits per block in 64-bit words */
#define DIRTY_WORDS  (CHUNK_WORDS / 64)  /* a bit per map word */
#define LOG_SLACK    (4u << 20)          /* the log may exceed the map's size by this much */

struct overlay {
    int fd;
    char *data_path, *map_path, *log_path;
    char *identity;
    uint64_t size;
    uint64_t nchunks;
    uint64_t **chunks; /* NULL: every block of the chunk is OVERLAY_BASE */
    uint64_t **dirty;  /* per chunk: the words changed since the last sync (NULL: none) */
    uint64_t pending;  /* how many */
    bool temporary;    /* never save the map */
    /* what is on disk; changed under sync_lock */
    pthread_mutex_t sync_lock;
    uint64_t generation; /* of the map file (0: none yet) */
    uint8_t instance[OVERLAY_INSTANCE_LEN];
    struct overlay_maplog *log; /* NULL: the next sync saves the whole map */
};

static enum overlay_state get(const struct overlay *o, uint64_t blk)
{
    const uint64_t *c = o->chunks[blk / CHUNK_BLOCKS];
    if (!c)
        return OVERLAY_BASE;
    uint64_t i = blk % CHUNK_BLOCKS;
    return (enum overlay_state)((c[i / 32] >> (2 * (i % 32))) & 3);
}

enum overlay_state overlay_run(const struct overlay *o, uint64_t off, uint64_t max, uint64_t *run)
{
    uint64_t blk = off / OVERLAY_BLOCK;
    enum overlay_state st = get(o, blk);
    uint64_t end = off + max > o->size ? o->size : off + max;
    uint64_t pos = (blk + 1) * OVERLAY_BLOCK;
    while (pos < end) {
        uint64_t b = pos / OVERLAY_BLOCK;
        const uint64_t *c = o->chunks[b / CHUNK_BLOCKS];
        if (!c && st == OVERLAY_BASE) { /* a whole untouched chunk: skip it at once */
            pos = (b / CHUNK_BLOCKS + 1) * CHUNK_BYTES;
            continue;
        }
        if (c) {
            uint64_t i = b % CHUNK_BLOCKS;
            uint64_t w = c[i / 32];
            uint64_t same = st * 0x5555555555555555ull; /* st repeated in every 2-bit slot */
            if (i % 32 == 0 && w == same) {             /* 32 blocks alike: skip the word */
                pos += 32 * (uint64_t)OVERLAY_BLOCK;
                continue;
            }
        }
        if (get(o, b) != st)
            break;
        pos += OVERLAY_BLOCK;
    }
    *run = (pos < end ? pos : end) - off;
    return st;
}

int overlay_mark(struct overlay *o, uint64_t off, uint64_t len, enum overlay_state state,
                 struct vb_error *err)
{
    uint64_t first = off / OVERLAY_BLOCK;
    uint64_t last = (off + len + OVERLAY_BLOCK - 1) / OVERLAY_BLOCK; /* exclusive */
    for (uint64_t b = first; b < last; b++) {
        uint64_t ci = b / CHUNK_BLOCKS;
        uint64_t *c = o->chunks[ci];
        if (!c) {
            if (state == OVERLAY_BASE)
                continue;
            if (!(c = o->chunks[ci] = calloc(CHUNK_WORDS, sizeof *c)))
                return vb_error_set(err, "out of memory for the overlay map");
        }
        uint64_t i = b % CHUNK_BLOCKS, wi = i / 32;
        uint64_t shift = 2 * (i % 32);
        uint64_t w = (c[wi] & ~(3ull << shift)) | ((uint64_t)state << shift);
        if (w == c[wi])
            continue;
        uint64_t *d = o->dirty[ci];
        if (!d && !(d = o->dirty[ci] = calloc(DIRTY_WORDS, sizeof *d)))
            return vb_error_set(err, "out of memory for the overlay map");
        c[wi] = w;
        if (!(d[wi / 64] & (1ull << (wi % 64)))) {
            d[wi / 64] |= 1ull << (wi % 64);
            o->pending++;
        }
    }
    return 0;
}

int overlay_pread(struct overlay *o, uint64_t off, uint64_t len, void *dst, struct vb_error *err)
{
    for (uint64_t done = 0; done < len;) {
        ssize_t n = pread(o->fd, (char *)dst + done, len - done, (off_t)(off + done));
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return vb_error_errno(err, "%s: read at %" PRIu64, o->data_path, off + done);
        if (n == 0) { /* beyond what was ever written: a hole */
            memset((char *)dst + done, 0, len - done);
            break;
        }
        done += (uint64_t)n;
    }
    return 0;
}

int overlay_pwrite(struct overlay *o, uint64_t off, uint64_t len, const void *src,
                   struct vb_error *err)
{
    for (uint64_t done = 0; done < len;) {
        ssize_t n = pwrite(o->fd, (const char *)src + done, len - done, (off_t)(off + done));
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return vb_error_errno(err, "%s: write at %" PRIu64, o->data_path, off + done);
        done += (uint64_t)n;
    }
    return 0;
}

void overlay_punch(struct overlay *o, uint64_t off, uint64_t len)
{
    /* only a space optimisation: the map already says "zero" */
    (void)fallocate(o->fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, (off_t)off, (off_t)len);
}

static int overlay_datasync(struct overlay *o, struct vb_error *err)
{
    if (fdatasync(o->fd) < 0)
        return vb_error_errno(err, "%s: fdatasync", o->data_path);
    return 0;
}

/* The map's words changed since the last sync, as log entries (under the map lock). */
static struct overlay_maplog_entry *collect_changes(struct overlay *o, size_t *n)
{
    struct overlay_maplog_entry *e = malloc(o->pending * sizeof *e);
    if (!e)
        return NULL;
    size_t k = 0;
    for (uint64_t c = 0; c < o->nchunks; c++) {
        uint64_t *d = o->dirty[c];
        for (size_t j = 0; d && j < DIRTY_WORDS; j++) {
            for (uint64_t bits = d[j]; bits; bits &= bits - 1) {
                uint64_t wi = j * 64 + (uint64_t)__builtin_ctzll(bits);
                e[k].word = c * CHUNK_WORDS + wi;
                e[k].value = o->chunks[c][wi];
                k++;
            }
            d[j] = 0;
        }
    }
    o->pending = 0;
    *n = k;
    return e;
}

static void forget_changes(struct overlay *o)
{
    for (uint64_t c = 0; c < o->nchunks; c++)
        if (o->dirty[c])
            memset(o->dirty[c], 0, DIRTY_WORDS * sizeof *o->dirty[c]);
    o->pending = 0;
}

/* The whole map, encoded for the next generation (under the map lock). */
static uint8_t *encode_map(struct overlay *o, size_t *len)
{
    struct overlay_mapfile m = {.size = o->size,
                                .block = OVERLAY_BLOCK,
                                .generation = o->generation + 1,
                                .identity = o->identity};
    memcpy(m.instance, o->instance, sizeof m.instance);
    return overlay_mapfile_encode(&m, o->chunks, o->nchunks, len);
}

static uint64_t map_bytes(const struct overlay *o)
{
    uint64_t present = 0;
    for (uint64_t c = 0; c < o->nchunks; c++)
        present += o->chunks[c] != NULL;
    return present * CHUNK_WORDS * 8;
}

static bool untouched(const struct overlay *o)
{
    return o->generation == 0 && o->pending == 0 && map_bytes(o) == 0;
}

/* Saves the encoded map as the next generation and starts its log. Once the map is renamed
 * into place it holds everything: a log that cannot be started only costs the next sync
 * another checkpoint. */
static int checkpoint(struct overlay *o, const uint8_t *map, size_t len, struct vb_error *err)
{
    if (vb_write_file_atomic(o->map_path, map, len, err) < 0)
        return -1;
    o->generation++;
    overlay_maplog_close(o->log);
    struct vb_error lerr = {0};
    if (!(o->log = overlay_maplog_create(o->log_path, o->generation, o->instance, &lerr)))
        vb_warn("%s (the map is saved; the next flush saves it again)", lerr.msg);
    return 0;
}

/* One sync under sync_lock; full: save the whole map even if the log could take the
 * changes. */
static int sync_locked(struct overlay *o, pthread_rwlock_t *map_lock, bool full,
                       struct vb_error *err)
{
    uint8_t *map = NULL;
    size_t maplen = 0, n = 0;
    struct overlay_maplog_entry *changes = NULL;
    int rc = 0;
    if (map_lock)
        pthread_rwlock_rdlock(map_lock);
    if (!o->log && !untouched(o))
        full = true;
    if (!full && o->pending &&
        overlay_maplog_record_bytes(o->log) + overlay_maplog_record_size(o->pending) >
            map_bytes(o) + LOG_SLACK)
        full = true;
    if (full) {
        if ((map = encode_map(o, &maplen)))
            forget_changes(o);
        else
            rc = vb_error_set(err, "out of memory for the overlay map");
    } else if (o->pending) {
        if (!(changes = collect_changes(o, &n)))
            rc = vb_error_set(err, "out of memory for the overlay map");
    }
    if (map_lock)
        pthread_rwlock_unlock(map_lock);
    /* the data the collected map words point at is stable before they are */
    if (rc == 0)
        rc = overlay_datasync(o, err);
    if (rc == 0 && map)
        rc = checkpoint(o, map, maplen, err);
    else if (rc == 0 && n)
        rc = overlay_maplog_append(o->log, changes, n, err);
    if (rc < 0 && (map || n)) {
        /* the collected changes are saved nowhere: the next sync saves the whole map */
        overlay_maplog_close(o->log);
        o->log = NULL;
    }
    free(map);
    free(changes);
    return rc;
}

int overlay_sync(struct overlay *o, pthread_rwlock_t *map_lock, struct vb_error *err)
{
    if (o->temporary)
        return overlay_datasync(o, err);
    pthread_mutex_lock(&o->sync_lock);
    int rc = sync_locked(o, map_lock, false, err);
    pthread_mutex_unlock(&o->sync_lock);
    return rc;
}

static void overlay_free(struct overlay *o)
{
    if (o->fd >= 0)
        close(o->fd);
    overlay_maplog_close(o->log);
    for (uint64_t c = 0; o->chunks && c < o->nchunks; c++)
        free(o->chunks[c]);
    for (uint64_t c = 0; o->dirty && c < o->nchunks; c++)
        free(o->dirty[c]);
    free(o->chunks);
    free(o->dirty);
    free(o->data_path);
    free(o->map_path);
    free(o->log_path);
    free(o->identity);
    pthread_mutex_destroy(&o->sync_lock);
    free(o);
}

/* Sets one map word from the log being replayed. */
static int apply_logged(void *opaque, uint64_t word, uint64_t value, struct vb_error *err)
{
    struct overlay *o = opaque;
    uint64_t c = word / CHUNK_WORDS;
    if (!o->chunks[c]) {
        if (value == 0)
            return 0;
        if (!(o->chunks[c] = calloc(CHUNK_WORDS, sizeof *o->chunks[c])))
            return vb_error_set(err, "out of memory for the overlay map");
    }
    o->chunks[c][word % CHUNK_WORDS] = value;
    return 0;
}

/* An existing map: made for this disk? Then its blocks and the log's changes. */
static int load_map(struct overlay *o, const struct overlay_mapfile *m, struct vb_error *err)
{
    if (m->size != o->size || m->block != OVERLAY_BLOCK || strcmp(m->identity, o->identity) != 0) {
        char was[400], now[400];
        overlay_identity_summary(m->identity, was, sizeof was);
        overlay_identity_summary(o->identity, now, sizeof now);
        return vb_error_set(err,
                            "%s: this overlay belongs to another chain or point in time: it "
                            "was made for %s, not for %s: use another --overlay directory",
                            o->map_path, was, now);
    }
    if (overlay_mapfile_chunks(o->map_path, m, o->chunks, o->nchunks, err) < 0)
        return -1;
    o->generation = m->generation;
    memcpy(o->instance, m->instance, sizeof o->instance);
    int st = overlay_maplog_open(o->log_path, o->generation, o->instance, o->nchunks * CHUNK_WORDS,
                                 apply_logged, o, &o->log, err);
    if (st < 0)
        return -1;
    if (st == OVERLAY_MAPLOG_MISSING) /* a crash right after the map was saved, or removed */
        vb_info("%s: no log: the overlay is as its map says", o->log_path);
    return 0;
}

/* Opens (or creates) the data file and locks it: one process at a time uses an overlay, so
 * that two never interleave their logs and checkpoints. *created: it did not exist. */
static int open_data(struct overlay *o, bool *created, struct vb_error *err)
{
    *created = false;
    for (int attempt = 0; o->fd < 0 && attempt < 2; attempt++) {
        o->fd = open(o->data_path, O_RDWR | O_CLOEXEC);
        if (o->fd < 0 && errno == ENOENT) {
            o->fd = open(o->data_path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
            *created = o->fd >= 0;
        }
        if (o->fd < 0 && errno != EEXIST) /* EEXIST: created meanwhile, open that */
            break;
    }
    if (o->fd < 0)
        return vb_error_errno(err, "%s: cannot open the overlay file", o->data_path);
    if (flock(o->fd, LOCK_EX | LOCK_NB) < 0)
        return errno == EWOULDBLOCK
                   ? vb_error_set(err, "%s: in use by another virtmap", o->data_path)
                   : vb_error_errno(err, "%s: cannot lock", o->data_path);
    return 0;
}

/* Removes the temporaries of map and log saves that a crash left (the overlay is locked:
 * nobody is writing them). */
static void remove_stale_temporaries(const char *dir, const char *name)
{
    DIR *d = opendir(dir);
    if (!d)
        return;
    char prefix[300];
    snprintf(prefix, sizeof prefix, "%s.overlay.map", name);
    for (struct dirent *e; (e = readdir(d));) {
        /* <name>.overlay.map.XXXXXX.partial or <name>.overlay.maplog.XXXXXX.partial */
        size_t pl = strlen(prefix), l = strlen(e->d_name);
        const char *rest = e->d_name + pl;
        if (l < pl || strncmp(e->d_name, prefix, pl) != 0)
            continue;
        if (strncmp(rest, "log", 3) == 0)
            rest += 3;
        if (strlen(rest) == 15 && rest[0] == '.' && strcmp(rest + 7, ".partial") == 0)
            (void)unlinkat(dirfd(d), e->d_name, 0);
    }
    closedir(d);
}

struct overlay *overlay_open(const char *dir, const char *name, uint64_t size, const char *identity,
                             struct vb_error *err)
{
    struct overlay *o = calloc(1, sizeof *o);
    if (!o) {
        vb_error_set(err, "out of memory");
        return NULL;
    }
    bool created = false;
    o->fd = -1;
    pthread_mutex_init(&o->sync_lock, NULL);
    o->size = size;
    o->nchunks = (size + CHUNK_BYTES - 1) / CHUNK_BYTES;
    o->chunks = calloc(o->nchunks ? o->nchunks : 1, sizeof *o->chunks);
    o->dirty = calloc(o->nchunks ? o->nchunks : 1, sizeof *o->dirty);
    o->identity = strdup(identity);
    if (asprintf(&o->data_path, "%s/%s.overlay", dir, name) < 0)
        o->data_path = NULL;
    if (asprintf(&o->map_path, "%s/%s.overlay.map", dir, name) < 0)
        o->map_path = NULL;
    if (asprintf(&o->log_path, "%s/%s.overlay.maplog", dir, name) < 0)
        o->log_path = NULL;
    if (!o->chunks || !o->dirty || !o->identity || !o->data_path || !o->map_path || !o->log_path) {
        vb_error_set(err, "out of memory");
        goto fail;
    }
    if (open_data(o, &created, err) < 0)
        goto fail;
    remove_stale_temporaries(dir, name);
    struct overlay_mapfile m;
    int rc = overlay_mapfile_read(o->map_path, &m, err);
    if (rc < 0)
        goto fail;
    if (rc == 0) {
        rc = created ? vb_error_set(err, "%s: missing, but its map %s is there", o->data_path,
                                    o->map_path)
                     : load_map(o, &m, err);
        overlay_mapfile_free(&m);
        if (rc < 0)
            goto fail;
    } else {
        struct stat st;
        if (lstat(o->log_path, &st) == 0) {
            vb_error_set(err, "%s: there is no map %s for this log", o->log_path, o->map_path);
            goto fail;
        }
        if (getrandom(o->instance, sizeof o->instance, 0) != (ssize_t)sizeof o->instance) {
            vb_error_errno(err, "getrandom");
            goto fail;
        }
    }
    struct stat st;
    if (fstat(o->fd, &st) == 0 && (uint64_t)st.st_size != o->size &&
        ftruncate(o->fd, (off_t)o->size) < 0) {
        vb_error_errno(err, "%s: cannot size the overlay file", o->data_path);
        goto fail;
    }
    if (created && vb_fsync_dir_of(o->data_path, err) < 0)
        goto fail;
    return o;
fail:
    if (created) /* nothing of a refused overlay is left behind */
        unlink(o->data_path);
    overlay_free(o);
    return NULL;
}

void overlay_set_temporary(struct overlay *o)
{
    o->temporary = true;
}

int overlay_close(struct overlay *o, struct vb_error *err)
{
    if (!o)
        return 0;
    int rc;
    if (o->temporary) {
        rc = overlay_datasync(o, err);
    } else {
        pthread_mutex_lock(&o->sync_lock);
        rc = sync_locked(o, NULL, false, err);
        /* the next run need not replay the log: fold it into the map */
        if (rc == 0 && o->log && overlay_maplog_record_bytes(o->log) > 0) {
            struct vb_error cerr = {0};
            if (sync_locked(o, NULL, true, &cerr) < 0)
                vb_warn("%s (the overlay's log keeps the changes)", cerr.msg);
        }
        pthread_mutex_unlock(&o->sync_lock);
    }
    overlay_free(o);
    return rc;
}

void overlay_counts(const struct overlay *o, uint64_t *data_blocks, uint64_t *zero_blocks)
{
    *data_blocks = *zero_blocks = 0;
    for (uint64_t c = 0; c < o->nchunks; c++) {
        if (!o->chunks[c])
            continue;
        for (size_t w = 0; w < CHUNK_WORDS; w++) {
            uint64_t v = o->chunks[c][w];
            uint64_t lo = v & 0x5555555555555555ull, hi = (v >> 1) & 0x5555555555555555ull;
            *data_blocks += (uint64_t)__builtin_popcountll(lo & ~hi);
            *zero_blocks += (uint64_t)__builtin_popcountll(hi & ~lo);
        }
    }
}
