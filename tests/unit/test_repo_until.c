/* virtrestore's --until for a repository (src/restore/repo_select.c): local times with and
 * without seconds (also across a DST change), ISO 8601 with an offset, and what is not a time
 * (a checkpoint name, impossible dates, stray characters) refused; the time a snapshot id
 * names. */
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "repo_select.h"
#include "testutil.h"

static time_t utc(int y, int mo, int d, int h, int mi, int s)
{
    struct tm tm = {.tm_year = y - 1900,
                    .tm_mon = mo - 1,
                    .tm_mday = d,
                    .tm_hour = h,
                    .tm_min = mi,
                    .tm_sec = s};
    return timegm(&tm);
}

static void check_time(const char *s, time_t want)
{
    time_t t = 0;
    int rc = repo_until_parse(s, &t);
    CHECK_MSG(rc == 0 && t == want, "'%s': rc %d, %lld, want %lld", s, rc, (long long)t,
              (long long)want);
}

static void check_not_time(const char *s)
{
    time_t t = 12345;
    CHECK_MSG(repo_until_parse(s, &t) < 0 && t == 12345, "'%s' taken as a time", s);
}

int main(void)
{
    /* Central European time without tzdata: UTC+1, summer UTC+2 from the last Sunday of
     * March 02:00 to the last Sunday of October 03:00 */
    setenv("TZ", "CET-1CEST,M3.5.0,M10.5.0/3", 1);
    tzset();
    check_time("2026-12-01 03:00", utc(2026, 12, 1, 2, 0, 0));
    check_time("2026-12-01 03:00:59", utc(2026, 12, 1, 2, 0, 59));
    check_time("2026-12-01T03:00:07", utc(2026, 12, 1, 2, 0, 7));
    check_time("2026-07-01 03:00", utc(2026, 7, 1, 1, 0, 0)); /* summer time */
    check_time("2024-02-29 23:59:59", utc(2024, 2, 29, 22, 59, 59));
    /* with an offset or Z the local zone plays no part */
    check_time("2026-12-01T03:00:00+00:00", utc(2026, 12, 1, 3, 0, 0));
    check_time("2026-12-01T03:00:00Z", utc(2026, 12, 1, 3, 0, 0));
    check_time("2026-12-01T03:00:00-05:30", utc(2026, 12, 1, 8, 30, 0));

    setenv("TZ", "UTC0", 1);
    tzset();
    check_time("2026-12-01 03:00", utc(2026, 12, 1, 3, 0, 0));

    check_not_time("virtnbdbackup.3");
    check_not_time("");
    check_not_time("2026-12-01");
    check_not_time("2026-12-01 3:00");
    check_not_time("2026-12-01 03:00:");
    check_not_time("2026-12-01 03:00:00 ");
    check_not_time("2026-12-01  03:00");
    check_not_time("2026-13-01 03:00");
    check_not_time("2026-02-30 03:00");
    check_not_time("2025-02-29 03:00");
    check_not_time("2026-12-32 03:00");
    check_not_time("2026-12-01 24:00");
    check_not_time("2026-12-01 03:60");
    check_not_time("2026-12-01 03:00:60");
    check_not_time("2026-12-01x03:00");
    check_not_time("2026/12/01 03:00");
    check_not_time("+026-12-01 03:00");
    check_not_time("2026-12-01 03:-1");
    check_not_time("1969-12-31 23:00");
    check_not_time("2026-12-01T03:00:00+25:00");

    time_t t = 0;
    CHECK(repo_snapshot_id_time("20261207T180000Z-1a2b3c4d", &t) == 0 &&
          t == utc(2026, 12, 7, 18, 0, 0));
    CHECK(repo_snapshot_id_time("20261207T180000Z", &t) < 0);
    CHECK(repo_snapshot_id_time("2026120XT180000Z-1a2b3c4d", &t) < 0);
    CHECK(repo_snapshot_id_time("../x", &t) < 0);
    return test_finish("test_repo_until");
}
