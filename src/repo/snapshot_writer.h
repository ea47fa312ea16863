/* The write path of one disk (or blob) of a snapshot: whole chunks in, in any order and from
 * any thread, out of it the disk's index. Each chunk is hashed, an all-zero one only marked
 * in the index, any other one put unless the repository holds it already; the work runs on
 * worker threads behind a bounded queue, so at most 2 x threads chunks are in memory. The
 * commit order (chunks and indexes durable before the manifest) is in
 * virtbackup-repository(5): the caller puts the manifest last, with repo_snapshot_commit. */
#ifndef VB_REPO_SNAPSHOT_WRITER_H
#define VB_REPO_SNAPSHOT_WRITER_H

#include <stddef.h>
#include <stdint.h>

#include "digest.h"
#include "error.h"
#include "manifest.h"
#include "repo.h"

struct repo_disk_writer;

/* What a disk's chunks cost: bytes read from the source, of them the bytes in chunks the
 * repository did not hold yet, and the bytes of the objects put for them. */
struct repo_disk_stats {
    uint64_t bytes_read;
    uint64_t bytes_new;
    uint64_t bytes_stored;
    uint64_t chunks;        /* chunks of the disk */
    uint64_t chunks_zero;   /* of them all-zero, not stored */
    uint64_t chunks_new;    /* of them put */
    uint64_t chunks_copied; /* of them taken from an earlier snapshot's index, not read */
};

/* A writer for a disk of virtual_size bytes cut at the repository's chunk size, with threads
 * workers (0: one). */
struct repo_disk_writer *repo_disk_writer_new(struct repo *r, uint64_t virtual_size,
                                              unsigned threads, struct vb_error *err);

/* The chunk size the writer cuts at (the repository's). */
uint32_t repo_disk_writer_chunk_size(const struct repo_disk_writer *w);

/* Gives the chunk at offset (a multiple of the chunk size) whole: len is the chunk size, or
 * what is left of the disk for the last chunk; read of its bytes came from the source (the
 * rest are the zeroes of holes), counted as bytes_read and, when the chunk is new, as
 * bytes_new, so that bytes_new never exceeds bytes_read. The bytes are copied; the call
 * waits while the queue is full. Each chunk is given once. Thread-safe. After a worker
 * failed, returns -1 with its error. */
int repo_disk_writer_put(struct repo_disk_writer *w, uint64_t offset, const void *data, size_t len,
                         size_t read, struct vb_error *err);

/* The same without the copy: buf, from repo_disk_writer_buffer (chunk size bytes, content
 * undefined, waits while every buffer is in use; NULL with the error after a worker failed),
 * holds the chunk assembled in place; the writer owns it from the call on, failed or not. A
 * buffer taken and not submitted goes back with repo_disk_writer_release. */
void *repo_disk_writer_buffer(struct repo_disk_writer *w, struct vb_error *err);
int repo_disk_writer_submit(struct repo_disk_writer *w, uint64_t offset, void *buf, size_t len,
                            size_t read, struct vb_error *err);
void repo_disk_writer_release(struct repo_disk_writer *w, void *buf);

/* Marks the chunk at offset all-zero without giving its bytes (an unallocated range). */
int repo_disk_writer_put_zero(struct repo_disk_writer *w, uint64_t offset, struct vb_error *err);

/* Takes the chunk at offset from an earlier snapshot's index without its bytes: d is its
 * digest there (all zero bytes: an all-zero chunk). The caller has checked that the chunk
 * exists (repo_chunk_check); counted as chunks_copied, never as bytes read. */
int repo_disk_writer_put_digest(struct repo_disk_writer *w, uint64_t offset, const repo_digest *d,
                                struct vb_error *err);

/* Waits for the workers, refuses a disk with a chunk never given, puts the index and sets
 * *index_digest (the key of the index) and *stats. The writer is spent either way. */
int repo_disk_writer_finish(struct repo_disk_writer *w, repo_digest *index_digest,
                            struct repo_disk_stats *stats, struct vb_error *err);

/* Stops the workers (if finish was not called) and frees the writer. NULL is fine. */
void repo_disk_writer_free(struct repo_disk_writer *w);

/* A blob (loader, nvram, kernel, initrd) held in memory: cut into chunks as a disk is, stored,
 * its index put; the index's key in *index. */
int repo_put_blob(struct repo *r, const void *data, size_t len, repo_digest *index,
                  struct vb_error *err);

/* The commit of a snapshot: checks that every index the manifest names is in the repository,
 * then puts the manifest. Call it after every disk's and blob's repo_disk_writer_finish. */
int repo_snapshot_commit(struct repo *r, const struct repo_manifest *m, struct vb_error *err);

#endif
