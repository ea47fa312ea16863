/* Which snapshot of a repository virtrestore and virtmap read: the VM (--vm, needed only
 * when the repository holds several), then --snapshot ID|latest or --until TIME|CHECKPOINT
 * (virtrestore(1), REPOSITORY INPUT). Errors name what was asked and list what exists. */
#ifndef VB_BSET_REPO_SELECT_H
#define VB_BSET_REPO_SELECT_H

#include <time.h>

#include "error.h"
#include "repo.h"

/* --until as a time: "YYYY-MM-DD HH:MM", "YYYY-MM-DD HH:MM:SS" (also with a 'T' in place of
 * the space) in local time, or ISO 8601 with an offset ("2026-12-01T03:00:00+01:00", "Z").
 * 0 with *t set; -1 when s is not such a time (then it may be a checkpoint name). */
int repo_until_parse(const char *s, time_t *t);

/* The instant a snapshot id names (its UTC time prefix, virtbackup-repository(5)); -1 if the
 * id is not well-formed. */
int repo_snapshot_id_time(const char *id, time_t *t);

struct repo_selection {
    const char *vm;       /* --vm NAME or UUID, or NULL */
    const char *snapshot; /* --snapshot ID or "latest", or NULL */
    const char *until;    /* --until TIME or checkpoint name, or NULL */
    /* an encrypted repository's key file and its passphrase (keyfile.h, repo_key_load) */
    const char *key_file, *key_passphrase;
    /* the kind of session (repo_session.h) begun before the manifest is read, so that gc
     * keeps what the reader uses; NULL: none (nothing but manifests is read) */
    const char *session;
};

/* Opens the repository at path with the key sel names and selects a snapshot as
 * repo_select_snapshot does; an encrypted repository without its key fails before anything
 * is read (repo_need_key). NULL on error (m to be freed all the same). */
struct repo *repo_select_open(const char *path, const struct repo_selection *sel,
                              struct repo_manifest *m, struct vb_error *err);

/* The manifest chosen (free with repo_manifest_free, also after an error). 0, or -1. */
int repo_select_snapshot(struct repo *r, const struct repo_selection *sel, struct repo_manifest *m,
                         struct vb_error *err);

#endif
