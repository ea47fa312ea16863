#include "options.h"

#include <ctype.h>
#include <errno.h>
#include <getopt.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

bool vb_opt_parse_number(const char *s, long long *out)
{
    if (!s || !*s || !isdigit((unsigned char)*s))
        return false;
    char *end;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (errno || *end)
        return false;
    *out = v;
    return true;
}

long vb_opt_optional_number(int argc, char **argv, const char *optarg_value, long def, bool *bad)
{
    long long v;
    *bad = false;
    if (optarg_value) {
        if (!vb_opt_parse_number(optarg_value, &v)) {
            *bad = true;
            return -1;
        }
        return (long)v;
    }
    if (optind < argc && vb_opt_parse_number(argv[optind], &v)) {
        optind++;
        return (long)v;
    }
    return def;
}

void vb_opt_scrub(int argc, char **argv, const char *long_name)
{
    size_t n = strlen(long_name);
    for (int i = 1; i < argc; i++) {
        char *a = argv[i];
        if (strncmp(a, "--", 2) != 0 || strncmp(a + 2, long_name, n) != 0)
            continue;
        if (a[2 + n] == '=')
            memset(a + 3 + n, 'x', strlen(a + 3 + n));
        else if (a[2 + n] == '\0' && i + 1 < argc)
            memset(argv[i + 1], 'x', strlen(argv[i + 1]));
    }
}

int vb_opt_usage_error(const char *prog, const char *usage, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "%s: ", prog);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    size_t n = strlen(usage);
    fprintf(stderr, "\n%s%s", usage, n && usage[n - 1] == '\n' ? "" : "\n");
    return 1;
}
