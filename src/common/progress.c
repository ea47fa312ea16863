#include "progress.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define BAR_INTERVAL_NS 200000000LL /* 5 redraws a second are enough for a human */
#define BAR_WIDTH       30

struct progress {
    char label[64];
    uint64_t total;
    enum progress_mode mode;
    atomic_uint_least64_t done;
    atomic_llong next_print; /* monotonic ns at which the next print is due */
    long long started;
    pthread_mutex_t lock; /* serialises printing */
    bool finished;
};

static long long now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

enum progress_mode progress_mode_for_stderr(bool quiet)
{
    if (quiet)
        return PROGRESS_NONE;
    return isatty(STDERR_FILENO) ? PROGRESS_BAR : PROGRESS_LINES;
}

const char *progress_format_bytes(uint64_t bytes, char *buf, int len)
{
    static const char *const units[] = {"B", "KiB", "MiB", "GiB", "TiB", "PiB"};
    double v = (double)bytes;
    int u = 0;
    while (v >= 1024 && u < 5) {
        v /= 1024;
        u++;
    }
    snprintf(buf, (size_t)len, u ? "%.1f %s" : "%.0f %s", v, units[u]);
    return buf;
}

struct progress *progress_new(const char *label, uint64_t total, enum progress_mode mode)
{
    struct progress *p = calloc(1, sizeof *p);
    if (!p)
        return NULL;
    snprintf(p->label, sizeof p->label, "%s", label);
    p->total = total;
    p->mode = mode;
    atomic_init(&p->done, 0);
    p->started = now_ns();
    long long first = mode == PROGRESS_LINES ? PROGRESS_LINE_SECONDS * 1000000000LL : 0;
    atomic_init(&p->next_print, p->started + first);
    pthread_mutex_init(&p->lock, NULL);
    return p;
}

static void print_locked(struct progress *p, uint64_t done, long long t, bool final)
{
    char a[32], b[32], r[32];
    double secs = (double)(t - p->started) / 1e9;
    uint64_t rate = secs > 0 ? (uint64_t)((double)done / secs) : 0;
    progress_format_bytes(done, a, sizeof a);
    progress_format_bytes(p->total, b, sizeof b);
    progress_format_bytes(rate, r, sizeof r);
    int pct = p->total ? (int)(done * 100 / p->total) : 100;
    if (pct > 100)
        pct = 100;
    if (p->mode == PROGRESS_BAR) {
        char bar[BAR_WIDTH + 1];
        int fill = pct * BAR_WIDTH / 100;
        memset(bar, '#', (size_t)fill);
        memset(bar + fill, '-', (size_t)(BAR_WIDTH - fill));
        bar[BAR_WIDTH] = '\0';
        fprintf(stderr, "\r%s: [%s] %3d%% %s/%s %s/s%s", p->label, bar, pct, a, b, r,
                final ? "\n" : "");
    } else {
        fprintf(stderr, "%s: %d%% %s of %s, %.1f s, %s/s%s\n", p->label, pct, a, b, secs, r,
                final ? ", done" : "");
    }
    fflush(stderr);
}

void progress_add(struct progress *p, uint64_t bytes)
{
    if (!p)
        return;
    uint64_t done = atomic_fetch_add(&p->done, bytes) + bytes;
    if (p->mode == PROGRESS_NONE)
        return;
    long long t = now_ns();
    long long due = atomic_load(&p->next_print);
    if (t < due)
        return;
    long long step =
        p->mode == PROGRESS_BAR ? BAR_INTERVAL_NS : PROGRESS_LINE_SECONDS * 1000000000LL;
    /* Only the thread that moves the deadline prints; the others carry on. */
    if (!atomic_compare_exchange_strong(&p->next_print, &due, t + step))
        return;
    pthread_mutex_lock(&p->lock);
    if (!p->finished)
        print_locked(p, done, t, false);
    pthread_mutex_unlock(&p->lock);
}

void progress_finish(struct progress *p, bool ok)
{
    if (!p)
        return;
    pthread_mutex_lock(&p->lock);
    if (!p->finished && p->mode != PROGRESS_NONE) {
        if (ok || p->mode == PROGRESS_BAR)
            print_locked(p, atomic_load(&p->done), now_ns(), true);
    }
    p->finished = true;
    pthread_mutex_unlock(&p->lock);
}

void progress_free(struct progress *p)
{
    if (!p)
        return;
    pthread_mutex_destroy(&p->lock);
    free(p);
}
