/* The figures of virtrepo stats (virtrepo(1), STATS), tallied without I/O: the caller feeds
 * every VM's snapshots and the chunks their indexes name, then the store's objects with their
 * sizes, and reads the totals. A chunk belongs to one VM while only that VM's snapshots name
 * it, and is shared once another VM's do. */
#ifndef VB_VIRTREPO_STATS_H
#define VB_VIRTREPO_STATS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "digest.h"
#include "keys.h"

struct stats_vm {
    char uuid[REPO_UUID_LEN + 1];
    char *name;           /* of its newest snapshot */
    size_t snapshots;     /* its snapshots */
    uint64_t logical;     /* sum over its snapshots of the disks' virtual sizes and blob sizes */
    uint64_t nonzero;     /* of that, bytes in chunks that are not all-zero */
    size_t chunks;        /* distinct chunks its snapshots name */
    size_t excl_chunks;   /* of them, the ones no other VM's snapshot names */
    uint64_t excl_raw;    /* their content bytes */
    uint64_t excl_stored; /* their objects' bytes in the store */
};

struct stats_chunk {
    repo_digest digest;
    uint32_t len;    /* content bytes, from the index that named it first */
    long owner;      /* the one VM naming it, or STATS_SHARED */
    long last_vm;    /* the VM that counted it last (each VM counts it once) */
    uint64_t stored; /* its object's size, once listed */
    bool present;    /* listed in the store */
};

#define STATS_SHARED (-1L)

struct stats_totals {
    size_t snapshots;
    uint64_t logical, nonzero;
    size_t chunks_used;    /* distinct chunks the snapshots name */
    uint64_t used_raw;     /* their content bytes */
    uint64_t used_stored;  /* their objects' bytes (of those present) */
    size_t chunks_missing; /* named but not in the store */
    size_t chunk_objects;  /* objects under chunks/ */
    uint64_t chunk_bytes;  /* their bytes */
    size_t chunks_unused;  /* objects under chunks/ no snapshot names */
    uint64_t unused_bytes; /* their bytes: what a prune would free */
    size_t index_objects;  /* objects under indexes/ */
    uint64_t index_bytes;
    size_t manifest_objects; /* objects under snapshots/ */
    uint64_t manifest_bytes;
    uint64_t stored;          /* chunks + indexes + manifests */
    double dedup_ratio;       /* nonzero / used_raw, 0 when nothing is stored */
    double compression_ratio; /* used_raw / used_stored, 0 when nothing is stored */
};

struct stats {
    struct stats_vm *vms;
    size_t nvms, vms_cap;
    struct stats_chunk *chunks;
    size_t nchunks, chunks_cap;
    size_t *table; /* open addressing: chunk number + 1, 0 empty */
    size_t table_size;
    struct stats_totals t;
};

/* The VM of uuid (added with name if new): its number. -1 when out of memory. */
long stats_vm(struct stats *s, const char *uuid, const char *name);

/* One snapshot of VM vm holding logical bytes (disks and blobs). */
void stats_snapshot(struct stats *s, long vm, uint64_t logical);

/* A chunk that an index of VM vm's snapshot names (not the all-zero mark), len content
 * bytes; every time it is named. 0, or -1 when out of memory. */
int stats_chunk_ref(struct stats *s, long vm, const repo_digest *d, uint32_t len);

/* An object of the store: a chunk (named by d), an index or a manifest, of size bytes. */
void stats_chunk_object(struct stats *s, const repo_digest *d, uint64_t size);
void stats_index_object(struct stats *s, uint64_t size);
void stats_manifest_object(struct stats *s, uint64_t size);

/* The totals and each VM's exclusive figures, once everything is fed. */
void stats_finish(struct stats *s);

void stats_free(struct stats *s);

#endif
