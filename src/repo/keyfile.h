/* Key files of an encrypted repository (virtbackup-repository(5), ENCRYPTION): a JSON object
 * holding the master key sealed with AES-256-GCM under a key-encryption key, which is
 * scrypt(passphrase) or, without a passphrase, 32 zero bytes (the file is then the key).
 * Create, read, rewrap; the paper form (hex lines with check values) out and back in. */
#ifndef VB_REPO_KEYFILE_H
#define VB_REPO_KEYFILE_H

#include <stdbool.h>
#include <stdio.h>

#include "crypto.h"
#include "error.h"

#define REPO_KEYFILE_FORMAT  "virtbackup-key"
#define REPO_KEYFILE_VERSION 1
#define REPO_PASSPHRASE_MAX  1024

/* Writes the key file at path (mode 0600) for the master key, wrapped by scrypt of passphrase
 * (NULL: no passphrase). Through path.partial, synced, then moved into place: with replace
 * the file is replaced (rename), without it an existing file is refused. 0, or -1. */
int repo_keyfile_write(const char *path, const unsigned char master[REPO_KEY_SIZE],
                       const char *passphrase, bool replace, struct vb_error *err);

/* Whether the key file at path is protected by a passphrase. 0, or -1 (unreadable, not a key
 * file). */
int repo_keyfile_has_passphrase(const char *path, bool *has, struct vb_error *err);

/* Reads the key file at path (passphrase: NULL when it has none) into k. A wrong passphrase
 * and a damaged file are errors naming the file. 0, or -1. */
int repo_keyfile_read(const char *path, const char *passphrase, struct repo_key *k,
                      struct vb_error *err);

/* What every tool does with --key FILE: reads it, asking for the passphrase on the terminal
 * when the file has one and passphrase (VIRTBACKUP_KEY_PASSPHRASE) is NULL. NULL for file
 * NULL (no key; err untouched) and on error; free with repo_key_free. */
struct repo_key *repo_key_load(const char *file, const char *passphrase, struct vb_error *err);
void repo_key_free(struct repo_key *k);

struct repo;

/* Opens the repository at path (repo_open) and, when it is encrypted and file is not NULL,
 * gives it the key of that file (repo_key_load): an unencrypted repository never reads the
 * key file nor asks for its passphrase. NULL on error. */
struct repo *repo_open_key_file(const char *path, const char *file, const char *passphrase,
                                struct vb_error *err);

/* Keeps the passphrase a tool's main took from its environment (malloc'ed, or NULL) for the
 * life of the process: copied into a static buffer, the allocation wiped and freed. Returns
 * the buffer, or NULL for NULL or a passphrase too long (REPO_PASSPHRASE_MAX). */
const char *repo_passphrase_keep(char *taken);

/* Asks for a passphrase on the controlling terminal with echo off (twice when confirm, which
 * must then match) into buf (cap bytes). 0, or -1 (no terminal, mismatch, empty). */
int repo_passphrase_ask(const char *prompt, bool confirm, char *buf, size_t cap,
                        struct vb_error *err);

/* The paper form of the key: the master key as 4 lines of 4 groups of 4 hex digits, each
 * line ending in a 4-digit check value, and the fingerprint. */
int repo_key_paper_write(FILE *f, const struct repo_key *k, struct vb_error *err);

/* Reads the paper form back (blank lines, comments after '#', spaces ignored; each line's
 * check value and the fingerprint verified) into k. 0, or -1 naming the line. */
int repo_key_paper_read(FILE *f, struct repo_key *k, struct vb_error *err);

#endif
