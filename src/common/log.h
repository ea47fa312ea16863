/* Logging for the tools: levels, one line per message on stderr, optional log file. */
#ifndef VB_LOG_H
#define VB_LOG_H

#include <stdbool.h>

enum vb_log_level { VB_LOG_ERROR, VB_LOG_WARNING, VB_LOG_INFO, VB_LOG_DEBUG };

/* program: prefix of every line; verbose: show debug; quiet: errors only. */
void vb_log_init(const char *program, bool verbose, bool quiet);
void vb_log(enum vb_log_level level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Also writes every message (debug included) to this file, as the reference's log file. */
void vb_log_set_file(const char *path);
void vb_log_close(void);
/* How many warnings/errors were logged (for --strict and exit codes). */
unsigned vb_log_count(enum vb_log_level level);

#define vb_error_log(...) vb_log(VB_LOG_ERROR, __VA_ARGS__)
#define vb_warn(...)      vb_log(VB_LOG_WARNING, __VA_ARGS__)
#define vb_info(...)      vb_log(VB_LOG_INFO, __VA_ARGS__)
#define vb_debug(...)     vb_log(VB_LOG_DEBUG, __VA_ARGS__)

#endif
