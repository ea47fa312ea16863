/* The retention policy of virtrepo prune (src/virtrepo/retention.c; virtrepo(1), PRUNE):
 * restic's semantics (each rule keeps the newest snapshot of each of its last N periods that
 * have one; the union is kept), the periods of the local time zone (TZ), ISO weeks across a
 * year boundary with week 53, fewer periods than N, the days of a DST change in
 * Europe/Berlin, the newest always kept and protected snapshots kept. */
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "retention.h"
#include "testutil.h"

#define MAX_SNAPSHOTS 400

static void set_tz(const char *tz)
{
    setenv("TZ", tz, 1);
    tzset();
}

/* "YYYY-MM-DD HH:MM" in the local time zone (a time a DST change repeats: its first). */
static time_t local(const char *s)
{
    struct tm tm = {0};
    if (!strptime(s, "%Y-%m-%d %H:%M", &tm)) {
        fprintf(stderr, "bad time %s\n", s);
        abort();
    }
    tm.tm_isdst = -1;
    return mktime(&tm);
}

struct set {
    struct retention_snapshot s[MAX_SNAPSHOTS];
    size_t n;
};

static void add(struct set *x, time_t t)
{
    x->s[x->n++] = (struct retention_snapshot){.time = t};
}

/* The reasons of snapshot i as text. */
static const char *why(const struct set *x, size_t i)
{
    static char buf[4][128];
    static int next;
    char *out = buf[next++ % 4];
    retention_reasons_format(x->s[i].reasons, out, sizeof buf[0]);
    return out;
}

static size_t kept(const struct set *x)
{
    size_t k = 0;
    for (size_t i = 0; i < x->n; i++)
        k += x->s[i].reasons != 0;
    return k;
}

#define CHECK_WHY(x, i, want)                                                                      \
    CHECK_MSG(strcmp(why(x, i), want) == 0, "[%d] %s", (int)(i), why(x, i))

static void keep_last(void)
{
    struct set x = {0};
    for (int i = 0; i < 5; i++)
        add(&x, local("2026-05-01 10:00") + i * 60);
    retention_apply(&(struct retention_policy){.keep[RETENTION_LAST] = 3}, x.s, x.n);
    CHECK_WHY(&x, 0, "");
    CHECK_WHY(&x, 1, "");
    CHECK_WHY(&x, 2, "last");
    CHECK_WHY(&x, 3, "last");
    CHECK_WHY(&x, 4, "newest,last");
}

/* several a day: the newest of each of the last 3 days that have a snapshot */
static void keep_daily_several_per_day(void)
{
    struct set x = {0};
    const char *t[] = {"2026-05-01 01:00", "2026-05-01 12:00", "2026-05-01 23:59",
                       "2026-05-02 08:00", "2026-05-02 20:00", "2026-05-04 00:00",
                       "2026-05-05 00:01", "2026-05-05 07:00"};
    for (size_t i = 0; i < sizeof t / sizeof t[0]; i++)
        add(&x, local(t[i]));
    retention_apply(&(struct retention_policy){.keep[RETENTION_DAILY] = 3}, x.s, x.n);
    CHECK(kept(&x) == 3);
    CHECK_WHY(&x, 4, "daily");        /* 05-02's newest (05-03 has none: not a period) */
    CHECK_WHY(&x, 5, "daily");        /* 05-04 */
    CHECK_WHY(&x, 6, "");             /* 05-05's older one */
    CHECK_WHY(&x, 7, "newest,daily"); /* 05-05's newest */
    CHECK_WHY(&x, 2, "");             /* 05-01: a fourth day */
}

/* 2026 has 53 ISO weeks: 2026-W53 runs from Mon 2026-12-28 to Sun 2027-01-03, one week
 * across the calendar years (a week counted per calendar year would split it). */
static void keep_weekly_iso_week_53(void)
{
    struct set x = {0};
    add(&x, local("2026-12-20 12:00")); /* W51 */
    add(&x, local("2026-12-27 12:00")); /* Sun, W52 */
    add(&x, local("2026-12-29 12:00")); /* Tue, W53 */
    add(&x, local("2027-01-02 12:00")); /* Sat, W53 */
    add(&x, local("2027-01-05 12:00")); /* Tue, 2027-W01 */
    retention_apply(&(struct retention_policy){.keep[RETENTION_WEEKLY] = 3}, x.s, x.n);
    CHECK_WHY(&x, 4, "newest,weekly");
    CHECK_WHY(&x, 3, "weekly");
    CHECK_WHY(&x, 2, "");
    CHECK_WHY(&x, 1, "weekly");
    CHECK_WHY(&x, 0, "");
}

