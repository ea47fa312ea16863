/* The repository handle (repo.h) over the object store: config, chunks, indexes, snapshot
 * manifests. What an object must be to count as present and what a reader checks are in
 * virtbackup-repository(5). */
#include "repo.h"

#include "bad_chunks.h"
#include "crypto.h"
#include "digest_set.h"
#include "object.h"
#include "repo_session.h"
#include "vector.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define CONFIG_MAX   (64u << 10)
#define MANIFEST_MAX (64u << 20)

/* ---- config: init, open, is_repository ---- */

static int read_config_text(struct repo_store *s, char **text, size_t *len, struct vb_error *err)
{
    void *data = NULL;
    size_t got = 0;
    int rc = s->ops->get(s, REPO_CONFIG_KEY, 0, 0, &data, &got, err);
    if (rc != 0)
        return rc;
    if (got > CONFIG_MAX) {
        free(data);
        return vb_error_set(err, "%s/%s: %zu bytes, more than a config holds", s->describe,
                            REPO_CONFIG_KEY, got);
    }
    *text = data;
    *len = got;
    return 0;
}

bool repo_is_repository(const char *path)
{
    struct stat st;
    if (stat(path, &st) < 0 || !S_ISDIR(st.st_mode))
        return false;
    struct vb_error err = {0};
    struct repo_store *s = repo_store_local_open(path, &err);
    if (!s)
        return false;
    char *text = NULL;
    size_t len = 0;
    bool is = false;
    if (read_config_text(s, &text, &len, &err) == 0) {
        json_t *o = json_loadb(text, len, 0, NULL);
        json_t *format = o ? json_object_get(o, "format") : NULL;
        is = json_is_string(format) && strcmp(json_string_value(format), REPO_CONFIG_FORMAT) == 0;
        json_decref(o);
        free(text);
    }
    s->ops->close(s);
    return is;
}

/* 0 when dir has no entries, 1 when it has, -1 on error */
static int dir_has_entries(const char *dir, struct vb_error *err)
{
    DIR *d = opendir(dir);
    if (!d)
        return vb_error_errno(err, "%s", dir);
    int found = 0;
    for (struct dirent *de; (de = readdir(d)) != NULL;)
        if (strcmp(de->d_name, ".") != 0 && strcmp(de->d_name, "..") != 0) {
            found = 1;
            break;
        }
    closedir(d);
    return found;
}

