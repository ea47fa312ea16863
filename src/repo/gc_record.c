/* The record of a garbage collection, gc/<gc-id>.json (gc.h): its state, the store time of
 * its mark, the sessions its trash waits for, what it moved and freed. The format is in
 * virtbackup-repository(5). */
#include "gc.h"
#include "repo.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define RECORD_MAX (16u << 20)

static void record_key(const char *gc_id, char key[REPO_KEY_MAX])
{
    snprintf(key, REPO_KEY_MAX, "gc/%s.json", gc_id);
}

int repo_gc_record_put(struct repo *r, const char *gc_id, const struct repo_gc_record *rec,
                       struct vb_error *err)
{
    json_t *alive = json_array();
    for (size_t i = 0; alive && i < rec->n_alive; i++)
        json_array_append_new(alive, json_string(rec->alive[i]));
    json_t *o = alive ? json_pack("{s:s, s:I, s:o, s:I, s:I, s:I}", "state", rec->state,
                                  "mark_time", (json_int_t)rec->mark_time, "alive", alive, "moved",
                                  (json_int_t)rec->moved, "bytes", (json_int_t)rec->bytes, "freed",
                                  (json_int_t)rec->freed)
                      : NULL;
    char *text = o ? json_dumps(o, JSON_INDENT(2)) : NULL;
    json_decref(o);
    if (!text)
        return vb_error_set(err, "gc record %s: out of memory", gc_id);
    char key[REPO_KEY_MAX];
    record_key(gc_id, key);
    int rc = r->store->ops->put(r->store, key, text, strlen(text), err);
    free(text);
    return rc < 0 ? vb_error_prefix(err, "%s: gc record", r->path) : 0;
}

static int uint_field(json_t *o, const char *name, uint64_t *out)
{
    json_t *v = json_object_get(o, name);
    if (!json_is_integer(v) || json_integer_value(v) < 0)
        return -1;
    *out = (uint64_t)json_integer_value(v);
    return 0;
}

int repo_gc_record_get(struct repo *r, const char *gc_id, struct repo_gc_record *rec,
                       struct vb_error *err)
{
    memset(rec, 0, sizeof *rec);
    char key[REPO_KEY_MAX];
    record_key(gc_id, key);
    void *data = NULL;
    size_t len = 0;
    int rc = r->store->ops->get(r->store, key, 0, 0, &data, &len, err);
    if (rc != 0)
        return rc;
    json_t *o = len <= RECORD_MAX ? json_loadb(data, len, 0, NULL) : NULL;
    free(data);
    json_t *state = json_object_get(o, "state");
    json_t *mark = json_object_get(o, "mark_time");
    json_t *alive = json_object_get(o, "alive");
    rc = -1;
    if (!json_is_string(state) || !json_is_integer(mark) || !json_is_array(alive) ||
        uint_field(o, "moved", &rec->moved) < 0 || uint_field(o, "bytes", &rec->bytes) < 0 ||
        uint_field(o, "freed", &rec->freed) < 0)
        goto out;
    snprintf(rec->state, sizeof rec->state, "%s", json_string_value(state));
    rec->mark_time = json_integer_value(mark);
    rec->alive = calloc(json_array_size(alive) + 1, sizeof *rec->alive);
    if (!rec->alive)
        goto out;
    size_t i;
    json_t *v;
    json_array_foreach(alive, i, v)
    {
        if (!json_is_string(v) || !repo_session_id_valid(json_string_value(v)))
            goto out;
        snprintf(rec->alive[rec->n_alive++], REPO_SESSION_ID_MAX, "%s", json_string_value(v));
    }
    rc = 0;
out:
    json_decref(o);
    if (rc < 0) {
        repo_gc_record_free(rec);
        return vb_error_set(err, "%s/%s: not a gc record", r->path, key);
    }
    return 0;
}

void repo_gc_record_free(struct repo_gc_record *rec)
{
    free(rec->alive);
    memset(rec, 0, sizeof *rec);
}

struct id_walk {
    char (*ids)[REPO_SESSION_ID_MAX];
    size_t n, cap;
    char last[REPO_KEY_MAX];
};

static int collect_id(void *ctx, const char *key, const struct repo_stat *st, struct vb_error *err)
{
    struct id_walk *w = ctx;
    (void)st;
    snprintf(w->last, sizeof w->last, "%s", key);
    const char *name = key + strlen("gc/");
    size_t len = strlen(name);
    if (len != REPO_SESSION_ID_LEN + 5 || strcmp(name + REPO_SESSION_ID_LEN, ".json") != 0)
        return 0;
    char id[REPO_SESSION_ID_MAX];
    snprintf(id, sizeof id, "%.*s", REPO_SESSION_ID_LEN, name);
    if (!repo_session_id_valid(id))
        return 0;
    if (w->n == w->cap) {
        size_t cap = w->cap ? 2 * w->cap : 16;
        void *v = realloc(w->ids, cap * sizeof *w->ids);
        if (!v)
            return vb_error_errno(err, "listing gc records");
        w->ids = v;
        w->cap = cap;
    }
    memcpy(w->ids[w->n++], id, REPO_SESSION_ID_MAX);
    return 0;
}

int repo_gc_record_ids(struct repo *r, char (**ids)[REPO_SESSION_ID_MAX], size_t *n,
                       struct vb_error *err)
{
    struct id_walk w = {0};
    for (bool more = true, first = true; more; first = false) {
        char after[sizeof w.last];
        snprintf(after, sizeof after, "%s", w.last);
        if (r->store->ops->list(r->store, "gc/", first ? NULL : after, 0, collect_id, &w, &more,
                                err) < 0) {
            free(w.ids);
            return vb_error_prefix(err, "%s: listing gc records", r->path);
        }
    }
    *ids = w.ids;
    *n = w.n;
    return 0;
}
