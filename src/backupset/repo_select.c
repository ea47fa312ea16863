#include "repo_select.h"

#include <ctype.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "keyfile.h"
#include "log.h"
#include "repo_session.h"
#include "timefmt.h"
#include "vector.h"

/* The digits of s[0..n) as a number; -1 if any is not a digit. */
static int digits(const char *s, size_t n)
{
    int v = 0;
    for (size_t i = 0; i < n; i++) {
        if (!isdigit((unsigned char)s[i]))
            return -1;
        v = v * 10 + (s[i] - '0');
    }
    return v;
}

int repo_until_parse(const char *s, time_t *t)
{
    if (repo_time_parse(s, t) == 0)
        return 0;
    /* YYYY-MM-DD HH:MM[:SS], local time */
    size_t len = strlen(s);
    if ((len != 16 && len != 19) || s[4] != '-' || s[7] != '-' || (s[10] != ' ' && s[10] != 'T') ||
        s[13] != ':' || (len == 19 && s[16] != ':'))
        return -1;
    int year = digits(s, 4), mon = digits(s + 5, 2), day = digits(s + 8, 2);
    int hour = digits(s + 11, 2), min = digits(s + 14, 2), sec = len == 19 ? digits(s + 17, 2) : 0;
    if (year < 1970 || mon < 1 || mon > 12 || day < 1 || day > 31 || hour < 0 || hour > 23 ||
        min < 0 || min > 59 || sec < 0 || sec > 59)
        return -1;
    struct tm tm = {.tm_year = year - 1900,
                    .tm_mon = mon - 1,
                    .tm_mday = day,
                    .tm_hour = hour,
                    .tm_min = min,
                    .tm_sec = sec,
                    .tm_isdst = -1};
    time_t v = mktime(&tm);
    /* mktime moves a day that does not exist (February 30) into the next month */
    if (v == (time_t)-1 || tm.tm_mday != day || tm.tm_mon != mon - 1)
        return -1;
    *t = v;
    return 0;
}

int repo_snapshot_id_time(const char *id, time_t *t)
{
    if (!repo_snapshot_id_valid(id))
        return -1;
    /* YYYYmmddTHHMMSSZ-xxxxxxxx */
    char iso[32];
    snprintf(iso, sizeof iso, "%.4s-%.2s-%.2sT%.2s:%.2s:%.2sZ", id, id + 4, id + 6, id + 9, id + 11,
             id + 13);
    return repo_time_parse(iso, t);
}

struct snap {
    char uuid[REPO_UUID_LEN + 1];
    char id[32];
};

struct snaps {
    struct snap *v;
    size_t n, cap;
};

static int collect(void *ctx, const char *uuid, const char *id, struct vb_error *err)
{
    struct snaps *s = ctx;
    if (vb_vector_grow(&s->v, &s->cap, s->n + 1, sizeof *s->v) < 0)
        return vb_error_set(err, "out of memory");
    snprintf(s->v[s->n].uuid, sizeof s->v[s->n].uuid, "%s", uuid);
    snprintf(s->v[s->n].id, sizeof s->v[s->n].id, "%s", id);
    s->n++;
    return 0;
}

struct vm {
    char uuid[REPO_UUID_LEN + 1];
    char *name; /* of its newest snapshot */
};

/* Appends to buf (at most len) without overflowing; a list that does not fit ends in "...". */
static void append(char *buf, size_t len, const char *sep, const char *item)
{
    size_t used = strlen(buf);
    if (used + strlen(sep) + strlen(item) + 4 >= len) {
        if (used + 4 < len && (used < 3 || strcmp(buf + used - 3, "...") != 0))
            snprintf(buf + used, len - used, "%s...", used ? sep : "");
        return;
    }
    snprintf(buf + used, len - used, "%s%s", used ? sep : "", item);
}

/* The VMs of the repository, in the order of their uuids' first appearance; the name of each
 * from its newest manifest. */
static int list_vms(struct repo *r, const struct snaps *s, struct vm **out, size_t *nout,
                    struct vb_error *err)
{
    struct vm *vms = NULL;
    size_t n = 0, cap = 0;
    for (size_t i = 0; i < s->n; i++) {
        size_t k = 0;
        while (k < n && strcmp(vms[k].uuid, s->v[i].uuid) != 0)
            k++;
        if (k < n)
            continue;
        if (vb_vector_grow(&vms, &cap, n + 1, sizeof *vms) < 0) {
            vb_error_set(err, "out of memory");
            goto fail;
        }
        vms[n] = (struct vm){.name = NULL};
        snprintf(vms[n].uuid, sizeof vms[n].uuid, "%s", s->v[i].uuid);
        n++;
    }
    for (size_t k = 0; k < n; k++) {
        const char *newest = NULL;
        for (size_t i = 0; i < s->n; i++)
            if (strcmp(s->v[i].uuid, vms[k].uuid) == 0)
                newest = s->v[i].id; /* listed in the order of their ids */
        struct repo_manifest m = {0};
        if (repo_get_manifest(r, vms[k].uuid, newest, &m, err) < 0) {
            repo_manifest_free(&m);
            goto fail;
        }
        vms[k].name = strdup(m.vm ? m.vm : "?");
        repo_manifest_free(&m);
        if (!vms[k].name) {
            vb_error_set(err, "out of memory");
            goto fail;
        }
    }
    *out = vms;
    *nout = n;
    return 0;
fail:
    for (size_t k = 0; k < n; k++)
        free(vms[k].name);
    free(vms);
    return -1;
}

