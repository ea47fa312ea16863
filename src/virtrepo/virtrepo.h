/* What the commands of virtrepo share: the global options, the command table's entry, and
 * the walk over a repository's snapshots. Each command is one cmd_*.c file; its run function
 * returns the exit status that virtrepo(1) documents. */
#ifndef VB_VIRTREPO_H
#define VB_VIRTREPO_H

#include <stdbool.h>

#include "error.h"
#include "manifest.h"
#include "repo.h"

struct virtrepo_global {
    const char *prog;
    const char *usage;
    bool verbose, quiet;
    const char *debug_stall; /* debug builds: VIRTBACKUP_DEBUG_STALL (debug_stall.h) */
    /* an encrypted repository's key file: --key or VIRTBACKUP_KEY_FILE (NULL: none) */
    const char *key_file;
    /* VIRTBACKUP_KEY_PASSPHRASE, VIRTBACKUP_NEW_KEY_PASSPHRASE (NULL: ask the terminal) */
    const char *key_passphrase, *new_key_passphrase;
};

struct virtrepo_command {
    const char *name;
    int (*run)(const struct virtrepo_global *g, int argc, char **argv);
};

int cmd_init(const struct virtrepo_global *g, int argc, char **argv);
int cmd_snapshots(const struct virtrepo_global *g, int argc, char **argv);
int cmd_forget(const struct virtrepo_global *g, int argc, char **argv);
int cmd_check(const struct virtrepo_global *g, int argc, char **argv);
int cmd_verify(const struct virtrepo_global *g, int argc, char **argv);
int cmd_import(const struct virtrepo_global *g, int argc, char **argv);
int cmd_export(const struct virtrepo_global *g, int argc, char **argv);
int cmd_stats(const struct virtrepo_global *g, int argc, char **argv);
int cmd_prune(const struct virtrepo_global *g, int argc, char **argv);
int cmd_protect(const struct virtrepo_global *g, int argc, char **argv);
int cmd_unprotect(const struct virtrepo_global *g, int argc, char **argv);
int cmd_gc(const struct virtrepo_global *g, int argc, char **argv);
int cmd_key(const struct virtrepo_global *g, int argc, char **argv);

/* Opens the repository at path with the key the global options name (none without one): an
 * encrypted repository opens without it for what needs no content (virtrepo(1), KEYS). NULL
 * on error. */
struct repo *virtrepo_open(const struct virtrepo_global *g, const char *path, struct vb_error *err);

/* virtrepo_open, then a session of kind on the handle (repo_session.h; ended by repo_close):
 * what a command calls before it reads chunks or indexes. NULL on error. */
struct repo *virtrepo_open_session(const struct virtrepo_global *g, const char *path,
                                   const char *kind, struct vb_error *err);

/* A snapshot of the repository as the walk found it: its key's uuid and id, and its manifest
 * when that parsed (parsed false: error says why). */
struct virtrepo_snapshot {
    char uuid[REPO_UUID_LEN + 1];
    char id[32];
    bool parsed;
    struct repo_manifest m;
    struct vb_error error;
};

struct virtrepo_snapshots {
    struct virtrepo_snapshot *v;
    size_t n, cap;
};

/* Every snapshot of the repository, sorted by id (so by time), each manifest read and
 * parsed; a manifest that cannot be read or parsed is kept with parsed false. 0, or -1 when
 * the listing itself failed. */
int virtrepo_load_snapshots(struct repo *r, struct virtrepo_snapshots *out, struct vb_error *err);
void virtrepo_snapshots_free(struct virtrepo_snapshots *s);

#endif
