/* The retention policy (retention.h): each rule walks the snapshots newest first and keeps
 * the first of each period it meets while its count lasts; the union is kept. The periods are
 * those of the local calendar (localtime_r, so TZ), as virtrepo(1), PRUNE, states: an hour is
 * the wall clock's (the hour a DST change repeats is one period), a day runs from midnight to
 * midnight whatever its length, a week is an ISO 8601 week (%G-%V), then month and year. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "retention.h"

static const char *const rule_names[RETENTION_RULES] = {
    [RETENTION_LAST] = "last",     [RETENTION_HOURLY] = "hourly",   [RETENTION_DAILY] = "daily",
    [RETENTION_WEEKLY] = "weekly", [RETENTION_MONTHLY] = "monthly", [RETENTION_YEARLY] = "yearly",
};

const char *retention_rule_name(enum retention_rule r)
{
    return r < RETENTION_RULES ? rule_names[r] : "?";
}

bool retention_policy_any(const struct retention_policy *p)
{
    for (int r = 0; r < RETENTION_RULES; r++)
        if (p->keep[r])
            return true;
    return false;
}

/* The period of rule r that holds time t, as a number (equal numbers: the same period);
 * last's period is the snapshot's place i. */
static int64_t period_of(enum retention_rule r, time_t t, size_t i)
{
    struct tm tm;
    if (r == RETENTION_LAST || !localtime_r(&t, &tm))
        return (int64_t)i;
    int64_t year = (int64_t)tm.tm_year + 1900;
    int64_t day = (year * 100 + tm.tm_mon + 1) * 100 + tm.tm_mday;
    switch (r) {
    case RETENTION_HOURLY:
        return day * 100 + tm.tm_hour;
    case RETENTION_DAILY:
        return day;
    case RETENTION_WEEKLY: {
        char iso[32]; /* ISO year and week: the last days of December may be week 1 */
        if (strftime(iso, sizeof iso, "%G%V", &tm) == 0)
            return (int64_t)i;
        return strtoll(iso, NULL, 10);
    }
    case RETENTION_MONTHLY:
        return year * 100 + tm.tm_mon + 1;
    case RETENTION_YEARLY:
        return year;
    default:
        return (int64_t)i;
    }
}

/* Newest first: by time, then by place in the (oldest first) array. */
static size_t *newest_first(const struct retention_snapshot *s, size_t n)
{
    size_t *order = malloc((n ? n : 1) * sizeof *order);
    if (!order)
        return NULL;
    for (size_t i = 0; i < n; i++)
        order[i] = n - 1 - i;
    /* insertion sort: the array is nearly always sorted already */
    for (size_t i = 1; i < n; i++) {
        size_t x = order[i], j = i;
        while (j > 0 && (s[order[j - 1]].time < s[x].time ||
                         (s[order[j - 1]].time == s[x].time && order[j - 1] < x))) {
            order[j] = order[j - 1];
            j--;
        }
        order[j] = x;
    }
    return order;
}

void retention_apply(const struct retention_policy *p, struct retention_snapshot *s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        s[i].reasons = s[i].protected ? RETENTION_PROTECTED : 0;
    if (n == 0)
        return;
    size_t *order = newest_first(s, n);
    if (!order) { /* keep everything rather than guess */
        for (size_t i = 0; i < n; i++)
            s[i].reasons |= RETENTION_NEWEST;
        return;
    }
    s[order[0]].reasons |= RETENTION_NEWEST;
    for (int r = 0; r < RETENTION_RULES; r++) {
        unsigned left = p->keep[r];
        bool seen = false;
        int64_t last = 0;
        for (size_t k = 0; k < n && left > 0; k++) {
            int64_t period = period_of((enum retention_rule)r, s[order[k]].time, k);
            if (seen && period == last)
                continue;
            seen = true;
            last = period;
            s[order[k]].reasons |= 1u << r;
            left--;
        }
    }
    free(order);
}

void retention_reasons_format(unsigned reasons, char *out, size_t cap)
{
    size_t used = 0;
    if (cap)
        out[0] = '\0';
    const char *names[RETENTION_RULES + 4];
    unsigned bits[RETENTION_RULES + 4];
    size_t n = 0;
    names[n] = "newest", bits[n++] = RETENTION_NEWEST;
    names[n] = "protected", bits[n++] = RETENTION_PROTECTED;
    names[n] = "base", bits[n++] = RETENTION_BASE;
    names[n] = "chain", bits[n++] = RETENTION_CHAIN;
    for (int r = 0; r < RETENTION_RULES; r++)
        names[n] = rule_names[r], bits[n++] = 1u << r;
    for (size_t i = 0; i < n; i++) {
        if (!(reasons & bits[i]) || used >= cap)
            continue;
        int w = snprintf(out + used, cap - used, "%s%s", used ? "," : "", names[i]);
        if (w > 0)
            used += (size_t)w;
    }
}
