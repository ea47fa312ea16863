/* The repository handle: a repository (virtbackup-repository(5)) over an object store, and
 * what the tools do with it: create and open it, put and get chunks, indexes and snapshot
 * manifests, list and delete snapshots. Every function may be called from several threads
 * at once on one handle (the store keeps no position), and several processes may write to
 * one repository at once (puts are atomic; identical chunks are identical objects). */
#ifndef VB_REPO_REPO_H
#define VB_REPO_REPO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "digest.h"
#include "error.h"
#include "index.h"
#include "keys.h"
#include "manifest.h"
#include "object.h"
#include "objstore.h"
#include "repo_config.h"

struct repo_digest_set;
struct repo_key;
struct repo_session;

struct repo {
    struct repo_store *store;
    struct repo_config config;
    char *path;
    struct repo_digest_set *in_flight; /* chunks being put by this process right now */
    /* an encrypted repository's key (a copy, NULL without one) and the subkeys the object
     * coding uses: chunks (sealed, HMAC-named) and indexes (HMAC-named) */
    struct repo_key *key;
    struct repo_object_keys chunk_keys, index_keys;
    /* the session begun on this handle (repo_session.h): ended by repo_close, checked by
     * repo_put_manifest */
    struct repo_session *session;
};

/* True when path is a directory holding a "config" object whose format is
 * "virtbackup-repository" (whatever its version: repo_open then says what is wrong). The
 * tools tell a repository from a backup directory with it. */
bool repo_is_repository(const char *path);

/* Creates a repository at path with the config cfg (validated): path is created (its
 * parent must exist) or must be an empty directory; it is made 0700. Refuses an existing
 * repository and a directory that holds anything. 0, or -1. */
int repo_init(const char *path, const struct repo_config *cfg, struct vb_error *err);

/* Opens the repository at path: its config is read and validated (another format or a
 * version above 1 is refused, naming the file). key: the key for an encrypted repository
 * (copied; NULL: none, and ignored for an unencrypted one); a key whose fingerprint is not the
 * repository's is refused here. Without the key an encrypted repository opens for what needs
 * no content (listing, manifests' public parts, headers); the rest fails as
 * repo_need_key says. NULL on error. */
struct repo *repo_open(const char *path, const struct repo_key *key, struct vb_error *err);

/* Gives an open repository its key, as repo_open does (a wrong key refused; ignored for an
 * unencrypted repository). 0, or -1. */
int repo_use_key(struct repo *r, const struct repo_key *key, struct vb_error *err);

/* 0 when content can be read and written (unencrypted, or the key is there); else -1 with
 * "PATH is encrypted: give --key FILE (or VIRTBACKUP_KEY_FILE)". Tools call it before they
 * read or write anything. */
int repo_need_key(const struct repo *r, struct vb_error *err);

/* The name of a chunk whose content is data (len bytes): HMAC-SHA-256 under the chunk-id
 * subkey in an encrypted repository, SHA-256 otherwise (virtbackup-repository(5)). */
void repo_chunk_name(const struct repo *r, const void *data, size_t len, repo_digest *out);
/* The stored bytes of the object under key, unchecked, looked up in the trashes of garbage
 * collection when it is missing (virtbackup-repository(5), GARBAGE COLLECTION): 0 (*obj
 * malloc'ed, *len bytes), 1 missing, -1 on error. */
int repo_get_stored(struct repo *r, const char *key, void **obj, size_t *len, struct vb_error *err);

/* Ends the session begun on r, if any, and frees r. */
void repo_close(struct repo *r);

/* The repository's chunk size (its config's). */
uint32_t repo_chunk_size(const struct repo *r);

/* Stores the chunk whose content is raw (len bytes, at most the chunk size; d: its SHA-256,
 * which the caller has for the index, not the all-zero mark) compressed as the config says.
 * An object already there with a valid header and the same content size is not put again
 * (only its header is read); a damaged one is replaced; a valid one of another content size
 * is an error (d is not raw's digest). *was_new: whether it was put; *stored: bytes put, 0
 * when the chunk was there (either may be NULL). 0, or -1. */
