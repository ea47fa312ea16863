/* Digests of the repository: SHA-256 (OpenSSL's libcrypto, which uses the CPU's SHA
 * extensions) of chunk contents and index contents, their hex form and the all-zero digest
 * that marks an all-zero chunk in an index (virtbackup-repository(5)). */
#ifndef VB_REPO_DIGEST_H
#define VB_REPO_DIGEST_H

#include <stdbool.h>
#include <stddef.h>

#include "error.h"

#define REPO_DIGEST_SIZE 32
#define REPO_DIGEST_HEX  64

typedef struct {
    unsigned char b[REPO_DIGEST_SIZE];
} repo_digest; /* SHA-256 */

/* One shot: the SHA-256 of len bytes at data. */
void repo_digest_of(const void *data, size_t len, repo_digest *out);

/* True for the 32 zero bytes an index gives an all-zero chunk. */
bool repo_digest_is_zero(const repo_digest *d);

bool repo_digest_equal(const repo_digest *a, const repo_digest *b);

/* 64 lower-case hex digits and a NUL. */
void repo_digest_hex(const repo_digest *d, char hex[REPO_DIGEST_HEX + 1]);

/* Exactly 64 hex digits (lower or upper case), nothing after them. 0, or -1. */
int repo_digest_parse(const char *hex, repo_digest *out);

/* Incremental: begin, update any number of times, end (which also frees the state). */
struct repo_digest_ctx;
struct repo_digest_ctx *repo_digest_begin(struct vb_error *err);
void repo_digest_update(struct repo_digest_ctx *c, const void *data, size_t len);
void repo_digest_end(struct repo_digest_ctx *c, repo_digest *out);

#endif