static void vms_text(const struct vm *vms, size_t n, char *buf, size_t len)
{
    buf[0] = '\0';
    for (size_t k = 0; k < n; k++) {
        char item[300];
        snprintf(item, sizeof item, "%s (%s)", vms[k].name, vms[k].uuid);
        append(buf, len, ", ", item);
    }
}

/* The VM's uuid: the only one, or the one --vm names (by name or uuid). */
static int choose_vm(struct repo *r, const struct snaps *s, const char *want,
                     char uuid[REPO_UUID_LEN + 1], char **name, struct vb_error *err)
{
    struct vm *vms = NULL;
    size_t n = 0;
    if (list_vms(r, s, &vms, &n, err) < 0)
        return -1;
    char list[500];
    vms_text(vms, n, list, sizeof list);
    int rc = 0, found = -1, matches = 0;
    for (size_t k = 0; want && k < n; k++)
        if (strcmp(vms[k].uuid, want) == 0 || strcmp(vms[k].name, want) == 0) {
            found = (int)k;
            matches++;
        }
    if (!want && n > 1)
        rc = vb_error_set(err, "%s holds snapshots of %zu VMs: %s; choose one with --vm", r->path,
                          n, list);
    else if (want && matches == 0)
        rc = vb_error_set(err, "--vm %s: %s holds no snapshot of such a VM; it holds %s", want,
                          r->path, list);
    else if (want && matches > 1)
        rc = vb_error_set(err, "--vm %s: %d VMs of that name in %s (%s); give the uuid", want,
                          matches, r->path, list);
    else {
        if (!want)
            found = 0;
        snprintf(uuid, REPO_UUID_LEN + 1, "%s", vms[found].uuid);
        *name = vms[found].name;
        vms[found].name = NULL;
    }
    for (size_t k = 0; k < n; k++)
        free(vms[k].name);
    free(vms);
    return rc;
}

/* The VM's snapshots as "ID (local time)" for messages, newest last. */
static void snaps_text(const struct snaps *s, const char *uuid, char *buf, size_t len)
{
    buf[0] = '\0';
    for (size_t i = 0; i < s->n; i++) {
        if (strcmp(s->v[i].uuid, uuid) != 0)
            continue;
        time_t t;
        char item[96], when[40] = "?";
        struct tm tm;
        if (repo_snapshot_id_time(s->v[i].id, &t) == 0 && localtime_r(&t, &tm))
            strftime(when, sizeof when, "%Y-%m-%d %H:%M:%S", &tm);
        snprintf(item, sizeof item, "%s (%s)", s->v[i].id, when);
        append(buf, len, ", ", item);
    }
}

/* Without --vm, --snapshot ID names its VM (virtrestore(1), REPOSITORY INPUT): the uuid of
 * the one VM holding that id into uuid. None holding it is an error when there are several
 * VMs (with one, the VM's own error lists its snapshots: uuid is left empty); two VMs holding
 * one id (ids carry 4 random bytes, so only by accident) is an error listing them. */
static int vm_of_snapshot(struct repo *r, const struct snaps *s, const char *id,
                          char uuid[REPO_UUID_LEN + 1], struct vb_error *err)
{
    char list[500] = "";
    size_t matches = 0;
    for (size_t i = 0; i < s->n; i++) {
        if (strcmp(s->v[i].id, id) != 0)
            continue;
        struct repo_manifest m = {0};
        int rc = repo_get_manifest(r, s->v[i].uuid, id, &m, err);
        if (rc == 0) {
            char item[300];
            snprintf(item, sizeof item, "%s (%s)", m.vm ? m.vm : "?", s->v[i].uuid);
            append(list, sizeof list, ", ", item);
        }
        repo_manifest_free(&m);
        if (rc < 0)
            return -1;
        if (matches++ == 0)
            snprintf(uuid, REPO_UUID_LEN + 1, "%s", s->v[i].uuid);
    }
    if (matches > 1)
        return vb_error_set(err,
                            "--snapshot %s: %zu VMs in %s have a snapshot of that id: %s; "
                            "choose one with --vm",
                            id, matches, r->path, list);
    bool several = false;
    for (size_t i = 1; i < s->n && !several; i++)
        several = strcmp(s->v[i].uuid, s->v[0].uuid) != 0;
    if (matches == 0 && several)
        return vb_error_set(err,
                            "--snapshot %s: no snapshot of that id in %s (of any of its VMs: "
                            "virtrepo snapshots lists them)",
                            id, r->path);
    return 0;
}