int repo_put_chunk(struct repo *r, const repo_digest *d, const void *raw, size_t len, bool *was_new,
                   uint64_t *stored, struct vb_error *err);

/* Whether chunk d exists as virtbackup-repository(5) means it (present, header valid, the
 * object's size the header's), without reading its data: 0 (*raw_size: its content's
 * bytes), 1 missing, -1 damaged or an error (err says which). */
int repo_chunk_check(struct repo *r, const repo_digest *d, uint32_t *raw_size,
                     struct vb_error *err);

/* The stored bytes of chunk d checked without the key: present, header valid, the payload's
 * CRC-32 (what verify does in an encrypted repository opened without its key;
 * virtbackup-repository(5)). *raw_size: its content's bytes. 0, or -1 naming the chunk. */
int repo_chunk_check_stored(struct repo *r, const repo_digest *d, uint32_t *raw_size,
                            struct vb_error *err);

/* The content of chunk d (malloc'ed, *len bytes), every check of the reader made, its
 * SHA-256 included; a missing or damaged chunk is an error naming it. 0, or -1. */
int repo_get_chunk(struct repo *r, const repo_digest *d, void **raw, size_t *len,
                   struct vb_error *err);

/* As repo_get_chunk, into buf (cap bytes: a chunk larger than that is an error, as is one
 * whose digest is not d). 0, or -1. */
int repo_get_chunk_into(struct repo *r, const repo_digest *d, void *buf, size_t cap, size_t *len,
                        struct vb_error *err);

/* Stores an index (compressed as the config says) under the digest of its bytes, *d set;
 * like repo_put_chunk, an index already there intact is not put again. 0, or -1. */
int repo_put_index(struct repo *r, const struct repo_index *idx, repo_digest *d,
                   struct vb_error *err);

/* As repo_chunk_check, for index d: 0 exists, 1 missing, -1 damaged or an error. */
int repo_index_exists(struct repo *r, const repo_digest *d, struct vb_error *err);

/* Index d, decoded and checked (free with repo_index_free). 0, or -1. */
int repo_get_index(struct repo *r, const repo_digest *d, struct repo_index *idx,
                   struct vb_error *err);

/* Commits a snapshot: puts its manifest (snapshots/<uuid>/<id>.json) once every chunk and
 * index it names is durable (the caller's order). Refuses an id already taken. With a
 * session begun on r, refuses (nothing put) when that session went stale
 * (repo_session_check). 0, or -1. */
int repo_put_manifest(struct repo *r, const struct repo_manifest *m, struct vb_error *err);

/* The manifest of snapshot id of the VM uuid (NULL: whichever VM has that id), parsed and
 * checked to be the one its key names. Free with repo_manifest_free (also after an error).
 * 0, or -1 (a snapshot that does not exist says so). */
int repo_get_manifest(struct repo *r, const char *uuid, const char *id, struct repo_manifest *m,
                      struct vb_error *err);

/* Calls fn for each snapshot of the VM uuid (NULL: of every VM) in the order of their ids
 * (their times), then uuids; fn returning -1 stops the walk, which returns -1. Only the
 * names are read: objects under snapshots/ not named as a snapshot are passed over. 0, or
 * -1. */
int repo_list_snapshots(struct repo *r, const char *uuid,
                        int (*fn)(void *ctx, const char *uuid, const char *id,
                                  struct vb_error *err),
                        void *ctx, struct vb_error *err);

/* Deletes the manifest of snapshot id of the VM uuid (NULL: whichever VM has that id); its
 * chunks and indexes stay (a later garbage collection removes what nothing refers to).
 * A snapshot that does not exist is an error. 0, or -1. */
int repo_delete_snapshot(struct repo *r, const char *uuid, const char *id, struct vb_error *err);

#endif
