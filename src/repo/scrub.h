/* Scrub records (virtbackup-repository(5), SCRUB RECORDS): virtrepo verify --part K/N checks
 * the chunks whose name's first byte falls in the K-th of N contiguous ranges of 00..ff and
 * then puts scrub/<N>/<K>, which says when that run began, what it checked and which
 * snapshots it saw. A snapshot is covered by one N when every range of that N has a record
 * that saw it; it was last fully covered at the oldest of those records' times (the newest
 * such time over every N). */
#ifndef VB_REPO_SCRUB_H
#define VB_REPO_SCRUB_H

#include <stdbool.h>
#include <stdint.h>
#include <time.h>

#include "repo.h"

#define REPO_SCRUB_MAX_PARTS 256

/* Parses "K/N" (1 <= K <= N <= 256). 0, or -1 with err set. */
int repo_scrub_part_parse(const char *s, unsigned *k, unsigned *n, struct vb_error *err);

/* The first bytes of range k of n: lo <= byte < hi (every range holds at least one; the n
 * ranges cover 00..ff once). */
void repo_scrub_range(unsigned k, unsigned n, unsigned *lo, unsigned *hi);

/* Whether chunk name d falls in range k of n. */
bool repo_scrub_in_range(const repo_digest *d, unsigned k, unsigned n);

struct repo_scrub_record {
    unsigned k, n;
    time_t time;                 /* when the run began (before it listed the snapshots) */
    uint64_t chunks, bytes, bad; /* chunks of the range checked, their bytes, damaged */
    char (*snapshots)[32];       /* ids of the snapshots the run saw, sorted */
    size_t nsnapshots;
};

/* Puts scrub/<n>/<k> (replacing the one there). 0, or -1. */
int repo_scrub_put(struct repo *r, const struct repo_scrub_record *rec, struct vb_error *err);

struct repo_scrub_records {
    struct repo_scrub_record *v;
    size_t n, cap;
};

/* Every record under scrub/ (one that does not parse is passed over). 0, or -1 when the
 * listing failed. */
int repo_scrub_load(struct repo *r, struct repo_scrub_records *out, struct vb_error *err);
void repo_scrub_records_free(struct repo_scrub_records *recs);

/* When snapshot id was last fully covered (*when): 0, or 1 never. */
int repo_scrub_coverage(const struct repo_scrub_records *recs, const char *id, time_t *when);

/* The JSON text of a record, and back (both used by tests). NULL / -1 on error. */
char *repo_scrub_to_json(const struct repo_scrub_record *rec, struct vb_error *err);
int repo_scrub_parse(const char *text, size_t len, struct repo_scrub_record *rec,
                     struct vb_error *err);
void repo_scrub_record_free(struct repo_scrub_record *rec);

#endif
