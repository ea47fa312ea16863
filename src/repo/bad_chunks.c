/* Damaged chunks moved to bad/ (bad_chunks.h, virtbackup-repository(5) BAD CHUNKS). */
#include "bad_chunks.h"

#include <stdio.h>
#include <stdlib.h>

#include "object.h"

void repo_bad_chunk_key(const repo_digest *d, char key[80])
{
    char hex[REPO_DIGEST_HEX + 1];
    repo_digest_hex(d, hex);
    snprintf(key, 80, "bad/%.2s/%s", hex, hex);
}

/* The stored bytes of chunk d: 0 (*obj malloc'ed), 1 missing, -1 error. */
static int get_stored(struct repo *r, const repo_digest *d, void **obj, size_t *len,
                      struct vb_error *err)
{
    char key[80];
    repo_chunk_key(d, key);
    int rc = repo_get_stored(r, key, obj, len, err);
    if (rc < 0)
        vb_error_prefix(err, "%s/%s", r->path, key);
    return rc;
}

/* 0 sound (*len), 2 damaged (err); an encrypted repository's chunk is opened with its key */
static int check_stored(const struct repo *r, const repo_digest *d, const void *obj, size_t obj_len,
                        size_t *len, struct vb_error *err)
{
    void *raw = NULL;
    size_t raw_len = 0;
    int rc = repo_object_decode_keyed(REPO_KIND_CHUNK, obj, obj_len, r->key ? &r->chunk_keys : NULL,
                                      d, &raw, &raw_len, err);
    free(raw);
    if (rc < 0)
        return 2;
    if (len)
        *len = raw_len;
    return 0;
}

int repo_chunk_verify(struct repo *r, const repo_digest *d, size_t *len, struct vb_error *err)
{
    void *obj = NULL;
    size_t obj_len = 0;
    int rc = get_stored(r, d, &obj, &obj_len, err);
    if (rc != 0)
        return rc;
    rc = check_stored(r, d, obj, obj_len, len, err);
    free(obj);
    if (rc == 2) {
        char key[80];
        repo_chunk_key(d, key);
        vb_error_prefix(err, "%s/%s", r->path, key);
    }
    return rc;
}

int repo_chunk_quarantine(struct repo *r, const repo_digest *d, struct vb_error *err)
{
    char key[80], bad[80];
    repo_chunk_key(d, key);
    repo_bad_chunk_key(d, bad);
    void *obj = NULL;
    size_t obj_len = 0;
    int rc = get_stored(r, d, &obj, &obj_len, err);
    if (rc != 0)
        return rc;
    /* checked again: a writer that found it damaged may have put it again meanwhile */
    struct vb_error why = {0};
    if (check_stored(r, d, obj, obj_len, NULL, &why) == 0) {
        free(obj);
        return 1;
    }
    rc = r->store->ops->put(r->store, bad, obj, obj_len, err);
    free(obj);
    if (rc < 0)
        return vb_error_prefix(err, "%s/%s", r->path, bad);
    if (r->store->ops->del(r->store, key, err) < 0)
        return vb_error_prefix(err, "%s/%s", r->path, key);
    return 0;
}

int repo_chunk_in_bad(struct repo *r, const repo_digest *d)
{
    char bad[80];
    repo_bad_chunk_key(d, bad);
    struct repo_stat st;
    struct vb_error err = {0};
    return r->store->ops->head(r->store, bad, &st, &err) == 0;
}