static void keep_monthly(void)
{
    struct set x = {0};
    add(&x, local("2026-01-31 23:00"));
    add(&x, local("2026-02-01 00:30"));
    add(&x, local("2026-02-28 22:00"));
    add(&x, local("2026-03-15 12:00"));
    retention_apply(&(struct retention_policy){.keep[RETENTION_MONTHLY] = 2}, x.s, x.n);
    CHECK_WHY(&x, 3, "newest,monthly");
    CHECK_WHY(&x, 2, "monthly");
    CHECK_WHY(&x, 1, "");
    CHECK_WHY(&x, 0, "");
}

/* in Europe/Berlin, 2026-01-01 00:30 is 2025-12-31 23:30 UTC: local time makes it 2026's */
static void keep_yearly_local_time(void)
{
    struct set x = {0};
    add(&x, local("2025-06-01 12:00"));
    add(&x, local("2025-12-31 22:00"));
    add(&x, local("2026-01-01 00:30"));
    retention_apply(&(struct retention_policy){.keep[RETENTION_YEARLY] = 2}, x.s, x.n);
    CHECK_WHY(&x, 2, "newest,yearly");
    CHECK_WHY(&x, 1, "yearly");
    CHECK_WHY(&x, 0, "");
}

/* one a day at noon, 2026-01-01 .. 2026-03-31; --keep-daily 7 --keep-weekly 4
 * --keep-monthly 3: Mar 25..31, the Sundays Mar 22 and 15 (Mar 29 is one of the 7 days and
 * the newest of W13; Mar 31 of W14), the last days of February and January */
static void combined_rules(void)
{
    struct set x = {0};
    time_t first = local("2026-01-01 12:00");
    for (int d = 0; d < 90; d++) {
        struct tm tm;
        localtime_r(&first, &tm);
        tm.tm_mday += d;
        tm.tm_isdst = -1;
        add(&x, mktime(&tm));
    }
    struct retention_policy p = {0};
    p.keep[RETENTION_DAILY] = 7;
    p.keep[RETENTION_WEEKLY] = 4;
    p.keep[RETENTION_MONTHLY] = 3;
    retention_apply(&p, x.s, x.n);
    CHECK_MSG(kept(&x) == 11, "%zu kept", kept(&x));
    CHECK_WHY(&x, 89, "newest,daily,weekly,monthly"); /* Mar 31 */
    CHECK_WHY(&x, 87, "daily,weekly");                /* Sun Mar 29 */
    CHECK_WHY(&x, 83, "daily");                       /* Mar 25 */
    CHECK_WHY(&x, 82, "");                            /* Mar 24 */
    CHECK_WHY(&x, 80, "weekly");                      /* Sun Mar 22 */
    CHECK_WHY(&x, 73, "weekly");                      /* Sun Mar 15 */
    CHECK_WHY(&x, 66, "");                            /* Sun Mar 8: a fifth week */
    CHECK_WHY(&x, 58, "monthly");                     /* Feb 28 */
    CHECK_WHY(&x, 30, "monthly");                     /* Jan 31 */
    CHECK_WHY(&x, 0, "");
}

/* fewer periods than N: every period's newest, no more */
static void fewer_periods_than_n(void)
{
    struct set x = {0};
    add(&x, local("2026-05-01 10:00"));
    add(&x, local("2026-05-01 11:00"));
    add(&x, local("2026-05-02 10:00"));
    retention_apply(&(struct retention_policy){.keep[RETENTION_DAILY] = 10}, x.s, x.n);
    CHECK_WHY(&x, 0, "");
    CHECK_WHY(&x, 1, "daily");
    CHECK_WHY(&x, 2, "newest,daily");
    retention_apply(&(struct retention_policy){.keep[RETENTION_LAST] = 10}, x.s, x.n);
    CHECK(kept(&x) == 3);
}

