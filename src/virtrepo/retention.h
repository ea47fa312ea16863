/* The retention policy of virtrepo prune (virtrepo(1), PRUNE): given one VM's snapshots with
 * their times and the --keep-* rules, which to keep and by which rules. Pure: no repository,
 * no clock; the periods are those of the local time zone (TZ), weeks are ISO 8601 weeks. */
#ifndef VB_VIRTREPO_RETENTION_H
#define VB_VIRTREPO_RETENTION_H

#include <stdbool.h>
#include <stddef.h>
#include <time.h>

enum retention_rule {
    RETENTION_LAST,
    RETENTION_HOURLY,
    RETENTION_DAILY,
    RETENTION_WEEKLY,
    RETENTION_MONTHLY,
    RETENTION_YEARLY,
    RETENTION_RULES
};

/* The reasons a snapshot is kept: bit r for rule r, and these. BASE and CHAIN are the
 * caller's to set (the next incremental's base and its chain: virtrepo(1), PRUNE). */
#define RETENTION_NEWEST    (1u << RETENTION_RULES)
#define RETENTION_PROTECTED (1u << (RETENTION_RULES + 1))
#define RETENTION_BASE      (1u << (RETENTION_RULES + 2))
#define RETENTION_CHAIN     (1u << (RETENTION_RULES + 3))

/* keep[r]: how many periods rule r keeps; 0 = the rule was not given. */
struct retention_policy {
    unsigned keep[RETENTION_RULES];
};

/* One snapshot of one VM. time and protected are read; reasons is set (0: remove it). */
struct retention_snapshot {
    time_t time;
    bool protected;
    unsigned reasons;
};

/* "last", "hourly", "daily", "weekly", "monthly", "yearly". */
const char *retention_rule_name(enum retention_rule r);

/* Whether p has at least one rule (a prune without one is refused). */
bool retention_policy_any(const struct retention_policy *p);

/* Sets the reasons of the n snapshots of one VM, which come oldest first (of two with the same
 * time, the later in the array is the newer). Each rule independently walks the snapshots from
 * the newest and keeps the first (the newest) of each period it has not seen yet, until it has
 * kept as many as it may: the periods are the last N that have a snapshot; last's period is the
 * snapshot itself. The newest snapshot is always kept, and so is every protected one. */
void retention_apply(const struct retention_policy *p, struct retention_snapshot *s, size_t n);

/* The reasons as a comma list ("newest,last,daily"; BASE and CHAIN are "base" and "chain"),
 * "" for none, into out. */
void retention_reasons_format(unsigned reasons, char *out, size_t cap);

#endif
