/* virtrestore's options and the entry points of its actions. */
#ifndef VR_RESTORE_H
#define VR_RESTORE_H

#include <signal.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "backup_set.h"
#include "host.h"
#include "remote.h"
#include "summary.h"

struct restore_opts {
    const char *input;
    const char *output;
    const char *until;
    const char *sequence; /* comma list of data files */
    const char *disk;     /* only this target dev */
    const char *socketfile;
    const char *config_file;      /* name of the written config, default vmconfig.xml */
    const char *name;             /* new domain name */
    const char *uri;              /* libvirt URI for -D; a remote one restores on that host */
    const char *user, *password;  /* SASL credentials for -D */
    struct vb_remote_opts remote; /* the remote options (SSH, NBD port/address, TLS) */
    struct vb_host *host;         /* where images are written: here or over SSH */
    const char *json;             /* --json: NULL none, "-" stdout, else a file */
    const char *logfile;
    bool noprogress, raw, adjust_config, define, preallocate, compress, verbose;
    bool trust_config; /* -c/-D keep the backup's domain XML whole (no allow-list) */
    long buffsize;
    int connections; /* NBD connections per disk */
    int decoders;    /* decoder threads */
    /* from the environment (virtrestore(1), ENVIRONMENT) */
    int memory_mb;           /* VIRTRESTORE_MEMORY_MB: buffer budget per disk; 0: default */
    const char *debug_stall; /* VIRTBACKUP_DEBUG_STALL (debug builds): a stall for tests */
    /* a repository input (virtrestore(1), REPOSITORY INPUT) */
    const char *vm;       /* --vm NAME|UUID */
    const char *snapshot; /* --snapshot ID|latest */
    /* an encrypted repository's key file (--key, VIRTBACKUP_KEY_FILE) and its passphrase
     * (VIRTBACKUP_KEY_PASSPHRASE; NULL: asked on the terminal when needed) */
    const char *key_file, *key_passphrase;
};

extern volatile sig_atomic_t restore_stop;

/* Each returns 0 on success, -1 if anything failed (already logged). */
int restore_dump(const struct restore_opts *o, struct bset *set);
int restore_verify(const struct restore_opts *o, struct bset *set);
int restore_run(const struct restore_opts *o, struct bset *set, struct summary *sum);

/* The same actions on a repository snapshot (repo_restore.c, repo_verify.c, repo_dump.c). */
int restore_repo_dump(const struct restore_opts *o);
int restore_repo_verify(const struct restore_opts *o);
int restore_repo_run(const struct restore_opts *o, struct summary *sum);

/* Shared by the restores of backup sets and repositories. */
struct domxml_disk;
/* <out>/<basename of the disk's source path>, or <out>/<dev> without one. */
void restore_target_path(const struct restore_opts *o, const struct domxml_disk *d, const char *dev,
                         char *buf, size_t len);
/* Makes a committed image's name durable (a failure is a warning). */
void restore_commit_sync(const struct restore_opts *o, const char *target);

#endif
