/* The times of virtbackup-repository(5): ISO 8601 with seconds and an offset
 * ("2026-12-07T18:00:00+00:00"; "Z" is read as +00:00). */
#ifndef VB_REPO_TIMEFMT_H
#define VB_REPO_TIMEFMT_H

#include <stdbool.h>
#include <time.h>

#define REPO_TIME_MAX 32

/* t in UTC, "+00:00" (zulu false) or "Z" (zulu true) at the end. */
void repo_time_format(time_t t, bool zulu, char out[REPO_TIME_MAX]);

/* YYYY-MM-DDTHH:MM:SS followed by Z or +HH:MM / -HH:MM, nothing else; the fields in their
 * ranges. *t: the instant. 0, or -1. */
int repo_time_parse(const char *s, time_t *t);

#endif
