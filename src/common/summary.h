/* The --json run summary (virtbackup(1)): one JSON object written at the end of a run (also after a
 * failure or a skip), with one record per disk. Shared by virtbackup and virtrestore.
 *
 *   {"tool": "virtrestore", "status": "ok", "exit_code": 0, "warnings": 0,
 *    "disks": [{"disk": "vda", "level": "inc", "file": "...", "extents": 12,
 *               "bytes_read": 1, "bytes_written": 1, "seconds": 0.5, "checksum": null,
 *               "incremental": true, "checkpoint": "virtnbdbackup.2",
 *               "parent": "virtnbdbackup.1", "status": "ok", "error": null}, ...]}
 *
 * "warnings" is the number of warnings logged; "error" is the disk's error message. A disk
 * backed up into a repository also has "bytes_new" (raw bytes of the chunks the repository
 * did not hold), "bytes_stored" (bytes of the objects put for them) and "chunks_copied"
 * (chunks an inc took from its base without reading them); a run that committed
 * a repository snapshot has a top-level "snapshot" (its id) after "warnings". */
#ifndef VB_SUMMARY_H
#define VB_SUMMARY_H

#include <stdbool.h>
#include <stdint.h>

#include "error.h"

enum summary_status { SUMMARY_OK, SUMMARY_ERROR, SUMMARY_SKIPPED };

struct summary_disk {
    char disk[64];
    char level[32];
    char file[4096];
    uint64_t extents;
    uint64_t bytes_read;
    uint64_t bytes_written;
    bool repository; /* bytes_new, bytes_stored and chunks_copied are given */
    uint64_t bytes_new, bytes_stored, chunks_copied;
    double seconds;
    bool have_checksum;
    uint32_t checksum;
    bool incremental;
    char checkpoint[256];
    char parent[256];
    enum summary_status status;
    char error[VB_ERROR_MAX];
};

struct summary;

struct summary *summary_new(const char *tool);
void summary_free(struct summary *s);
/* A new zeroed record (status ok) owned by s; the pointer stays valid until summary_free.
 * Thread-safe. NULL when out of memory. */
struct summary_disk *summary_add_disk(struct summary *s, const char *disk);
const char *summary_status_name(enum summary_status st);
/* The id of the repository snapshot the run committed (virtbackup-repository(5)). */
void summary_set_snapshot(struct summary *s, const char *id);
/* Writes the object to path, or to stdout when path is NULL or "-". */
int summary_write(struct summary *s, const char *path, enum summary_status status, int exit_code,
                  unsigned warnings, struct vb_error *err);

#endif
