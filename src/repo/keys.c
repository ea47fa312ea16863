/* Object keys, snapshot ids and the checks of uuids and ids (keys.h). */
#include <stdio.h>
#include <string.h>
#include <sys/random.h>
#include <sys/time.h>
#include <unistd.h>

#include "keys.h"
#include "timefmt.h"

void repo_chunk_key(const repo_digest *d, char key[80])
{
    char hex[REPO_DIGEST_HEX + 1];
    repo_digest_hex(d, hex);
    snprintf(key, 80, "chunks/%.2s/%s", hex, hex);
}

void repo_index_key(const repo_digest *d, char key[80])
{
    char hex[REPO_DIGEST_HEX + 1];
    repo_digest_hex(d, hex);
    snprintf(key, 80, "indexes/%s", hex);
}

int repo_snapshot_key(const char *uuid, const char *id, char key[REPO_KEY_MAX])
{
    if (!repo_uuid_valid(uuid) || !repo_snapshot_id_valid(id))
        return -1;
    snprintf(key, REPO_KEY_MAX, "snapshots/%s/%s.json", uuid, id);
    return 0;
}

static bool lower_hex(char c)
{
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f');
}

void repo_snapshot_id_new(time_t t, char id[32])
{
    unsigned char r[4];
    /* uniqueness, not secrecy, is what the random part is for: a clock and pid do when the
     * kernel's generator cannot answer */
    if (getrandom(r, sizeof(r), GRND_NONBLOCK) != (ssize_t)sizeof(r)) {
        struct timeval tv;
        gettimeofday(&tv, NULL);
        unsigned v = (unsigned)tv.tv_usec * 2654435761u ^ (unsigned)getpid();
        memcpy(r, &v, sizeof(r));
    }
    struct tm tm;
    char when[20];
    if (!gmtime_r(&t, &tm) || strftime(when, sizeof(when), "%Y%m%dT%H%M%SZ", &tm) != 16)
        strcpy(when, "19700101T000000Z"); /* a time beyond year 9999 */
    snprintf(id, 32, "%s-%02x%02x%02x%02x", when, r[0], r[1], r[2], r[3]);
}

bool repo_snapshot_id_valid(const char *id)
{
    if (strnlen(id, REPO_SNAPSHOT_ID_LEN + 1) != REPO_SNAPSHOT_ID_LEN || id[8] != 'T' ||
        id[15] != 'Z' || id[16] != '-')
        return false;
    for (int i = 17; i < REPO_SNAPSHOT_ID_LEN; i++)
        if (!lower_hex(id[i]))
            return false;
    /* the time part is checked as the ISO form of the same instant */
    char iso[24];
    snprintf(iso, sizeof(iso), "%.4s-%.2s-%.2sT%.2s:%.2s:%.2sZ", id, id + 4, id + 6, id + 9,
             id + 11, id + 13);
    time_t t;
    return repo_time_parse(iso, &t) == 0;
}

bool repo_uuid_valid(const char *uuid)
{
    if (strnlen(uuid, REPO_UUID_LEN + 1) != REPO_UUID_LEN)
        return false;
    for (int i = 0; i < REPO_UUID_LEN; i++) {
        bool dash = i == 8 || i == 13 || i == 18 || i == 23;
        if (dash ? uuid[i] != '-' : !lower_hex(uuid[i]))
            return false;
    }
    return true;
}
