/* Progress of one job (a disk) on stderr, as virtbackup(1) says: a bar redrawn in place when stderr
 * is a terminal, otherwise one plain line every few seconds, nothing when quiet. Counting is
 * lock-free and may be done from any thread; printing is rate-limited and serialised. */
#ifndef VB_PROGRESS_H
#define VB_PROGRESS_H

#include <stdbool.h>
#include <stdint.h>

enum progress_mode {
    PROGRESS_NONE,
    PROGRESS_BAR,   /* \r-redrawn bar: stderr is a TTY */
    PROGRESS_LINES, /* one line per PROGRESS_LINE_SECONDS */
};

#define PROGRESS_LINE_SECONDS 5

/* The mode for stderr: NONE when quiet, BAR on a TTY, LINES otherwise. */
enum progress_mode progress_mode_for_stderr(bool quiet);

struct progress;

/* label: what is progressing ("vda"); total: bytes expected (0 = unknown). */
struct progress *progress_new(const char *label, uint64_t total, enum progress_mode mode);
/* Adds done bytes; prints if the interval has passed. Thread-safe. */
void progress_add(struct progress *p, uint64_t bytes);
/* Prints the final state (bar completed / a last line) once. */
void progress_finish(struct progress *p, bool ok);
void progress_free(struct progress *p);

/* "1.5 GiB" style, into buf. */
const char *progress_format_bytes(uint64_t bytes, char *buf, int len);

#endif