/* fsync the directory that holds path, so that a directory just made there stays */
static int sync_parent(const char *path, struct vb_error *err)
{
    char *copy = strdup(path);
    if (!copy)
        return vb_error_errno(err, "%s", path);
    char *slash = strrchr(copy, '/');
    while (slash && slash > copy && slash[1] == '\0') { /* trailing slashes */
        *slash = '\0';
        slash = strrchr(copy, '/');
    }
    const char *parent = !slash ? "." : slash == copy ? "/" : (*slash = '\0', copy);
    int fd = open(parent, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    int rc = fd < 0 || fsync(fd) < 0 ? vb_error_errno(err, "%s: syncing the directory", parent) : 0;
    if (fd >= 0)
        close(fd);
    free(copy);
    return rc;
}

int repo_init(const char *path, const struct repo_config *cfg, struct vb_error *err)
{
    if (repo_config_validate(cfg, err) < 0)
        return vb_error_prefix(err, "%s", path);
    char *text = repo_config_to_json(cfg, err);
    if (!text)
        return vb_error_prefix(err, "%s", path);
    int rc = -1;
    struct repo_store *s = NULL;
    struct stat st;
    if (mkdir(path, 0700) == 0) {
        if (sync_parent(path, err) < 0)
            goto out;
    } else if (errno != EEXIST) {
        vb_error_errno(err, "%s: creating the repository's directory", path);
        goto out;
    } else if (stat(path, &st) < 0 || !S_ISDIR(st.st_mode)) {
        if (errno == 0)
            errno = ENOTDIR;
        vb_error_errno(err, "%s", path);
        goto out;
    } else {
        if (repo_is_repository(path)) {
            vb_error_set(err, "%s: is a repository already", path);
            goto out;
        }
        int has = dir_has_entries(path, err);
        if (has < 0)
            goto out;
        if (has) {
            vb_error_set(err,
                         "%s: the directory is not empty (a repository needs a new or "
                         "empty one)",
                         path);
            goto out;
        }
        if (chmod(path, 0700) < 0) {
            vb_error_errno(err, "%s: making the directory private", path);
            goto out;
        }
    }
    s = repo_store_local_open(path, err);
    if (!s)
        goto out;
    /* two inits of one empty directory at once: one config, the other init fails */
    int put = s->ops->put_new(s, REPO_CONFIG_KEY, text, strlen(text), err);
    if (put < 0) {
        vb_error_prefix(err, "%s", path);
        goto out;
    }
    if (put == 1) {
        vb_error_set(err, "%s: is a repository already (made at the same time)", path);
        goto out;
    }
    rc = 0;
out:
    if (s)
        s->ops->close(s);
    free(text);
    return rc;
}

/* the key of an encrypted repository: checked against its fingerprint, copied */
int repo_use_key(struct repo *r, const struct repo_key *key, struct vb_error *err)
{
    if (!r->config.encrypted || !key || r->key)
        return 0;
    if (strcmp(key->fingerprint, r->config.key_fingerprint) != 0)
        return vb_error_set(err,
                            "%s: wrong key: its fingerprint is %s, the repository's key has %s",
                            r->path, key->fingerprint, r->config.key_fingerprint);
    if (!(r->key = malloc(sizeof *r->key)))
        return vb_error_errno(err, "%s", r->path);
    memcpy(r->key, key, sizeof *key);
    r->chunk_keys = (struct repo_object_keys){r->key->chunk_enc, r->key->chunk_id};
    r->index_keys = (struct repo_object_keys){NULL, r->key->chunk_id};
    return 0;
}

int repo_need_key(const struct repo *r, struct vb_error *err)
{
    if (r->config.encrypted && !r->key)
        return vb_error_set(err, "%s is encrypted: give --key FILE (or VIRTBACKUP_KEY_FILE)",
                            r->path);
    return 0;
}

void repo_chunk_name(const struct repo *r, const void *data, size_t len, repo_digest *out)
{
    repo_object_name(r->key ? &r->chunk_keys : NULL, data, len, out);
}

struct repo *repo_open(const char *path, const struct repo_key *key, struct vb_error *err)
{
    struct repo *r = calloc(1, sizeof *r);
    if (!r || !(r->path = strdup(path))) {
        vb_error_errno(err, "%s", path);
        free(r);
        return NULL;
    }
    r->in_flight = repo_digest_set_new();
    r->store = r->in_flight ? repo_store_local_open(path, err) : NULL;
    if (!r->in_flight)
        vb_error_set(err, "out of memory");
    if (!r->store) {
        vb_error_prefix(err, "opening the repository");
        repo_close(r);
        return NULL;
    }
    char *text = NULL;
    size_t len = 0;
    int rc = read_config_text(r->store, &text, &len, err);
    if (rc == 1)
        vb_error_set(err, "%s: not a repository (no %s)", path, REPO_CONFIG_KEY);
    if (rc == 0) {
        rc = repo_config_parse(text, len, &r->config, err);
        free(text);
        if (rc < 0)
            vb_error_prefix(err, "%s/%s", path, REPO_CONFIG_KEY);
    }
    if (rc == 0)
        rc = repo_use_key(r, key, err);
    if (rc != 0) {
        repo_close(r);
        return NULL;
    }
    return r;
}

void repo_close(struct repo *r)
{
    if (!r)
        return;
    repo_session_end(r->session);
    if (r->store)
        r->store->ops->close(r->store);
    repo_digest_set_free(r->in_flight);
    if (r->key) {
        repo_key_wipe(r->key);
        free(r->key);
    }
    free(r->path);
    free(r);
}

/* ---- chunks and indexes ---- */

struct gc_walk {
    struct repo *r;
    const char *key;
    char *found;
    size_t found_size;
    bool hit;
    char last[REPO_KEY_MAX + 64];
};

/* gc/<gc-id>.json: is trash/<gc-id>/<key> there? */
static int probe_trash(void *ctx, const char *gc_key, const struct repo_stat *st,
                       struct vb_error *err)
{
    struct gc_walk *w = ctx;
    (void)st;
    snprintf(w->last, sizeof w->last, "%s", gc_key);
    const char *id = gc_key + strlen("gc/");
    size_t len = strlen(id);
    if (w->hit || len <= 5 || strcmp(id + len - 5, ".json") != 0 || len - 5 > 64)
        return 0;
    snprintf(w->found, w->found_size, "trash/%.*s/%s", (int)(len - 5), id, w->key);
    struct repo_stat rs;
    int rc = w->r->store->ops->head(w->r->store, w->found, &rs, err);
    if (rc < 0)
        return -1;
    w->hit = rc == 0;
    return 0;
}

/* A reader that misses a chunk or an index looks in the trashes of garbage collection
 * (trash/<gc-id>/<key>, one per record gc/<gc-id>.json), where a gc may have moved it while
 * the reader's session was alive (virtbackup-repository(5)). 0 (found: its key), 1 in no
 * trash, -1 on error. */
static int find_in_trash(struct repo *r, const char *key, char *found, size_t found_size,
                         struct vb_error *err)
{
    struct gc_walk *w = calloc(1, sizeof *w);
    if (!w)
        return vb_error_errno(err, "%s", key);
    w->r = r;
    w->key = key;
    w->found = found;
    w->found_size = found_size;
    int rc = 0;
    for (bool more = true, first = true; more && !w->hit && rc == 0; first = false) {
        char after[sizeof w->last];
        snprintf(after, sizeof after, "%s", w->last);
        rc = r->store->ops->list(r->store, "gc/", first ? NULL : after, 0, probe_trash, w, &more,
                                 err);
    }
    bool hit = w->hit;
    free(w);
    if (rc < 0)
        return vb_error_prefix(err, "looking for %s in the trash", key);
    return hit ? 0 : 1;
}

int repo_get_stored(struct repo *r, const char *key, void **obj, size_t *len, struct vb_error *err)
{
    int rc = r->store->ops->get(r->store, key, 0, 0, obj, len, err);
    char trashed[REPO_KEY_MAX + 64];
    if (rc == 1) {
        rc = find_in_trash(r, key, trashed, sizeof trashed, err);
        if (rc == 0)
            rc = r->store->ops->get(r->store, trashed, 0, 0, obj, len, err);
        /* a gc that empties a trash moves back what new snapshots use before it deletes
         * anything: an object gone from the trash meanwhile is in its place again */
        if (rc == 1)
            rc = r->store->ops->get(r->store, key, 0, 0, obj, len, err);
    }
    return rc;
}

/* What "the object exists" means (virtbackup-repository(5)): present, its 24-byte header
 * valid and the object's size the header's. 0 so (*raw_size set), 1 missing, 2 damaged (err
 * says how), -1 on error. */
static int check_object(struct repo *r, const char *key, int kind, bool trash, uint32_t *raw_size,
                        struct vb_error *err)
{
    struct repo_store *s = r->store;
    struct repo_stat st = {0};
    char trashed[REPO_KEY_MAX + 64];
    int rc = s->ops->head(s, key, &st, err);
    if (rc == 1 && trash && find_in_trash(r, key, trashed, sizeof trashed, err) == 0) {
        key = trashed;
        rc = s->ops->head(s, key, &st, err);
    }
    if (rc != 0)
        return rc;
    void *hdr = NULL;
    size_t got = 0;
    rc = s->ops->get(s, key, 0, REPO_OBJECT_HEADER_SIZE, &hdr, &got, err);
    if (rc != 0)
        return rc; /* 1: deleted meanwhile */
    rc = repo_object_check_header(hdr, got, st.size, kind, raw_size, NULL, err);
    free(hdr);
    if (rc < 0) {
        vb_error_prefix(err, "%s/%s", r->path, key);
        return 2;
    }
    return 0;
}

/* Puts the content raw under key as an object of kind unless it is there intact. An intact
 * object of another content size is an error: the digest the caller named is not its
 * content's, and replacing the object would damage it. */
static int put_object(struct repo *r, const char *key, int kind, const repo_digest *name,
                      const void *raw, size_t len, bool *was_new, uint64_t *stored,
                      struct vb_error *err)
{
    if (was_new)
        *was_new = false;
    if (stored)
        *stored = 0;
    uint32_t present = 0;
    struct vb_error damage = {0};
    int rc = check_object(r, key, kind, false, &present, &damage);
    if (rc < 0) {
        *err = damage;
        return -1;
    }
    if (rc == 0) {
        if (present == len)
            return 0;
        return vb_error_set(err, "%s/%s holds %u bytes of content, not %zu: refusing to replace it",
                            r->path, key, present, len);
    }
    /* missing, or damaged: put (again) */
    void *obj = NULL;
    size_t obj_len = 0;
    const struct repo_object_keys *keys = !r->key                   ? NULL
                                          : kind == REPO_KIND_CHUNK ? &r->chunk_keys
                                                                    : &r->index_keys;
    if (repo_object_encode_keyed(kind, raw, len, r->config.compression, r->config.compression_level,
                                 keys, name, &obj, &obj_len, err) < 0)
        return -1;
    rc = r->store->ops->put(r->store, key, obj, obj_len, err);
    free(obj);
    if (rc < 0)
        return -1;
    if (was_new)
        *was_new = true;
    if (stored)
        *stored = obj_len;
    return 0;
}

/* The decoded content of the object of kind under key, with digest want: into buf (cap
 * bytes), or malloc'ed into *raw when buf is NULL. */
static int get_object(struct repo *r, const char *key, int kind, const repo_digest *want, void *buf,
                      size_t cap, void **raw, size_t *len, struct vb_error *err)
{
    void *obj = NULL;
    size_t obj_len = 0;
    int rc = repo_get_stored(r, key, &obj, &obj_len, err);
    if (rc == 1 && kind == REPO_KIND_CHUNK && want && repo_chunk_in_bad(r, want)) {
        char bad[80];
        repo_bad_chunk_key(want, bad);
        return vb_error_set(err, "missing (%s/%s): damaged, virtrepo verify moved it to %s/%s",
                            r->path, key, r->path, bad);
    }
    if (rc == 1)
        return vb_error_set(err, "missing (%s/%s)", r->path, key);
    if (rc < 0)
        return -1;
    const struct repo_object_keys *keys = !r->key                   ? NULL
                                          : kind == REPO_KIND_CHUNK ? &r->chunk_keys
                                                                    : &r->index_keys;
    /* an encrypted repository's index read without the key (gc, check): its HMAC name
     * cannot be verified, its content can be read */
    if (r->config.encrypted && !r->key)
        want = NULL;
    rc = buf ? repo_object_decode_keyed_into(kind, obj, obj_len, keys, want, buf, cap, len, err)
             : repo_object_decode_keyed(kind, obj, obj_len, keys, want, raw, len, err);
    free(obj);
    if (rc < 0)
        return vb_error_prefix(err, "%s/%s", r->path, key);
    return 0;
}

uint32_t repo_chunk_size(const struct repo *r)
{
    return r->config.chunk_size;
}

int repo_put_chunk(struct repo *r, const repo_digest *d, const void *raw, size_t len, bool *was_new,
                   uint64_t *stored, struct vb_error *err)
{
    char hex[REPO_DIGEST_HEX + 1], key[80];
    repo_digest_hex(d, hex);
    if (repo_need_key(r, err) < 0)
        return -1;
    if (repo_digest_is_zero(d))
        return vb_error_set(err, "chunk %s: the all-zero mark is never stored", hex);
    if (len > r->config.chunk_size)
        return vb_error_set(err, "chunk %s: %zu bytes, more than the chunk size %u", hex, len,
                            r->config.chunk_size);
    /* identical chunks put at the same moment by several workers or disks count as new
     * once; each put still checks the object, so a damaged one is replaced */
    int first = r->in_flight ? repo_digest_set_add(r->in_flight, d) : 1;
    if (first < 0)
        return vb_error_set(err, "chunk %s: out of memory", hex);
    bool put_new = false;
    uint64_t put_stored = 0;
    repo_chunk_key(d, key);
    int rc = put_object(r, key, REPO_KIND_CHUNK, d, raw, len, &put_new, &put_stored, err);
    if (first == 1 && r->in_flight)
        repo_digest_set_remove(r->in_flight, d);
    if (rc < 0)
        return vb_error_prefix(err, "chunk %s", hex);
    if (was_new)
        *was_new = first == 1 && put_new;
    if (stored)
        *stored = first == 1 ? put_stored : 0;
    return 0;
}

int repo_chunk_check(struct repo *r, const repo_digest *d, uint32_t *raw_size, struct vb_error *err)
{
    char hex[REPO_DIGEST_HEX + 1], key[80];
    repo_digest_hex(d, hex);
    repo_chunk_key(d, key);
    int rc = check_object(r, key, REPO_KIND_CHUNK, true, raw_size, err);
    if (rc == 0 || rc == 1)
        return rc;
    return vb_error_prefix(err, "chunk %s", hex);
}

int repo_chunk_check_stored(struct repo *r, const repo_digest *d, uint32_t *raw_size,
                            struct vb_error *err)
{
    char hex[REPO_DIGEST_HEX + 1], key[80];
    repo_digest_hex(d, hex);
    repo_chunk_key(d, key);
    void *obj = NULL;
    size_t len = 0;
    int rc = repo_get_stored(r, key, &obj, &len, err);
    if (rc == 1)
        rc = vb_error_set(err, "missing (%s/%s)", r->path, key);
    else if (rc == 0 && repo_object_check_stored(REPO_KIND_CHUNK, obj, len, raw_size, err) < 0)
        rc = vb_error_prefix(err, "%s/%s", r->path, key);
    free(obj);
    if (rc < 0)
        return vb_error_prefix(err, "chunk %s", hex);
    return 0;
}

int repo_get_chunk(struct repo *r, const repo_digest *d, void **raw, size_t *len,
                   struct vb_error *err)
{
    char hex[REPO_DIGEST_HEX + 1], key[80];
    repo_digest_hex(d, hex);
    repo_chunk_key(d, key);
    if (repo_need_key(r, err) < 0)
        return -1;
    if (get_object(r, key, REPO_KIND_CHUNK, d, NULL, 0, raw, len, err) < 0)
        return vb_error_prefix(err, "chunk %s", hex);
    return 0;
}

int repo_get_chunk_into(struct repo *r, const repo_digest *d, void *buf, size_t cap, size_t *len,
                        struct vb_error *err)
{
    char hex[REPO_DIGEST_HEX + 1], key[80];
    repo_digest_hex(d, hex);
    repo_chunk_key(d, key);
    if (repo_need_key(r, err) < 0)
        return -1;
    if (get_object(r, key, REPO_KIND_CHUNK, d, buf, cap, NULL, len, err) < 0)
        return vb_error_prefix(err, "chunk %s", hex);
    return 0;
}

int repo_put_index(struct repo *r, const struct repo_index *idx, repo_digest *d,
                   struct vb_error *err)
{
    void *raw = NULL;
    size_t len = 0;
    if (repo_need_key(r, err) < 0)
        return -1;
    if (repo_index_encode(idx, &raw, &len, err) < 0)
        return vb_error_prefix(err, "index");
    repo_object_name(r->key ? &r->index_keys : NULL, raw, len, d);
    char hex[REPO_DIGEST_HEX + 1], key[80];
    repo_digest_hex(d, hex);
    repo_index_key(d, key);
    int rc = put_object(r, key, REPO_KIND_INDEX, d, raw, len, NULL, NULL, err);
    free(raw);
    if (rc < 0)
        return vb_error_prefix(err, "index %s", hex);
    return 0;
}

int repo_index_exists(struct repo *r, const repo_digest *d, struct vb_error *err)
{
    char hex[REPO_DIGEST_HEX + 1], key[80];
    repo_digest_hex(d, hex);
    repo_index_key(d, key);
    uint32_t raw_size;
    int rc = check_object(r, key, REPO_KIND_INDEX, true, &raw_size, err);
    if (rc == 0 || rc == 1)
        return rc;
    return vb_error_prefix(err, "index %s", hex);
}

int repo_get_index(struct repo *r, const repo_digest *d, struct repo_index *idx,
                   struct vb_error *err)
{
    char hex[REPO_DIGEST_HEX + 1], key[80];
    repo_digest_hex(d, hex);
    repo_index_key(d, key);
    void *raw = NULL;
    size_t len = 0;
    memset(idx, 0, sizeof *idx);
    int rc = get_object(r, key, REPO_KIND_INDEX, d, NULL, 0, &raw, &len, err);
    if (rc == 0) {
        rc = repo_index_decode(raw, len, idx, err);
        free(raw);
    }
    if (rc < 0)
        return vb_error_prefix(err, "index %s", hex);
    return 0;
}

/* ---- snapshots ---- */

int repo_put_manifest(struct repo *r, const struct repo_manifest *m, struct vb_error *err)
{
    char key[REPO_KEY_MAX];
    if (repo_snapshot_key(m->uuid, m->id, key) < 0)
        return vb_error_set(err, "snapshot \"%s\" of \"%s\": not a valid id and uuid", m->id,
                            m->uuid);
    if (repo_need_key(r, err) < 0)
        return -1;
    /* right before the commit: a writer whose session went stale may have lost chunks to a
     * gc meanwhile (virtbackup-repository(5)) */
    if (r->session && repo_session_check(r->session, err) < 0)
        return vb_error_prefix(err, "snapshot %s", m->id);
    char *text =
        r->key ? repo_manifest_to_sealed_json(m, r->key, err) : repo_manifest_to_json(m, err);
    if (!text)
        return vb_error_prefix(err, "snapshot %s", m->id);
    /* a manifest is never replaced */
    int rc = r->store->ops->put_new(r->store, key, text, strlen(text), err);
    free(text);
    if (rc < 0)
        return vb_error_prefix(err, "snapshot %s", m->id);
    if (rc == 1)
        return vb_error_set(err, "snapshot %s: %s/%s exists already", m->id, r->path, key);
    return 0;
}

struct snapshot_ref {
    char uuid[REPO_UUID_LEN + 1];
    char id[32];
};

VB_VECTOR(snapshot_list, struct snapshot_ref);

/* One walk over snapshots/: the refs found, and the last key seen (where the next page
 * starts). */
struct snapshot_walk {
    struct snapshot_list *out;
    char last[1100];
};

/* snapshots/<uuid>/<id>.json */
static int collect_snapshot(void *ctx, const char *key, const struct repo_stat *st,
                            struct vb_error *err)
{
    struct snapshot_walk *w = ctx;
    snprintf(w->last, sizeof w->last, "%s", key);
    const char *uuid = key + strlen("snapshots/");
    const char *slash = strchr(uuid, '/');
    const char *id = slash ? slash + 1 : "";
    if (!slash || (size_t)(slash - uuid) != REPO_UUID_LEN ||
        strlen(id) != REPO_SNAPSHOT_ID_LEN + strlen(".json") ||
        strcmp(id + REPO_SNAPSHOT_ID_LEN, ".json") != 0) {
        return 0; /* not a snapshot's name, so no snapshot */
    }
    (void)st;
    struct snapshot_ref ref = {0};
    memcpy(ref.uuid, uuid, REPO_UUID_LEN);
    memcpy(ref.id, id, REPO_SNAPSHOT_ID_LEN);
    if (!repo_uuid_valid(ref.uuid) || !repo_snapshot_id_valid(ref.id)) {
        return 0; /* not a snapshot's name, so no snapshot */
    }
    if (vb_vector_push(w->out, ref) < 0)
        return vb_error_errno(err, "listing snapshots");
    return 0;
}

static int cmp_refs(const void *a, const void *b)
{
    const struct snapshot_ref *x = a, *y = b;
    int c = strcmp(x->id, y->id);
    return c ? c : strcmp(x->uuid, y->uuid);
}

static void snapshot_list_free(struct snapshot_list *l)
{
    free(l->v);
    memset(l, 0, sizeof *l);
}

/* The snapshots of uuid (NULL: all), sorted by id, then uuid. */
static int load_snapshots(struct repo *r, const char *uuid, struct snapshot_list *out,
                          struct vb_error *err)
{
    memset(out, 0, sizeof *out);
    if (uuid && !repo_uuid_valid(uuid))
        return vb_error_set(err, "\"%s\" is not a domain uuid", uuid);
    char prefix[REPO_KEY_MAX];
    snprintf(prefix, sizeof prefix, "snapshots/%s%s", uuid ? uuid : "", uuid ? "/" : "");
    struct snapshot_walk *w = calloc(1, sizeof *w);
    char *after = calloc(1, sizeof w->last);
    if (!w || !after) {
        free(w);
        free(after);
        return vb_error_errno(err, "listing snapshots");
    }
    w->out = out;
    int rc = 0;
    for (bool more = true, first = true; more && rc == 0; first = false) {
        rc = r->store->ops->list(r->store, prefix, first ? NULL : after, 0, collect_snapshot, w,
                                 &more, err);
        memcpy(after, w->last, sizeof w->last);
    }
    free(w);
    free(after);
    if (rc < 0) {
        snapshot_list_free(out);
        return vb_error_prefix(err, "%s", r->path);
    }
    if (out->n > 1)
        qsort(out->v, out->n, sizeof *out->v, cmp_refs);
    return 0;
}

int repo_list_snapshots(struct repo *r, const char *uuid,
                        int (*fn)(void *ctx, const char *uuid, const char *id,
                                  struct vb_error *err),
                        void *ctx, struct vb_error *err)
{
    struct snapshot_list l;
    if (load_snapshots(r, uuid, &l, err) < 0)
        return -1;
    int rc = 0;
    for (size_t i = 0; i < l.n && rc == 0; i++)
        rc = fn(ctx, l.v[i].uuid, l.v[i].id, err) < 0 ? -1 : 0;
    snapshot_list_free(&l);
    return rc;
}

/* The uuid of the VM whose snapshot is id (when the caller did not name it). */
static int find_snapshot_uuid(struct repo *r, const char *id, char uuid[REPO_UUID_LEN + 1],
                              struct vb_error *err)
{
    struct snapshot_list all;
    if (load_snapshots(r, NULL, &all, err) < 0)
        return -1;
    size_t found = 0;
    for (size_t i = 0; i < all.n; i++)
        if (strcmp(all.v[i].id, id) == 0 && found++ == 0)
            memcpy(uuid, all.v[i].uuid, REPO_UUID_LEN + 1);
    snapshot_list_free(&all);
    if (found == 0)
        return vb_error_set(err, "snapshot %s: not in the repository %s", id, r->path);
    if (found > 1)
        return vb_error_set(err, "snapshot %s: %zu VMs have a snapshot of this id; name the VM", id,
                            found);
    return 0;
}

/* The key of snapshot id of uuid (found when uuid is NULL). */
static int snapshot_key_of(struct repo *r, const char *uuid, const char *id, char key[REPO_KEY_MAX],
                           struct vb_error *err)
{
    char found[REPO_UUID_LEN + 1];
    if (!repo_snapshot_id_valid(id))
        return vb_error_set(err, "\"%s\" is not a snapshot id (YYYYmmddTHHMMSSZ-xxxxxxxx)", id);
    if (!uuid) {
        if (find_snapshot_uuid(r, id, found, err) < 0)
            return -1;
        uuid = found;
    }
    if (repo_snapshot_key(uuid, id, key) < 0)
        return vb_error_set(err, "\"%s\" is not a domain uuid", uuid);
    return 0;
}

int repo_get_manifest(struct repo *r, const char *uuid, const char *id, struct repo_manifest *m,
                      struct vb_error *err)
{
    memset(m, 0, sizeof *m);
    char key[REPO_KEY_MAX];
    if (snapshot_key_of(r, uuid, id, key, err) < 0)
        return -1;
    void *text = NULL;
    size_t len = 0;
    int rc = r->store->ops->get(r->store, key, 0, 0, &text, &len, err);
    if (rc == 1)
        return vb_error_set(err, "snapshot %s: not in the repository (no %s/%s)", id, r->path, key);
    if (rc < 0)
        return vb_error_prefix(err, "snapshot %s", id);
    if (len > MANIFEST_MAX)
        rc = vb_error_set(err, "%zu bytes, more than a manifest holds", len);
    else if (r->config.encrypted)
        rc = repo_manifest_parse_sealed(text, len, r->key, m, err);
    else
        rc = repo_manifest_parse(text, len, m, err);
    free(text);
    const char *key_uuid = key + strlen("snapshots/");
    if (rc == 0 && (strcmp(m->id, id) != 0 || strlen(m->uuid) != REPO_UUID_LEN ||
                    strncmp(m->uuid, key_uuid, REPO_UUID_LEN) != 0))
        rc =
            vb_error_set(err, "holds snapshot %s of %s, not the one its name says", m->id, m->uuid);
    if (rc < 0)
        return vb_error_prefix(err, "snapshot %s: %s/%s", id, r->path, key);
    return 0;
}

int repo_delete_snapshot(struct repo *r, const char *uuid, const char *id, struct vb_error *err)
{
    char key[REPO_KEY_MAX];
    if (snapshot_key_of(r, uuid, id, key, err) < 0)
        return -1;
    int rc = r->store->ops->del(r->store, key, err);
    if (rc == 1)
        return vb_error_set(err, "snapshot %s: not in the repository (no %s/%s)", id, r->path, key);
    if (rc < 0)
        return vb_error_prefix(err, "snapshot %s", id);
    return 0;
}
