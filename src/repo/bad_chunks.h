/* Damaged chunks (virtbackup-repository(5), BAD CHUNKS): virtrepo verify moves a chunk whose
 * stored bytes fail the reader's checks from chunks/<hh>/<name> to bad/<hh>/<name>. The chunk
 * is then missing for every reader and writer: the next backup that reads the same content
 * stores it again under its name, and an incremental reads a base chunk that is missing
 * again. A move is a get, a put and a delete (the object store renames nothing). */
#ifndef VB_REPO_BAD_CHUNKS_H
#define VB_REPO_BAD_CHUNKS_H

#include <stddef.h>

#include "repo.h"

/* bad/<hh>/<64 hex> */
void repo_bad_chunk_key(const repo_digest *d, char key[80]);

/* Reads chunk d whole and makes every check of the reader: 0 sound (*len: its content's
 * bytes), 1 missing, 2 damaged (err says how), -1 when it could not be read (err). */
int repo_chunk_verify(struct repo *r, const repo_digest *d, size_t *len, struct vb_error *err);

/* Moves chunk d to bad/ when it is (still) damaged: its bytes put under bad/<hh>/<name>, then
 * the chunk deleted. 0 moved, 1 not moved (sound again: a writer replaced it meanwhile, or
 * gone), -1 on error (err). */
int repo_chunk_quarantine(struct repo *r, const repo_digest *d, struct vb_error *err);

/* Whether bad/ holds chunk d: 1 yes, 0 no (or it cannot be told). */
int repo_chunk_in_bad(struct repo *r, const repo_digest *d);

#endif
