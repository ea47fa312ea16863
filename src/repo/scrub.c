/* Scrub records: the ranges of verify --part, scrub/<N>/<K> put and read, and the coverage
 * of a snapshot (scrub.h, virtbackup-repository(5) SCRUB RECORDS). */
#include "scrub.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "jsonfield.h"
#include "timefmt.h"
#include "vector.h"

#define SCRUB_FORMAT  "virtbackup-scrub"
#define SCRUB_MAX     (64u << 20)
#define SCRUB_KEY_MAX 32

int repo_scrub_part_parse(const char *s, unsigned *k, unsigned *n, struct vb_error *err)
{
    unsigned long kk, nn;
    char *end;
    const char *p = s;
    if (*p < '0' || *p > '9')
        goto bad;
    kk = strtoul(p, &end, 10);
    if (*end != '/' || end[1] < '0' || end[1] > '9')
        goto bad;
    nn = strtoul(end + 1, &end, 10);
    if (*end || kk < 1 || nn < 1 || kk > nn || nn > REPO_SCRUB_MAX_PARTS)
        goto bad;
    *k = (unsigned)kk;
    *n = (unsigned)nn;
    return 0;
bad:
    return vb_error_set(err, "\"%s\" is not a part K/N (1 <= K <= N <= %d)", s,
                        REPO_SCRUB_MAX_PARTS);
}

void repo_scrub_range(unsigned k, unsigned n, unsigned *lo, unsigned *hi)
{
    *lo = (k - 1) * 256 / n;
    *hi = k * 256 / n;
}

bool repo_scrub_in_range(const repo_digest *d, unsigned k, unsigned n)
{
    unsigned lo, hi;
    repo_scrub_range(k, n, &lo, &hi);
    return d->b[0] >= lo && d->b[0] < hi;
}

static void scrub_key(unsigned k, unsigned n, char key[SCRUB_KEY_MAX])
{
    snprintf(key, SCRUB_KEY_MAX, "scrub/%u/%u", n, k);
}

char *repo_scrub_to_json(const struct repo_scrub_record *rec, struct vb_error *err)
{
    char when[REPO_TIME_MAX];
    repo_time_format(rec->time, true, when);
    json_t *ids = json_array();
    for (size_t i = 0; ids && i < rec->nsnapshots; i++)
        json_array_append_new(ids, json_string(rec->snapshots[i]));
    json_t *o = json_pack("{s:s, s:i, s:i, s:i, s:s, s:I, s:I, s:I, s:o}", "format", SCRUB_FORMAT,
                          "version", 1, "part", (int)rec->k, "of", (int)rec->n, "time", when,
                          "chunks", (json_int_t)rec->chunks, "bytes", (json_int_t)rec->bytes, "bad",
                          (json_int_t)rec->bad, "snapshots", ids);
    char *text = o ? json_dumps(o, JSON_COMPACT) : NULL;
    json_decref(o);
    if (!text)
        vb_error_set(err, "scrub record: out of memory");
    return text;
}

static int by_id(const void *a, const void *b)
{
    return strcmp(a, b);
}

int repo_scrub_parse(const char *text, size_t len, struct repo_scrub_record *rec,
                     struct vb_error *err)
{
    memset(rec, 0, sizeof *rec);
    json_error_t jerr;
    json_t *o = json_loadb(text, len, 0, &jerr);
    if (!o || !json_is_object(o)) {
        json_decref(o);
        return vb_error_set(err, "scrub record: not a JSON object");
    }
    const struct repo_jf at = {"scrub record", ""};
    uint64_t k = 0, n = 0;
    const char *when = NULL;
    json_t *ids = NULL;
    int version, rc = -1;
    if (repo_jf_format(&at, o, SCRUB_FORMAT, 1, &version, err) < 0 ||
        repo_jf_uint(&at, o, "part", REPO_SCRUB_MAX_PARTS, &k, err) < 0 ||
        repo_jf_uint(&at, o, "of", REPO_SCRUB_MAX_PARTS, &n, err) < 0 ||
        repo_jf_str(&at, o, "time", false, false, &when, err) < 0 ||
        repo_jf_uint(&at, o, "chunks", UINT64_MAX, &rec->chunks, err) < 0 ||
        repo_jf_uint(&at, o, "bytes", UINT64_MAX, &rec->bytes, err) < 0 ||
        repo_jf_uint(&at, o, "bad", UINT64_MAX, &rec->bad, err) < 0 ||
        !(ids = repo_jf_get(&at, o, "snapshots", false, err)))
        goto out;
    if (k < 1 || k > n) {
        repo_jf_error(&at, "part", err, "%llu of %llu", (unsigned long long)k,
                      (unsigned long long)n);
        goto out;
    }
    rec->k = (unsigned)k;
    rec->n = (unsigned)n;
    if (repo_time_parse(when, &rec->time) < 0) {
        repo_jf_error(&at, "time", err, "\"%s\" is not a time", when);
        goto out;
    }
    if (!json_is_array(ids)) {
        repo_jf_error(&at, "snapshots", err, "not an array");
        goto out;
    }
    size_t count = json_array_size(ids);
    rec->snapshots = calloc(count ? count : 1, sizeof *rec->snapshots);
    if (!rec->snapshots) {
        vb_error_set(err, "scrub record: out of memory");
        goto out;
    }
    for (size_t i = 0; i < count; i++) {
        const char *id = json_string_value(json_array_get(ids, i));
        if (!id || strlen(id) >= sizeof rec->snapshots[0]) {
            repo_jf_error(&at, "snapshots", err, "item %zu is not a snapshot id", i);
            goto out;
        }
        strcpy(rec->snapshots[rec->nsnapshots++], id);
    }
    if (rec->nsnapshots > 1)
        qsort(rec->snapshots, rec->nsnapshots, sizeof rec->snapshots[0], by_id);
    rc = 0;
out:
    json_decref(o);
    if (rc < 0)
        repo_scrub_record_free(rec);
    return rc;
}

