/* -L FILE: a copy of everything the tool writes to stderr goes to FILE too. stderr is
 * redirected into a pipe whose reader thread writes both to the original stderr and to the
 * file, so every message of every thread is captured without changing the log module. */
#ifndef VR_LOGFILE_H
#define VR_LOGFILE_H

#include "error.h"

int logfile_start(const char *path, struct vb_error *err);
/* Restores stderr and waits until the copy is complete. No-op if not started. */
void logfile_stop(void);

#endif
