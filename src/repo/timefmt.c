/* ISO 8601 times with an offset (timefmt.h). */
#include <stdio.h>
#include <string.h>

#include "timefmt.h"

void repo_time_format(time_t t, bool zulu, char out[REPO_TIME_MAX])
{
    struct tm tm;
    char when[24];
    if (!gmtime_r(&t, &tm) || strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%S", &tm) != 19)
        strcpy(when, "1970-01-01T00:00:00"); /* a time beyond year 9999 */
    snprintf(out, REPO_TIME_MAX, "%s%s", when, zulu ? "Z" : "+00:00");
}

/* n decimal digits at s; -1 when any is not one */
static int digits(const char *s, int n)
{
    int v = 0;
    for (int i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9')
            return -1;
        v = v * 10 + (s[i] - '0');
    }
    return v;
}

static bool leap(int y)
{
    return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
}

int repo_time_parse(const char *s, time_t *t)
{
    static const int mdays[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    if (strnlen(s, 20) < 20 || s[4] != '-' || s[7] != '-' || s[10] != 'T' || s[13] != ':' ||
        s[16] != ':')
        return -1;
    int y = digits(s, 4), mo = digits(s + 5, 2), d = digits(s + 8, 2);
    int h = digits(s + 11, 2), mi = digits(s + 14, 2), se = digits(s + 17, 2);
    if (y < 1970 || mo < 1 || mo > 12 || d < 1 || h < 0 || h > 23 || mi < 0 || mi > 59 || se < 0 ||
        se > 59)
        return -1;
    if (d > mdays[mo - 1] + (mo == 2 && leap(y)))
        return -1;
    long off = 0;
    const char *z = s + 19;
    if (strcmp(z, "Z") == 0) {
        off = 0;
    } else if ((z[0] == '+' || z[0] == '-') && strlen(z) == 6 && z[3] == ':') {
        int oh = digits(z + 1, 2), om = digits(z + 4, 2);
        if (oh < 0 || oh > 23 || om < 0 || om > 59)
            return -1;
        off = (oh * 60L + om) * 60L * (z[0] == '-' ? -1 : 1);
    } else {
        return -1;
    }
    struct tm tm = {.tm_year = y - 1900,
                    .tm_mon = mo - 1,
                    .tm_mday = d,
                    .tm_hour = h,
                    .tm_min = mi,
                    .tm_sec = se};
    *t = timegm(&tm) - off;
    return 0;
}
