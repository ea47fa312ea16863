/* Garbage collection of a repository (virtbackup-repository(5), "Garbage collection"): chunks
 * and indexes no snapshot manifest refers to are moved to trash/<gc-id>/ and deleted by a
 * later run, once every session alive during the move has ended or gone stale and after the
 * chunks that manifests written since the mark use were moved back. */
#ifndef VB_REPO_GC_H
#define VB_REPO_GC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "error.h"
#include "repo_session.h"

struct repo;

struct repo_gc_options {
    bool dry_run; /* nothing written: what a run would move and which trashes it would empty */
    /* called after each object moved to the trash (debug stall points of the tool); may be
     * NULL */
    void (*moved_hook)(void *ctx);
    void *hook_ctx;
};

/* An earlier run's trash as this run found it. */
struct repo_gc_trash {
    char gc_id[REPO_SESSION_ID_MAX];
    bool emptied; /* by this run (dry run: would be) */
    uint64_t freed_objects, freed_bytes;
    uint64_t rescued; /* objects moved back for manifests written since its mark */
    size_t n_waiting; /* sessions it still waits for */
    char (*waiting)[REPO_SESSION_ID_MAX];
};

struct repo_gc_report {
    char gc_id[REPO_SESSION_ID_MAX]; /* "" for a dry run */
    bool dry_run;
    int64_t mark_time;
    uint64_t snapshots;
    uint64_t moved_chunks, moved_chunk_bytes, moved_indexes, moved_index_bytes;
    size_t n_alive; /* the sessions this run's trash waits for */
    char (*alive)[REPO_SESSION_ID_MAX];
    size_t n_trashes;
    struct repo_gc_trash *trashes;
};

/* One run: refuses while another gc session is alive (naming it); empties the earlier
 * trashes that can be emptied, marks, moves what nothing refers to into its trash and records
 * it in gc/<gc-id>.json. *rep is filled also when the run fails midway (free it). 0, or -1. */
int repo_gc_run(struct repo *r, const struct repo_gc_options *o, struct repo_gc_report *rep,
                struct vb_error *err);
void repo_gc_report_free(struct repo_gc_report *rep);

/* ---- parts of the run (gc_*.c) ---- */

struct repo_digest_set;

/* The record gc/<gc-id>.json. */
struct repo_gc_record {
    char state[16]; /* "marked", "moved", "emptied" */
    int64_t mark_time;
    size_t n_alive;
    char (*alive)[REPO_SESSION_ID_MAX];
    uint64_t moved, bytes, freed;
};
int repo_gc_record_put(struct repo *r, const char *gc_id, const struct repo_gc_record *rec,
                       struct vb_error *err);
/* 0, 1 when there is no such record, -1 (also for a record that does not parse). */
int repo_gc_record_get(struct repo *r, const char *gc_id, struct repo_gc_record *rec,
                       struct vb_error *err);
void repo_gc_record_free(struct repo_gc_record *rec);
/* The ids of every record under gc/ (*ids malloc'ed). 0, or -1. */
int repo_gc_record_ids(struct repo *r, char (**ids)[REPO_SESSION_ID_MAX], size_t *n,
                       struct vb_error *err);

/* Mark: every index and chunk the manifests refer to (only those whose mtime is at least
 * since, when since is not INT64_MIN) added to indexes and chunks; *snapshots counts the
 * manifests read. A manifest deleted meanwhile is passed over; one that does not parse, or
 * an index that cannot be read, is an error (what it refers to is unknown). 0, or -1. */
int repo_gc_mark(struct repo *r, int64_t since, struct repo_digest_set *indexes,
                 struct repo_digest_set *chunks, uint64_t *snapshots, struct vb_error *err);

/* Step 1 for one earlier trash (rec: its record; now: the store's clock; sessions: those
 * listed now): waits (t->waiting) while a session of its "alive" list is alive; else moves
 * back what manifests written since its mark use and deletes the rest (not in a dry run).
 * 0, or -1. */
int repo_gc_empty_trash(struct repo *r, const char *gc_id, const struct repo_gc_record *rec,
                        int64_t now, const struct repo_session_info *sessions, size_t n_sessions,
                        bool dry_run, struct repo_gc_trash *t, struct vb_error *err);

#endif
