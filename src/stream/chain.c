#include "chain.h"

#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "checkpoint_number.h"
#include "util.h"

const char *chain_file_kind_name(enum chain_file_kind kind)
{
    switch (kind) {
    case CHAIN_FILE_FULL:
        return "full";
    case CHAIN_FILE_COPY:
        return "copy";
    case CHAIN_FILE_INC:
        return "inc";
    case CHAIN_FILE_NEW_BASE:
        return "new base";
    case CHAIN_FILE_DIFF:
        return "diff";
    }
    return "?";
}

static bool ends_with(const char *s, const char *suffix)
{
    size_t a = strlen(s), b = strlen(suffix);
    return a >= b && strcmp(s + a - b, suffix) == 0;
}

/* "<dev>.diff.<digits>.data" → the digits */
static bool parse_diff_name(const char *name, uint64_t *when)
{
    if (!ends_with(name, ".data"))
        return false;
    size_t len = strlen(name) - 5;
    size_t i = len;
    while (i > 0 && name[i - 1] >= '0' && name[i - 1] <= '9')
        i--;
    if (i == len || i < 6 || strncmp(name + i - 6, ".diff.", 6) != 0)
        return false;
    *when = strtoull(name + i, NULL, 10);
    return true;
}

int chain_classify(struct chain_file *f, struct vb_error *err)
{
    const char *name = vb_base_name(f->path);
    f->checkpoint_number = stream_checkpoint_number(f->meta.checkpoint_name);
    f->diff_time = 0;
    if (parse_diff_name(name, &f->diff_time)) {
        f->kind = CHAIN_FILE_DIFF;
        if (!f->meta.incremental)
            return vb_error_set(err, "%s: named as a diff but its metadata says incremental=false",
                                f->path);
        return 0;
    }
    if (ends_with(name, ".copy.data"))
        f->kind = CHAIN_FILE_COPY;
    else if (ends_with(name, ".full.data"))
        f->kind = CHAIN_FILE_FULL;
    else if (f->meta.incremental)
        f->kind = CHAIN_FILE_INC;
    else if (strstr(name, ".inc."))
        f->kind = CHAIN_FILE_NEW_BASE;
    else
        f->kind = CHAIN_FILE_FULL; /* unknown name (e.g. renamed by hand): metadata decides */
    /* "<dev>.inc.<checkpoint>.data" names its checkpoint: a file renamed (files swapped, a
     * file of another chain put in place) must not take another file's place */
    const char *inc = strstr(name, ".inc.");
    if (inc && ends_with(name, ".data") && strlen(inc + 5) > 5) {
        const char *cp = inc + 5;
        size_t len = strlen(cp) - 5;
        if (strlen(f->meta.checkpoint_name) != len || strncmp(cp, f->meta.checkpoint_name, len))
            return vb_error_set(err, "%s: named for checkpoint %.*s but its metadata says %s",
                                f->path, (int)len, cp, f->meta.checkpoint_name);
    }
    if ((f->kind == CHAIN_FILE_COPY || f->kind == CHAIN_FILE_FULL) && f->meta.incremental)
        return vb_error_set(err, "%s: named as a %s backup but its metadata says incremental=true",
                            f->path, chain_file_kind_name(f->kind));
    if (f->checkpoint_number < 0)
        return vb_error_set(err, "%s: checkpoint name \"%s\" is not " STREAM_CHECKPOINT_PREFIX ".N",
                            f->path, f->meta.checkpoint_name);
    return 0;
}

static bool is_base(const struct chain_file *f)
{
    return f->kind == CHAIN_FILE_FULL || f->kind == CHAIN_FILE_COPY ||
           f->kind == CHAIN_FILE_NEW_BASE;
}

static const struct chain_file *sort_files; /* qsort has no context argument in C17 */

static int by_checkpoint(const void *a, const void *b)
{
    const struct chain_file *x = &sort_files[*(const size_t *)a];
    const struct chain_file *y = &sort_files[*(const size_t *)b];
    return (x->checkpoint_number > y->checkpoint_number) -
           (x->checkpoint_number < y->checkpoint_number);
}

static const char *parent_of(const struct chain_file *f)
{
    return f->meta.parent_is_false ? "" : f->meta.parent_checkpoint;
}

/* "virtnbdbackup.0, virtnbdbackup.1, ..." for messages */
static void list_names(const struct chain_file *files, const size_t *idx, size_t n, char *out,
                       size_t outlen)
{
    size_t used = 0;
    out[0] = '\0';
    for (size_t i = 0; i < n && used + 1 < outlen; i++)
        used += (size_t)snprintf(out + used, outlen - used, "%s%s", i ? ", " : "",
                                 files[idx[i]].meta.checkpoint_name);
    if (n == 0)
        snprintf(out, outlen, "(none)");
}

