#include "digest_set.h"

#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* Open addressing with linear probing over the digests' first 8 bytes (uniform: SHA-256);
 * removal leaves a tombstone. The table doubles at half load. */
struct repo_digest_set {
    pthread_mutex_t lock;
    repo_digest *slot;
    unsigned char *state; /* 0 empty, 1 used, 2 removed */
    size_t cap, used;     /* used counts tombstones too */
};

static uint64_t hash_of(const repo_digest *d)
{
    uint64_t h;
    memcpy(&h, d->b, sizeof h);
    return h;
}

struct repo_digest_set *repo_digest_set_new(void)
{
    struct repo_digest_set *s = calloc(1, sizeof *s);
    if (!s)
        return NULL;
    pthread_mutex_init(&s->lock, NULL);
    return s;
}

void repo_digest_set_free(struct repo_digest_set *s)
{
    if (!s)
        return;
    pthread_mutex_destroy(&s->lock);
    free(s->slot);
    free(s->state);
    free(s);
}

/* The slot holding d, or the first free one on its probe path; cap is a power of two. */
static size_t find(const repo_digest *slot, const unsigned char *state, size_t cap,
                   const repo_digest *d, bool *found)
{
    size_t i = (size_t)hash_of(d) & (cap - 1), free_at = SIZE_MAX;
    for (;; i = (i + 1) & (cap - 1)) {
        if (state[i] == 0) {
            *found = false;
            return free_at != SIZE_MAX ? free_at : i;
        }
        if (state[i] == 2) {
            if (free_at == SIZE_MAX)
                free_at = i;
        } else if (memcmp(slot[i].b, d->b, sizeof d->b) == 0) {
            *found = true;
            return i;
        }
    }
}

static int grow(struct repo_digest_set *s)
{
    size_t cap = s->cap ? s->cap * 2 : 1024;
    repo_digest *slot = malloc(cap * sizeof *slot);
    unsigned char *state = calloc(cap, 1);
    if (!slot || !state) {
        free(slot);
        free(state);
        return -1;
    }
    size_t used = 0;
    for (size_t i = 0; i < s->cap; i++) {
        if (s->state[i] != 1)
            continue;
        bool found;
        size_t j = find(slot, state, cap, &s->slot[i], &found);
        slot[j] = s->slot[i];
        state[j] = 1;
        used++;
    }
    free(s->slot);
    free(s->state);
    s->slot = slot;
    s->state = state;
    s->cap = cap;
    s->used = used;
    return 0;
}

int repo_digest_set_add(struct repo_digest_set *s, const repo_digest *d)
{
    pthread_mutex_lock(&s->lock);
    int rc = 1;
    if ((s->used + 1) * 2 > s->cap && grow(s) < 0) {
        rc = -1;
    } else {
        bool found;
        size_t i = find(s->slot, s->state, s->cap, d, &found);
        if (found) {
            rc = 0;
        } else {
            if (s->state[i] == 0)
                s->used++;
            s->slot[i] = *d;
            s->state[i] = 1;
        }
    }
    pthread_mutex_unlock(&s->lock);
    return rc;
}

void repo_digest_set_remove(struct repo_digest_set *s, const repo_digest *d)
{
    pthread_mutex_lock(&s->lock);
    if (s->cap) {
        bool found;
        size_t i = find(s->slot, s->state, s->cap, d, &found);
        if (found)
            s->state[i] = 2;
    }
    pthread_mutex_unlock(&s->lock);
}

bool repo_digest_set_has(struct repo_digest_set *s, const repo_digest *d)
{
    pthread_mutex_lock(&s->lock);
    bool found = false;
    if (s->cap)
        find(s->slot, s->state, s->cap, d, &found);
    pthread_mutex_unlock(&s->lock);
    return found;
}
