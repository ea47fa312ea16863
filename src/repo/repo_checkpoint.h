/* The names of a repository's libvirt checkpoints (virtbackup(1), REPOSITORY OUTPUT):
 * "virtnbdbackup.<repo id>.<n>", the repository's 32 hex digit id and a decimal n without
 * sign or leading zeros. The prefix is the stream chains' (virtbackup-stream(5), CHAINS), so
 * that the reference tool still accepts the domain; the id keeps each repository's
 * checkpoints apart from a stream chain's "virtnbdbackup.<n>" and from other repositories'. */
#ifndef VB_REPO_REPO_CHECKPOINT_H
#define VB_REPO_REPO_CHECKPOINT_H

#include <stdbool.h>
#include <stddef.h>

#define REPO_CHECKPOINT_PREFIX "virtnbdbackup."
/* prefix, 32 hex digits, '.', at most 19 digits, NUL */
#define REPO_CHECKPOINT_NAME_MAX (sizeof REPO_CHECKPOINT_PREFIX + 32 + 1 + 19 + 1)

/* The name of checkpoint n of the repository repo_id into out (len bytes). 0, or -1 when
 * repo_id is not 32 lower-case hex digits, n is negative or out is too small. */
int repo_checkpoint_name(const char *repo_id, long n, char *out, size_t len);

/* n of name when it is a checkpoint of repository repo_id (NULL: of any repository), else
 * -1 (a stream chain's "virtnbdbackup.<n>", another repository's, anything else). */
long repo_checkpoint_number(const char *name, const char *repo_id);

/* Whether name is a checkpoint of some repository. */
bool repo_checkpoint_is_repository(const char *name);

#endif
