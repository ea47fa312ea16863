/* Sessions of virtbackup-repository(5): every process that reads or writes chunks holds an
 * object sessions/<id>, put before its first chunk, put again by a heartbeat thread every
 * heartbeat_seconds and deleted at its end. Garbage collection waits for the sessions that
 * were alive while it moved chunks to the trash; a session whose object was not refreshed for
 * session_stale_seconds (by the store's clock: object modification times) is dead. Named apart
 * from src/map/session.h, which virtmap also sees. */
#ifndef VB_REPO_SESSION_H
#define VB_REPO_SESSION_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "error.h"

struct repo;
struct repo_session;

#define REPO_SESSION_ID_LEN 33 /* YYYYmmddTHHMMSSZ-<16 hex> */
#define REPO_SESSION_ID_MAX (REPO_SESSION_ID_LEN + 1)

/* A new session id: the UTC time now and 16 random hex digits (they sort by time). */
void repo_session_id_new(char id[REPO_SESSION_ID_MAX]);
bool repo_session_id_valid(const char *id);

/* Puts sessions/<id> ({"kind", "host", "pid", "vm", "started"}; vm: a uuid or NULL) and
 * starts its heartbeat thread. kind: "backup", "restore", "map", "verify", "export",
 * "import", "copy", "gc", "prune". The first session begun on r is r's: repo_close ends it
 * and repo_put_manifest checks it. 0 (*out set), or -1. */
int repo_session_begin(struct repo *r, const char *kind, const char *vm, struct repo_session **out,
                       struct vb_error *err);

const char *repo_session_id(const struct repo_session *s);

/* repo_session_begin for a reader (vm NULL), except that a repository at path on read-only
 * storage (access(2) says EROFS or EACCES) is read without a session: no garbage collection
 * can run there either (virtbackup-repository(5), SESSIONS). 0; 1 without a session (err
 * says so, for a warning); -1 on error. */
int repo_session_begin_reader(struct repo *r, const char *path, const char *kind,
                              struct vb_error *err);

/* repo_open, then repo_session_begin of kind on the handle (ended by repo_close): what a
 * tool calls before it reads or writes chunks. NULL on error. */
struct repo *repo_open_session(const char *path, const char *kind, const char *vm,
                               struct vb_error *err);

/* For a writer right before it commits (puts its manifest): refreshes the session once more
 * and fails when it went stale at any moment since it began (a heartbeat missed for longer
 * than session_stale_seconds, or the object gone): garbage collection may then have removed
 * chunks the snapshot uses. 0, or -1 with the message of virtbackup-repository(5). */
int repo_session_check(struct repo_session *s, struct vb_error *err);

/* Stops the heartbeat and deletes the session object (errors are ignored: a session left
 * behind goes stale). NULL is ignored. */
void repo_session_end(struct repo_session *s);

/* "Now" by the store's clock: the modification time of an object just put
 * (clock/<tag>, deleted again). 0, or -1. */
int repo_store_now(struct repo *r, const char *tag, int64_t *now, struct vb_error *err);

/* One session object as listed: its id, modification time and kind ("" when unreadable). */
struct repo_session_info {
    char id[REPO_SESSION_ID_MAX];
    int64_t mtime;
    char kind[16];
};

/* Every object under sessions/ (with_kind: each read for its kind). *out malloc'ed. 0, or
 * -1. */
int repo_sessions_list(struct repo *r, bool with_kind, struct repo_session_info **out, size_t *n,
                       struct vb_error *err);

/* The stale interval of r's config. */
int64_t repo_session_stale_seconds(const struct repo *r);

#endif
