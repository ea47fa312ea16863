/* virtbackup's internal interfaces: options, the run, and the parts of a run. */
#ifndef VB_BACKUP_H
#define VB_BACKUP_H

#include <libvirt/libvirt.h>
#include <signal.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "checkpoint_number.h"
#include "digest.h"
#include "error.h"
#include "host.h"
#include "lock.h"
#include "meta.h"
#include "virt.h"
#include "zip_sink.h"

struct repo;
struct repo_index;

#define CHECKPOINT_PREFIX STREAM_CHECKPOINT_PREFIX

enum backup_level { LEVEL_COPY, LEVEL_FULL, LEVEL_INC, LEVEL_DIFF, LEVEL_AUTO };

/* level.c: "copy", "full", ...; false for a name that is none of them */
const char *backup_level_name(enum backup_level level);
bool backup_level_parse(const char *name, enum backup_level *level);

struct backup_opts {
    const char *domain;
    enum backup_level level;
    const char *level_arg; /* as given, for the log file name */
    const char *output;    /* directory, or "-" for a zip on stdout */
    const char *checkpointdir;
    const char *scratchdir;
    const char *socketfile;
    const char *uri;
    const char *include, *exclude, *freeze;
    const char *json_file;
    bool json;
    bool raw, type_raw;
    bool start_domain, no_start_domain, pause;
    bool noprogress, quiet, verbose, strict, syslog;
    bool no_sparse_detection, compat_zeroes;
    bool startonly, killonly, printonly, qemu_extents;
    int compress;        /* STREAM_META_COMPRESSED_FALSE or the level */
    int workers;         /* 0: one per disk */
    long long threshold; /* -1: none */
    int freeze_timeout;  /* seconds */
    int full_every_days; /* repository inc: a full read when the last is older; 0 never */
    const char *user, *password;
    struct vb_remote_opts remote; /* -U's host: SSH, NBD over TCP, TLS */
    bool zip;                     /* -o -: a zip archive on stdout; bookkeeping stays in "." */
    bool repository;              /* -o names a repository (virtbackup-repository(5)) */
    /* an encrypted repository's key file (--key, VIRTBACKUP_KEY_FILE) and its passphrase
     * (VIRTBACKUP_KEY_PASSPHRASE; NULL: asked on the terminal when needed) */
    const char *key_file, *key_passphrase;
    /* tuning knobs from the environment (virtbackup(1), ENVIRONMENT); 0: the default */
    int connections;         /* VIRTBACKUP_CONNECTIONS: NBD connections per disk */
    size_t requests;         /* VIRTBACKUP_REQUESTS: reads in flight per disk */
    size_t request_size;     /* VIRTBACKUP_REQUEST_SIZE: bytes per read */
    int compress_threads;    /* VIRTBACKUP_COMPRESS_THREADS; -1: one per CPU, at most 4 */
    const char *lock_dir;    /* VIRTBACKUP_LOCK_DIR; NULL: /run/virtbackup */
    const char *debug_stall; /* VIRTBACKUP_DEBUG_STALL (debug builds): a stall for tests */
};

/* One disk of the run, and what became of it. */
struct disk_job {
    const struct vb_disk *disk;
    char *file;           /* the data file's final path */
    char *socket;         /* NBD unix socket to read from, or NULL for TCP: */
    const char *nbd_host; /* remote NBD server (TCP) */
    int nbd_port;
    const char *tls_dir; /* NBD over TLS with these client credentials, or NULL */
    char *export_name;
    const char *bitmap;      /* dirty-bitmap meta context, or NULL for full/copy */
    struct stream_meta meta; /* prepared by the run; sizes filled by the copy */
    bool incremental;
    bool raw_output;           /* -t raw / raw disk: plain sparse image */
    struct vb_zip_writer *zip; /* -o -: the entry goes into this archive */
    struct repo *repo;         /* -o REPO: the disk's chunks go into this repository */
    /* results */
    int status; /* 0 ok, -1 failed */
    struct vb_error err;
    uint64_t extents, bytes_read, bytes_written;
    uint32_t checksum;
    double seconds;
    /* repository runs: the disk's index and what its chunks cost (snapshot_writer.h) */
    repo_digest index;
    uint64_t bytes_new, bytes_stored;
    /* repository inc: the base snapshot's index of the disk, whose digests are taken for
     * the chunks no dirty range touches (NULL: the disk is read in full), and how many were */
    const struct repo_index *base;
    /* by chunk of base: 1 when its chunk is missing or damaged in the repository (moved to
     * bad/ by virtrepo verify), so that chunk is read again though unchanged (NULL: none) */
    unsigned char *base_missing;
    uint64_t chunks_copied;
};

/* Copies one disk from its NBD export into its stream file (extent map, async reads, writer
 * thread, commit). Fills the job's results. A nonzero *stop (set by a signal handler) ends it
 * with "interrupted". */
int disk_copy_run(struct disk_job *job, const struct backup_opts *opts,
                  const volatile sig_atomic_t *stop, struct vb_error *err);

/* Extent map of one export: DATA and ZERO runs, merged, ascending. */
struct extent {
    uint64_t start, length;
    bool zero;  /* ZERO frame */
    bool synth; /* DATA frame of zeroes that need not be read (--compat-zeroes) */
};

struct extent_list {
    struct extent *v;
    size_t n, cap;
};

struct nbd_handle;
/* full/copy (bitmap NULL): base:allocation. inc/diff: dirty ranges of the bitmap context,
 * split by base:allocation into DATA and ZERO (exact incrementals), or with compat_zeroes
 * zeroed dirty ranges as synthesised DATA, or with no_sparse all dirty ranges as DATA. */
int extents_query(struct nbd_handle *nbd, uint64_t size, const char *bitmap, bool no_sparse,
                  bool compat_zeroes, struct extent_list *out, struct vb_error *err);
void extent_list_free(struct extent_list *l);

/* The block status one meta context gave for a window: run lengths and their flags, in order
 * from the window's start. */
struct ctx_entries {
    uint64_t *len;
    uint32_t *flags;
    size_t n, cap;
};
/* Appends the extents of the window [offset, end) to out, each merged into the one before it
 * when they touch and are of one kind. alloc (base:allocation, or NULL when not asked: all
 * DATA) tells DATA from ZERO; dirty (the bitmap's context, or NULL for full/copy: all in)
 * tells which ranges are in; with compat_zeroes a zeroed dirty range is synthesised DATA.
 * Each context given describes at least [offset, end). -1: out of memory. */
int extents_add_window(struct extent_list *out, uint64_t offset, uint64_t end,
                       const struct ctx_entries *alloc, const struct ctx_entries *dirty,
                       bool compat_zeroes);

/* Checkpoint bookkeeping: the <domain>.cpt list and the checkpoints/ XML store. */
struct cpt_list {
    char **names;
    size_t n;
};
int cpt_load(const char *path, struct cpt_list *list, struct vb_error *err);
int cpt_save(const char *path, const struct cpt_list *list, struct vb_error *err);
void cpt_free(struct cpt_list *list);

#endif
