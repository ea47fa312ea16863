/* What check and verify share: every snapshot's indexes read, the chunks they name gathered
 * once each (a chunk used by many snapshots is examined once), a test run over them, and the
 * report of which snapshots are damaged and by which chunks (virtrepo(1), CHECK and VERIFY). */
#ifndef VB_VIRTREPO_AUDIT_H
#define VB_VIRTREPO_AUDIT_H

#include <stdint.h>

#include "virtrepo.h"

struct audit_chunk {
    repo_digest digest;
    uint32_t len;     /* its content's bytes, as the first index naming it says */
    bool skip;        /* not examined (verify --part: outside the range) */
    bool bad;         /* set by the test */
    bool damaged;     /* bad because its stored bytes fail the checks (not missing) */
    char *why;        /* what is wrong with it, malloc'ed */
    size_t last_user; /* snapshot that listed it last, + 1 (0: none yet) */
};

struct audit_snapshot_chunks {
    size_t *v; /* indexes into audit.chunks */
    size_t n, cap;
};

struct audit {
    struct repo *repo;
    struct virtrepo_snapshots snaps;
    char **snap_problem;                /* by snapshot: manifest or index trouble, or NULL */
    struct audit_snapshot_chunks *uses; /* by snapshot: the chunks it needs */
    struct audit_chunk *chunks;         /* every chunk named, once */
    size_t nchunks, chunks_cap;
    size_t *table; /* open addressing: chunk index + 1, 0 empty */
    size_t table_size;
    uint64_t bytes; /* content bytes of all chunks */
};

/* Loads the snapshots (all, or only the one with id only_id: -1 if there is none) and reads
 * their indexes. 0, or -1 when the repository cannot be listed. */
int audit_load(struct audit *a, struct repo *r, const char *only_id, struct vb_error *err);

/* Prints the damaged snapshots and their chunks, then a summary line, on stdout. Returns the
 * number of damaged snapshots. what: "check", "verify" or "verify: part K/N (...)"; chunks
 * marked skip are not counted. */
size_t audit_report(const struct audit *a, const char *what);

void audit_free(struct audit *a);

/* Whether snapshot s is damaged: its manifest or an index, or a chunk it uses. */
bool audit_snapshot_damaged(const struct audit *a, size_t s);

/* Marks chunk c damaged with a message (printf format). */
void audit_chunk_bad(struct audit_chunk *c, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* Marks chunk c damaged with the error of a repository call on it, less the "chunk DIGEST: "
 * the report prints anyway. */
void audit_chunk_bad_error(struct audit_chunk *c, const struct vb_error *err);

#endif
