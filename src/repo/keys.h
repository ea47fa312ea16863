/* Object keys of virtbackup-repository(5) ("config", chunks/<hh>/<digest>,
 * indexes/<digest>, snapshots/<vm uuid>/<id>.json), snapshot ids (UTC time of the backup's
 * start and 4 random bytes: they sort by time) and the checks of uuids and ids that keep
 * keys free of "..", '/' and other surprises. */
#ifndef VB_REPO_KEYS_H
#define VB_REPO_KEYS_H

#include <stdbool.h>
#include <time.h>

#include "digest.h"

#define REPO_CONFIG_KEY      "config"
#define REPO_KEY_MAX         96
#define REPO_SNAPSHOT_ID_LEN 25 /* YYYYmmddTHHMMSSZ-xxxxxxxx */
#define REPO_UUID_LEN        36

void repo_chunk_key(const repo_digest *d, char key[80]);
void repo_index_key(const repo_digest *d, char key[80]);

/* snapshots/<uuid>/<id>.json. -1 when uuid or id is not valid (nothing written). */
int repo_snapshot_key(const char *uuid, const char *id, char key[REPO_KEY_MAX]);

/* A new id for a backup that started at t: its UTC time and 8 random hex digits. */
void repo_snapshot_id_new(time_t t, char id[32]);

/* YYYYmmddTHHMMSSZ-<8 lower-case hex>, a real date and time. */
bool repo_snapshot_id_valid(const char *id);

/* 8-4-4-4-12 lower-case hex digits, as libvirt prints a domain's uuid. */
bool repo_uuid_valid(const char *uuid);

#endif