/* META "date" is Python's naive local isoformat(): seconds on a local clock, or -1. */
static int64_t meta_seconds(const char *date)
{
    struct tm tm = {0};
    char tail;
    if (sscanf(date, "%4d-%2d-%2dT%2d:%2d:%2d%c", &tm.tm_year, &tm.tm_mon, &tm.tm_mday, &tm.tm_hour,
               &tm.tm_min, &tm.tm_sec, &tail) < 6)
        return -1;
    tm.tm_year -= 1900;
    tm.tm_mon -= 1;
    return (int64_t)timegm(&tm);
}

/* Names of checkpoints repeat in every chain (virtnbdbackup.0, .1, ...), so a file of another
 * chain of the same disk can fit the links. Its date gives it away when it is older than its
 * parent: an incremental is always taken after the backup it continues. The dates are local
 * wall-clock times without a zone, so an hour of slack absorbs a daylight saving change. */
#define DATE_SLACK_SECONDS 3600

static bool dated_before_parent(const struct chain_file *f, const struct chain_file *parent,
                                struct vb_error *err)
{
    int64_t t = meta_seconds(f->meta.date), tp = meta_seconds(parent->meta.date);
    if (t < 0 || tp < 0 || t >= tp - DATE_SLACK_SECONDS)
        return false;
    vb_error_set(err,
                 "%s (checkpoint %s) is dated %s, before %s (%s) that it continues: it belongs "
                 "to another chain",
                 f->path, f->meta.checkpoint_name, f->meta.date, parent->path, parent->meta.date);
    return true;
}

int chain_plan_build(struct chain_file *files, size_t nfiles, const char *until,
                     struct chain_plan *plan, struct vb_error *err)
{
    memset(plan, 0, sizeof *plan);
    size_t *links = calloc(nfiles ? nfiles : 1, sizeof *links);
    size_t *order = calloc(nfiles ? nfiles : 1, sizeof *order);
    size_t nlinks = 0;
    char names[2048];
    if (!links || !order) {
        free(links);
        free(order);
        return vb_error_set(err, "out of memory");
    }
    for (size_t i = 0; i < nfiles; i++) {
        if (strcmp(files[i].meta.disk_name, files[0].meta.disk_name) != 0) {
            vb_error_set(err, "%s belongs to disk %s, %s to disk %s: not one chain", files[0].path,
                         files[0].meta.disk_name, files[i].path, files[i].meta.disk_name);
            goto fail;
        }
        if (files[i].kind != CHAIN_FILE_DIFF)
            links[nlinks++] = i;
    }
    sort_files = files;
    qsort(links, nlinks, sizeof *links, by_checkpoint);

    /* check every link of the ordered non-diff files */
    for (size_t k = 0; k < nlinks; k++) {
        const struct chain_file *f = &files[links[k]];
        if (k > 0 && files[links[k - 1]].checkpoint_number == f->checkpoint_number) {
            vb_error_set(err, "%s and %s both hold checkpoint %s", files[links[k - 1]].path,
                         f->path, f->meta.checkpoint_name);
            goto fail;
        }
        if (is_base(f))
            continue;
        const char *parent = parent_of(f);
        if (k > 0 && strcmp(files[links[k - 1]].meta.checkpoint_name, parent) == 0) {
            if (dated_before_parent(f, &files[links[k - 1]], err))
                goto fail;
            continue;
        }
        bool present = false;
        for (size_t j = 0; j < nlinks; j++)
            present |= strcmp(files[links[j]].meta.checkpoint_name, parent) == 0;
        if (!present)
            vb_error_set(err,
                         "gap in the chain: %s (checkpoint %s) needs its parent checkpoint %s, "
                         "which no file holds",
                         f->path, f->meta.checkpoint_name, parent[0] ? parent : "(none)");
        else
            vb_error_set(err, "%s (checkpoint %s) has parent %s, but the file before it holds %s",
                         f->path, f->meta.checkpoint_name, parent,
                         k > 0 ? files[links[k - 1]].meta.checkpoint_name : "nothing");
        goto fail;
    }
    if (nlinks == 0) {
        vb_error_set(err, "no full backup: only differential files%s%s", nfiles ? ", e.g. " : "",
                     nfiles ? files[0].path : "");
        goto fail;
    }

