/* A thread-safe set of digests: the chunks one process is putting right now, so that
 * identical chunks put by several workers or disks at the same moment count as new once; the
 * chunks and indexes garbage collection finds referenced. */
#ifndef VB_REPO_DIGEST_SET_H
#define VB_REPO_DIGEST_SET_H

#include <stdbool.h>

#include "digest.h"

struct repo_digest_set;

struct repo_digest_set *repo_digest_set_new(void);
void repo_digest_set_free(struct repo_digest_set *s);
/* Adds d: 1 if it was not in the set, 0 if it was, -1 out of memory. */
int repo_digest_set_add(struct repo_digest_set *s, const repo_digest *d);
/* Removes d (its put ended). */
void repo_digest_set_remove(struct repo_digest_set *s, const repo_digest *d);
/* Whether d is in the set. */
bool repo_digest_set_has(struct repo_digest_set *s, const repo_digest *d);

#endif