void repo_scrub_record_free(struct repo_scrub_record *rec)
{
    free(rec->snapshots);
    memset(rec, 0, sizeof *rec);
}

int repo_scrub_put(struct repo *r, const struct repo_scrub_record *rec, struct vb_error *err)
{
    char key[SCRUB_KEY_MAX];
    scrub_key(rec->k, rec->n, key);
    char *text = repo_scrub_to_json(rec, err);
    if (!text)
        return -1;
    int rc = r->store->ops->put(r->store, key, text, strlen(text), err);
    free(text);
    if (rc < 0)
        return vb_error_prefix(err, "%s/%s", r->path, key);
    return 0;
}

struct scrub_walk {
    struct repo *r;
    struct repo_scrub_records *out;
    char last[1100];
};

static int load_one(void *ctx, const char *key, const struct repo_stat *st, struct vb_error *err)
{
    uint64_t size = st->size;
    struct scrub_walk *w = ctx;
    snprintf(w->last, sizeof w->last, "%s", key);
    unsigned k, n;
    int used = 0;
    if (size > SCRUB_MAX || sscanf(key, "scrub/%u/%u%n", &n, &k, &used) != 2 || key[used] != '\0')
        return 0; /* not a record's name */
    void *text = NULL;
    size_t len = 0;
    struct vb_error e = {0};
    if (w->r->store->ops->get(w->r->store, key, 0, 0, &text, &len, &e) != 0)
        return 0; /* gone meanwhile, or unreadable: no record */
    struct repo_scrub_record rec;
    int rc = repo_scrub_parse(text, len, &rec, &e);
    free(text);
    if (rc < 0 || rec.k != k || rec.n != n) {
        if (rc == 0)
            repo_scrub_record_free(&rec);
        return 0; /* not the record its name says */
    }
    if (vb_vector_push(w->out, rec) < 0) {
        repo_scrub_record_free(&rec);
        return vb_error_set(err, "out of memory");
    }
    return 0;
}

int repo_scrub_load(struct repo *r, struct repo_scrub_records *out, struct vb_error *err)
{
    memset(out, 0, sizeof *out);
    struct scrub_walk *w = calloc(1, sizeof *w);
    char *after = calloc(1, sizeof w->last);
    if (!w || !after) {
        free(w);
        free(after);
        return vb_error_set(err, "out of memory");
    }
    w->r = r;
    w->out = out;
    int rc = 0;
    for (bool more = true, first = true; more && rc == 0; first = false) {
        rc = r->store->ops->list(r->store, "scrub/", first ? NULL : after, 0, load_one, w, &more,
                                 err);
        memcpy(after, w->last, sizeof w->last);
    }
    free(w);
    free(after);
    if (rc < 0) {
        repo_scrub_records_free(out);
        return vb_error_prefix(err, "%s: listing scrub/", r->path);
    }
    return 0;
}

void repo_scrub_records_free(struct repo_scrub_records *recs)
{
    for (size_t i = 0; i < recs->n; i++)
        repo_scrub_record_free(&recs->v[i]);
    vb_vector_free(recs);
}

static bool saw(const struct repo_scrub_record *rec, const char *id)
{
    return rec->nsnapshots &&
           bsearch(id, rec->snapshots, rec->nsnapshots, sizeof rec->snapshots[0], by_id) != NULL;
}

int repo_scrub_coverage(const struct repo_scrub_records *recs, const char *id, time_t *when)
{
    bool any = false;
    time_t best = 0;
    for (unsigned n = 1; n <= REPO_SCRUB_MAX_PARTS; n++) {
        /* the record of each part of this n that saw the snapshot (one per key) */
        time_t oldest = 0;
        unsigned found = 0;
        for (size_t i = 0; i < recs->n; i++) {
            const struct repo_scrub_record *rec = &recs->v[i];
            if (rec->n != n || !saw(rec, id))
                continue;
            if (found == 0 || rec->time < oldest)
                oldest = rec->time;
            found++;
        }
        if (found == n && (!any || oldest > best)) {
            best = oldest;
            any = true;
        }
    }
    if (any)
        *when = best;
    return any ? 0 : 1;
}