    size_t end = nlinks - 1;
    if (until) {
        size_t k;
        for (k = 0; k < nlinks; k++)
            if (strcmp(files[links[k]].meta.checkpoint_name, until) == 0)
                break;
        if (k == nlinks) {
            list_names(files, links, nlinks, names, sizeof names);
            vb_error_set(err, "no backup of checkpoint %s in the chain; the chain holds: %s", until,
                         names);
            goto fail;
        }
        end = k;
    }
    size_t start = end;
    while (!is_base(&files[links[start]]) && start > 0)
        start--;

    size_t n = 0;
    for (size_t k = start; k <= end; k++)
        order[n++] = links[k];

    if (!until) {
        /* the newest diff taken after the last checkpoint of the chain */
        const char *last = files[links[end]].meta.checkpoint_name;
        long best = -1;
        for (size_t i = 0; i < nfiles; i++) {
            const struct chain_file *d = &files[i];
            if (d->kind != CHAIN_FILE_DIFF || strcmp(parent_of(d), last) != 0)
                continue;
            if (best < 0 || d->diff_time > files[best].diff_time ||
                (d->diff_time == files[best].diff_time &&
                 strcmp(d->meta.date, files[best].meta.date) > 0))
                best = (long)i;
        }
        if (best >= 0)
            order[n++] = (size_t)best;
    }
    plan->order = order;
    plan->n = n;
    free(links);
    return 0;
fail:
    free(links);
    free(order);
    return -1;
}

void chain_plan_free(struct chain_plan *plan)
{
    free(plan->order);
    memset(plan, 0, sizeof *plan);
}

static long cpt_index(char *const *cpt, size_t ncpt, const char *name)
{
    for (size_t i = 0; i < ncpt; i++)
        if (strcmp(cpt[i], name) == 0)
            return (long)i;
    return -1;
}

/* True if the planned files from position k on are incrementals of checkpoints numbered
 * above every one the list names: what a backup leaves when it is interrupted after
 * committing its data and before writing the list. */
static bool interrupted_tail(const struct chain_file *files, const struct chain_plan *plan,
                             size_t k, char *const *cpt, size_t ncpt)
{
    long listed = -1;
    for (size_t i = 0; i < ncpt; i++) {
        long num = stream_checkpoint_number(cpt[i]);
        if (num > listed)
            listed = num;
    }
    for (; k < plan->n; k++) {
        const struct chain_file *f = &files[plan->order[k]];
        if (f->kind != CHAIN_FILE_INC ||
            stream_checkpoint_number(f->meta.checkpoint_name) <= listed)
            return false;
    }
    return listed >= 0;
}

int chain_check_cpt(const struct chain_file *files, struct chain_plan *plan, char *const *cpt,
                    size_t ncpt, const char *cpt_name, bool latest, struct vb_error *err)
{
    long prev = -1;
    const struct chain_file *last = NULL;
    for (size_t k = 0; k < plan->n; k++) {
        const struct chain_file *f = &files[plan->order[k]];
        if (f->kind == CHAIN_FILE_DIFF || f->kind == CHAIN_FILE_COPY)
            continue;
        long at = cpt_index(cpt, ncpt, f->meta.checkpoint_name);
        if (at < 0 && latest && last && interrupted_tail(files, plan, k, cpt, ncpt)) {
            vb_error_set(err,
                         "%s holds checkpoint %s, which %s does not list: a backup interrupted "
                         "before its bookkeeping (the next virtbackup run sets it aside); "
                         "restoring the chain up to %s",
                         f->path, f->meta.checkpoint_name, cpt_name, last->meta.checkpoint_name);
            plan->n = k;
            return 1;
        }
        if (at < 0)
            return vb_error_set(err, "%s holds checkpoint %s, which %s does not list", f->path,
                                f->meta.checkpoint_name, cpt_name);
        if (prev >= 0 && at != prev + 1)
            return vb_error_set(err,
                                "%s (checkpoint %s) follows checkpoint %s in the chain, but %s "
                                "lists %s between them or in another order",
                                f->path, f->meta.checkpoint_name, cpt[prev], cpt_name,
                                at > prev + 1 ? cpt[prev + 1] : "them");
        prev = at;
        last = f;
    }
    if (latest && last && prev != (long)ncpt - 1) {
        vb_error_set(err,
                     "%s lists checkpoint %s after %s, but no file holds it: restoring the "
                     "chain up to %s (is a later backup missing?)",
                     cpt_name, cpt[prev + 1], last->meta.checkpoint_name, last->path);
        return 1;
    }
    return 0;
}
