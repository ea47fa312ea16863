/* A disk (or blob) of a snapshot read by offset, through its index: for restore and map.
 * Every chunk fetched is decoded and its digest checked (virtbackup-repository(5) lists the
 * checks); all-zero chunks read as zeros without a fetch. A few chunks are cached, so reads
 * smaller than a chunk in order fetch each chunk once. Thread-safe (one lock). */
#ifndef VB_REPO_SNAPSHOT_READER_H
#define VB_REPO_SNAPSHOT_READER_H

#include <stddef.h>
#include <stdint.h>

#include "digest.h"
#include "error.h"
#include "repo.h"

struct repo_disk_reader;

/* Opens the disk whose index is index_digest. */
struct repo_disk_reader *repo_disk_reader_open(struct repo *r, const repo_digest *index_digest,
                                               struct vb_error *err);

uint64_t repo_disk_reader_size(const struct repo_disk_reader *rd);

/* Reads len bytes at off (off + len within the size). 0 or -1. */
int repo_disk_reader_pread(struct repo_disk_reader *rd, void *buf, size_t len, uint64_t off,
                           struct vb_error *err);

void repo_disk_reader_close(struct repo_disk_reader *rd);

#endif
