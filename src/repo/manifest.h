/* The snapshot manifest of virtbackup-repository(5): the JSON object that commits a snapshot
 * (VM, time, level, parent, libvirt checkpoint, domain XML, per disk its index digest and
 * figures, the loader/nvram/kernel/initrd blobs). Emit, and a strict parse: every field
 * validated, an error names the field, unknown fields are ignored. */
#ifndef VB_REPO_MANIFEST_H
#define VB_REPO_MANIFEST_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "digest.h"
#include "error.h"
#include "keys.h"
#include "timefmt.h"

#define REPO_MANIFEST_FORMAT    "virtbackup-snapshot"
#define REPO_MANIFEST_VERSION   1
#define REPO_MANIFEST_MAX_DISKS 64
#define REPO_MANIFEST_MAX_BLOBS 64

enum repo_level { REPO_LEVEL_FULL, REPO_LEVEL_COPY, REPO_LEVEL_INC };

enum repo_blob_kind { REPO_BLOB_LOADER, REPO_BLOB_NVRAM, REPO_BLOB_KERNEL, REPO_BLOB_INITRD };

struct repo_manifest_disk {
    char *target; /* "vda" */
    uint64_t virtual_size;
    uint32_t chunk_size;
    repo_digest index;
    char *format;    /* "qcow2", "raw" */
    char *qcow_json; /* qemu-img info's JSON text, or NULL */
    uint64_t bytes_read, bytes_new, bytes_stored;
};

struct repo_manifest_blob {
    enum repo_blob_kind kind;
    char *path; /* where it was on the host */
    uint64_t size;
    repo_digest index;
};

struct repo_manifest {
    char id[32];
    char *vm;
    char uuid[REPO_UUID_LEN + 1];
    char time[REPO_TIME_MAX]; /* ISO 8601 with offset */
    /* when the full read this snapshot's chain started from was (its own time for a full; an
     * inc carries its base's), or "": absent (a copy, an import, older manifests) */
    char full_time[REPO_TIME_MAX];
    enum repo_level level;
    char parent[32]; /* "" for none (null) */
    bool has_checkpoint;
    struct {
        char *name;
        int64_t creation_time;
        char *xml;
    } checkpoint;
    char *domain_xml;
    /* the stream chain point an imported snapshot was made from (virtrepo(1), IMPORT), or
     * NULL: "source" is absent for a backup's snapshot */
    char *source;
    size_t n_disks;
    struct repo_manifest_disk *disks;
    size_t n_blobs;
    struct repo_manifest_blob *blobs;
    /* an encrypted repository's manifest read without the key: only its public part is real
     * (domain and checkpoint XML, disk formats, qcow_json, blob paths, figures and source are
     * placeholders; virtbackup-repository(5), ENCRYPTION) */
    bool sealed;
};

/* Frees what the manifest points to (every pointer may be NULL) and zeroes it. */
void repo_manifest_free(struct repo_manifest *m);

/* The JSON text, malloc'ed, NUL-terminated; the manifest is validated first as the parser
 * would. NULL on error. */
char *repo_manifest_to_json(const struct repo_manifest *m, struct vb_error *err);

/* Strict parse of len bytes of JSON into m (free with repo_manifest_free, also after an
 * error). 0, or -1 naming the field. */
int repo_manifest_parse(const char *json, size_t len, struct repo_manifest *m,
                        struct vb_error *err);

struct repo_key;

/* An encrypted repository's manifest (virtbackup-repository(5), ENCRYPTION): the public part,
 * "sealed" (the secret part, AES-256-GCM under the meta-enc subkey, a random nonce) and
 * "mac" (HMAC-SHA-256 under the meta-mac subkey of the sorted compact JSON without "mac").
 * NULL on error. */
char *repo_manifest_to_sealed_json(const struct repo_manifest *m, const struct repo_key *k,
                                   struct vb_error *err);

/* Parses such a manifest: with k, the mac is verified and the secret part opened (the result
 * is the whole manifest); with k NULL, only the public part is read (m->sealed set). A
 * manifest without "sealed" or "mac" is refused. Free m with repo_manifest_free (also after
 * an error). 0, or -1. */
int repo_manifest_parse_sealed(const char *json, size_t len, const struct repo_key *k,
                               struct repo_manifest *m, struct vb_error *err);

/* "full", "copy", "inc"; "loader", "nvram", "kernel", "initrd". */
const char *repo_level_name(enum repo_level l);
const char *repo_blob_kind_name(enum repo_blob_kind k);

#endif
