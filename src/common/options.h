/* Command-line helpers shared by the tools (GNU getopt_long; the rules are under
 * OPTIONS in virtbackup(1)). */
#ifndef VB_OPTIONS_H
#define VB_OPTIONS_H

#include <stdbool.h>

/* argparse's nargs='?': after an option with an optional value was seen, take the value
 * from optarg (-z5, --compress=5) or from the next argument if that is a number (-z 5).
 * Returns the value, def if none was given, or -1 (with *bad set) for a bad value. */
long vb_opt_optional_number(int argc, char **argv, const char *optarg_value, long def, bool *bad);

/* Parses a non-negative integer option value; false if it is not one. */
bool vb_opt_parse_number(const char *s, long long *out);

/* Overwrites the value of a secret option in argv so that ps does not show it. */
void vb_opt_scrub(int argc, char **argv, const char *long_name);

/* A command-line mistake: "<prog>: <message>" and the usage lines on stderr. Returns 1, the
 * exit status of a usage error. */
int vb_opt_usage_error(const char *prog, const char *usage, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#endif