int repo_select_snapshot(struct repo *r, const struct repo_selection *sel, struct repo_manifest *m,
                         struct vb_error *err)
{
    struct snaps s = {0};
    char uuid[REPO_UUID_LEN + 1] = "", *vmname = NULL, list[500];
    const char *pick = NULL;
    int rc = repo_list_snapshots(r, NULL, collect, &s, err);
    if (rc == 0 && s.n == 0)
        rc = vb_error_set(err, "%s: the repository holds no snapshot", r->path);
    if (rc == 0 && !sel->vm && sel->snapshot && strcmp(sel->snapshot, "latest") != 0)
        rc = vm_of_snapshot(r, &s, sel->snapshot, uuid, err);
    if (rc == 0)
        rc = choose_vm(r, &s, uuid[0] ? uuid : sel->vm, uuid, &vmname, err);
    if (rc < 0)
        goto out;
    snaps_text(&s, uuid, list, sizeof list);
    const char *snapshot = sel->snapshot ? sel->snapshot : sel->until ? NULL : "latest";
    time_t until;
    if (snapshot && strcmp(snapshot, "latest") == 0) {
        for (size_t i = 0; i < s.n; i++)
            if (strcmp(s.v[i].uuid, uuid) == 0)
                pick = s.v[i].id;
    } else if (snapshot) {
        for (size_t i = 0; i < s.n; i++)
            if (strcmp(s.v[i].uuid, uuid) == 0 && strcmp(s.v[i].id, snapshot) == 0)
                pick = s.v[i].id;
        if (!pick)
            rc = vb_error_set(err, "--snapshot %s: no such snapshot of %s in %s; it has %s",
                              snapshot, vmname, r->path, list);
    } else if (repo_until_parse(sel->until, &until) == 0) {
        for (size_t i = 0; i < s.n; i++) {
            time_t t;
            if (strcmp(s.v[i].uuid, uuid) == 0 && repo_snapshot_id_time(s.v[i].id, &t) == 0 &&
                t <= until)
                pick = s.v[i].id;
        }
        if (!pick)
            rc = vb_error_set(err, "--until %s: no snapshot of %s in %s at or before it; it has %s",
                              sel->until, vmname, r->path, list);
    } else {
        /* a checkpoint name: the snapshot whose manifest records it (the newest if several) */
        char cps[240] = "";
        for (size_t i = s.n; rc == 0 && !pick && i-- > 0;) {
            if (strcmp(s.v[i].uuid, uuid) != 0)
                continue;
            struct repo_manifest c = {0};
            rc = repo_get_manifest(r, uuid, s.v[i].id, &c, err);
            if (rc == 0 && c.has_checkpoint && c.checkpoint.name) {
                if (strcmp(c.checkpoint.name, sel->until) == 0)
                    pick = s.v[i].id;
                append(cps, sizeof cps, ", ", c.checkpoint.name);
            }
            repo_manifest_free(&c);
        }
        if (rc == 0 && !pick)
            rc = vb_error_set(err,
                              "--until %s: not a time (YYYY-MM-DD HH:MM[:SS], local, or ISO 8601 "
                              "with an offset) nor a checkpoint recorded by a snapshot of %s in "
                              "%s (checkpoints: %s; snapshots: %s)",
                              sel->until, vmname, r->path, cps[0] ? cps : "none", list);
    }
    if (rc == 0 && pick) {
        rc = repo_get_manifest(r, uuid, pick, m, err);
        if (rc == 0)
            vb_info("%s: snapshot %s of %s (%s, %s)", r->path, m->id, m->vm, m->time,
                    repo_level_name(m->level));
    }
out:
    free(vmname);
    free(s.v);
    return rc;
}

struct repo *repo_select_open(const char *path, const struct repo_selection *sel,
                              struct repo_manifest *m, struct vb_error *err)
{
    struct repo *r = repo_open_key_file(path, sel->key_file, sel->key_passphrase, err);
    int rc = r && sel->session && repo_need_key(r, err) == 0
                 ? repo_session_begin_reader(r, path, sel->session, err)
                 : 0;
    if (rc == 1) {
        vb_warn("%s", err->msg);
        *err = (struct vb_error){0};
    }
    if (r && (repo_need_key(r, err) < 0 || rc < 0 || repo_select_snapshot(r, sel, m, err) < 0)) {
        repo_close(r);
        r = NULL;
    }
    return r;
}
