/* virtrepo export (virtrepo(1), EXPORT): a repository snapshot written as the backup directory
 * of a stream-format full (virtbackup-stream(5)), built in a directory of its own beside the
 * target and renamed onto it only once complete. */
#ifndef VB_VIRTREPO_EXPORT_H
#define VB_VIRTREPO_EXPORT_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "error.h"
#include "manifest.h"
#include "repo.h"

/* The checkpoint name a full's files carry (virtbackup-stream(5), FILES OF A BACKUP
 * DIRECTORY); no libvirt checkpoint of that name is made. */
#define EXPORT_IDENT "virtnbdbackup.0"

/* The directory being written: <dir>.partial, renamed to <dir> by export_dir_commit. */
struct export_dir {
    char *final;
    char *partial;
    bool existed; /* <dir> was there (empty): its mode is kept */
    mode_t mode;
};

/* Refuses a <dir> that is not an empty directory and a <dir>.partial that exists (an export
 * running now or one that was killed); creates <dir>.partial (and <dir>'s parents). 0, or -1. */
int export_dir_begin(const char *dir, struct export_dir *x, struct vb_error *err);

/* The path of name inside the directory being written (malloc'ed), NULL when out of memory. */
char *export_dir_path(const struct export_dir *x, const char *name);

/* Syncs <dir>.partial and renames it to <dir> (which may only be an empty directory then). */
int export_dir_commit(struct export_dir *x, struct vb_error *err);

/* Removes <dir>.partial and what this export wrote into it (nothing else is there). */
void export_dir_abort(struct export_dir *x);
void export_dir_free(struct export_dir *x);

struct export_disk_opts {
    int compress;        /* STREAM_META_COMPRESSED_FALSE, or the lz4 level */
    const char *date;    /* the META date: the snapshot's time, local, isoformat */
    bool quiet;          /* no progress */
    uint64_t bytes_data; /* out: the DATA bytes written */
    uint64_t bytes_file; /* out: the stream file's size */
};

/* The disk as the stream file path (<target>.full.data and its .chksum): a ZERO frame for
 * every run of all-zero chunks, one DATA frame for every run of stored ones. A chunk that is
 * missing or damaged is an error naming it. 0, or -1. */
int export_disk_stream(struct repo *r, const struct repo_manifest_disk *d, const char *path,
                       struct export_disk_opts *o, struct vb_error *err);

/* The blob's content as the new file path (synced). 0, or -1. */
int export_blob_file(struct repo *r, const struct repo_manifest_blob *b, const char *path,
                     struct vb_error *err);

#endif
