#include "checkpoint_number.h"

#include <limits.h>
#include <string.h>

long stream_checkpoint_digits(const char *digits)
{
    if (!digits || !*digits || (digits[0] == '0' && digits[1]))
        return -1;
    long n = 0;
    for (const char *p = digits; *p; p++) {
        if (*p < '0' || *p > '9' || n > (LONG_MAX - (*p - '0')) / 10)
            return -1;
        n = n * 10 + (*p - '0');
    }
    return n;
}

long stream_checkpoint_number(const char *name)
{
    static const char prefix[] = STREAM_CHECKPOINT_PREFIX ".";
    if (!name || strncmp(name, prefix, sizeof prefix - 1) != 0)
        return -1;
    return stream_checkpoint_digits(name + sizeof prefix - 1);
}
