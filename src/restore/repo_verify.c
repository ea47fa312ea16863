/* The verify action on a repository snapshot: the manifest, every index it names, and every
 * chunk of every disk and blob read and checked as a restore would (repo_get_chunk: the
 * envelope, the payload crc, the decompressed size and the SHA-256 against the chunk's name;
 * the size against the index). Every damaged chunk is named, not only the first; chunks are
 * read by several threads at once. */
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "repo_select.h"
#include "restore.h"

struct verify_job {
    struct repo *repo;
    const struct repo_index *idx;
    const char *what; /* "vda", "nvram /path" */
    atomic_size_t next;
    pthread_mutex_t lock;
    size_t damaged, read;
};

static void *verify_main(void *arg)
{
    struct verify_job *j = arg;
    for (;;) {
        if (restore_stop)
            break;
        size_t i = atomic_fetch_add(&j->next, 1);
        if (i >= j->idx->n)
            break;
        const repo_digest *d = &j->idx->digests[i];
        if (repo_digest_is_zero(d))
            continue;
        struct vb_error e = {0};
        void *data = NULL;
        size_t len = 0, want = repo_index_chunk_len(j->idx, i);
        uint64_t off = (uint64_t)i * j->idx->chunk_size;
        int rc = repo_get_chunk(j->repo, d, &data, &len, &e);
        if (rc == 0 && len != want) {
            char hex[65];
            repo_digest_hex(d, hex);
            rc = vb_error_set(&e, "chunk %s holds %zu bytes, the index wants %zu", hex, len, want);
        }
        free(data);
        pthread_mutex_lock(&j->lock);
        j->read++;
        if (rc < 0) {
            j->damaged++;
            vb_error_log("%s: offset %" PRIu64 ": %s", j->what, off, e.msg);
        }
        pthread_mutex_unlock(&j->lock);
    }
    return NULL;
}

/* Checks one index and its chunks; returns the damaged count (index damage counts one). */
static size_t verify_index(const struct restore_opts *o, struct repo *r, const repo_digest *id,
                           uint64_t size, const char *what)
{
    struct vb_error err = {0};
    struct repo_index idx = {0};
    if (repo_get_index(r, id, &idx, &err) < 0) {
        vb_error_log("%s: %s", what, err.msg);
        return 1;
    }
    if (idx.virtual_size != size) {
        vb_error_log("%s: the index holds %" PRIu64 " bytes, the manifest says %" PRIu64, what,
                     idx.virtual_size, size);
        repo_index_free(&idx);
        return 1;
    }
    struct verify_job j = {.repo = r, .idx = &idx, .what = what};
    atomic_init(&j.next, 0);
    pthread_mutex_init(&j.lock, NULL);
    int n = o->decoders > 0 ? (o->decoders > 64 ? 64 : o->decoders) : 4, started = 0;
    pthread_t t[64];
    while (started < n && pthread_create(&t[started], NULL, verify_main, &j) == 0)
        started++;
    if (started == 0)
        verify_main(&j);
    for (int i = 0; i < started; i++)
        pthread_join(t[i], NULL);
    pthread_mutex_destroy(&j.lock);
    size_t zero = 0;
    for (size_t i = 0; i < idx.n; i++)
        zero += repo_digest_is_zero(&idx.digests[i]);
    if (!j.damaged && !restore_stop)
        vb_info("%s: ok: %zu chunks read, every digest matches (%zu all-zero, not stored)", what,
                j.read, zero);
    else if (j.damaged)
        vb_error_log("%s: %zu of %zu stored chunks damaged or missing", what, j.damaged,
                     idx.n - zero);
    repo_index_free(&idx);
    return j.damaged;
}

int restore_repo_verify(const struct restore_opts *o)
{
    struct vb_error err = {0};
    struct repo_manifest m = {0};
    struct repo_selection sel = {.vm = o->vm,
                                 .snapshot = o->snapshot,
                                 .until = o->until,
                                 .key_file = o->key_file,
                                 .key_passphrase = o->key_passphrase,
                                 .session = "verify"};
    struct repo *r = repo_select_open(o->input, &sel, &m, &err);
    if (!r) {
        vb_error_log("%s", err.msg);
        repo_manifest_free(&m);
        return -1;
    }
    size_t damaged = 0;
    for (size_t i = 0; i < m.n_disks && !restore_stop; i++) {
        if (o->disk && strcmp(o->disk, m.disks[i].target) != 0)
            continue;
        damaged +=
            verify_index(o, r, &m.disks[i].index, m.disks[i].virtual_size, m.disks[i].target);
    }
    for (size_t i = 0; i < m.n_blobs && !restore_stop && !o->disk; i++) {
        char what[4200];
        snprintf(what, sizeof what, "%s %s", repo_blob_kind_name(m.blobs[i].kind), m.blobs[i].path);
        damaged += verify_index(o, r, &m.blobs[i].index, m.blobs[i].size, what);
    }
    int rc = 0;
    if (restore_stop) {
        vb_error_log("interrupted");
        rc = -1;
    } else if (damaged) {
        vb_error_log("%s: snapshot %s is damaged", r->path, m.id);
        rc = -1;
    } else {
        vb_info("%s: snapshot %s verified", r->path, m.id);
    }
    repo_manifest_free(&m);
    repo_close(r);
    return rc;
}