/* Europe/Berlin: 2026-03-29 has 23 hours, 2026-10-25 has 25; a day is the local calendar's */
static void dst_days_berlin(void)
{
    struct set x = {0};
    add(&x, local("2026-10-25 00:30")); /* CEST: 2026-10-24 22:30 UTC */
    add(&x, local("2026-10-25 23:30")); /* CET: 22:30 UTC, 24 h later, the same local day */
    add(&x, local("2026-10-26 00:30"));
    CHECK(x.s[1].time - x.s[0].time == 24 * 3600);
    retention_apply(&(struct retention_policy){.keep[RETENTION_DAILY] = 2}, x.s, x.n);
    CHECK_WHY(&x, 2, "newest,daily");
    CHECK_WHY(&x, 1, "daily");
    CHECK_WHY(&x, 0, "");

    /* the hour the clock repeats (02:00..02:59, CEST then CET) is one hourly period */
    struct set h = {0};
    time_t cest_0230 = local("2026-10-25 01:30") + 3600; /* 00:30 UTC */
    add(&h, local("2026-10-25 01:30"));
    add(&h, cest_0230);
    add(&h, cest_0230 + 3600); /* 02:30 CET */
    add(&h, cest_0230 + 7200); /* 03:30 CET */
    retention_apply(&(struct retention_policy){.keep[RETENTION_HOURLY] = 3}, h.s, h.n);
    CHECK_WHY(&h, 3, "newest,hourly");
    CHECK_WHY(&h, 2, "hourly");
    CHECK_WHY(&h, 1, "");
    CHECK_WHY(&h, 0, "hourly");

    struct set s = {0};
    add(&s, local("2026-03-29 01:30")); /* CET */
    add(&s, local("2026-03-29 03:30")); /* CEST: one hour later */
    add(&s, local("2026-03-29 23:30"));
    add(&s, local("2026-03-30 00:10"));
    CHECK(s.s[1].time - s.s[0].time == 3600);
    retention_apply(&(struct retention_policy){.keep[RETENTION_DAILY] = 2}, s.s, s.n);
    CHECK_WHY(&s, 3, "newest,daily");
    CHECK_WHY(&s, 2, "daily");
    CHECK_WHY(&s, 1, "");
    CHECK_WHY(&s, 0, "");
}

/* the newest is kept whatever the rules; protected ones are kept and still count in rules */
static void newest_and_protected(void)
{
    struct set x = {0};
    add(&x, local("2026-05-01 10:00"));
    add(&x, local("2026-05-02 10:00"));
    add(&x, local("2026-05-03 10:00"));
    add(&x, local("2026-05-03 11:00"));
    x.s[0].protected = true;
    x.s[2].protected = true;
    retention_apply(&(struct retention_policy){.keep[RETENTION_WEEKLY] = 1}, x.s, x.n);
    CHECK_WHY(&x, 3, "newest,weekly");
    CHECK_WHY(&x, 2, "protected");
    CHECK_WHY(&x, 1, "");
    CHECK_WHY(&x, 0, "protected");

    /* equal times: the later in the array is the newer */
    struct set e = {0};
    add(&e, local("2026-05-01 10:00"));
    add(&e, local("2026-05-01 10:00"));
    retention_apply(&(struct retention_policy){.keep[RETENTION_DAILY] = 1}, e.s, e.n);
    CHECK_WHY(&e, 1, "newest,daily");
    CHECK_WHY(&e, 0, "");

    /* out of order in the array: by time */
    struct set o = {0};
    add(&o, local("2026-05-02 10:00"));
    add(&o, local("2026-05-01 10:00"));
    retention_apply(&(struct retention_policy){.keep[RETENTION_LAST] = 1}, o.s, o.n);
    CHECK_WHY(&o, 0, "newest,last");
    CHECK_WHY(&o, 1, "");

    retention_apply(&(struct retention_policy){.keep[RETENTION_LAST] = 1}, o.s, 0);
    char text[128];
    retention_reasons_format(RETENTION_CHAIN | RETENTION_NEWEST | 1u << RETENTION_YEARLY, text,
                             sizeof text);
    CHECK_MSG(strcmp(text, "newest,chain,yearly") == 0, "%s", text);
    retention_reasons_format(RETENTION_BASE | RETENTION_PROTECTED, text, sizeof text);
    CHECK_MSG(strcmp(text, "protected,base") == 0, "%s", text);
    CHECK(!retention_policy_any(&(struct retention_policy){0}));
    CHECK(retention_policy_any(&(struct retention_policy){.keep[RETENTION_YEARLY] = 1}));
}

int main(void)
{
    set_tz("Europe/Berlin");
    keep_last();
    keep_daily_several_per_day();
    keep_weekly_iso_week_53();
    keep_monthly();
    keep_yearly_local_time();
    combined_rules();
    fewer_periods_than_n();
    dst_days_berlin();
    newest_and_protected();
    return test_finish("test_retention");
}
