/* virtrepo export REPO SNAPSHOT DIR [--vm NAME] [-z[N]]: a snapshot as the directory of a
 * stream-format full (virtrepo(1), EXPORT): per disk <target>.full.data with its .chksum,
 * vmconfig.virtnbdbackup.0.xml, <target>.virtnbdbackup.0.qcow.json, the boot files as
 * <name>.virtnbdbackup.0; no <vm>.cpt and no checkpoints/: no libvirt checkpoint belongs to
 * it, so it starts no chain. */
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "export.h"
#include "fileutil.h"
#include "log.h"
#include "meta.h"
#include "options.h"
#include "progress.h"
#include "repo_select.h"
#include "util.h"
#include "virtrepo.h"

/* The META date of the snapshot's files: its time, local, as Python's isoformat() writes a
 * time without fractions of a second (virtbackup-stream(5), METADATA). */
static int snapshot_date(const struct repo_manifest *m, char *buf, size_t len, struct vb_error *err)
{
    time_t t;
    struct tm tm;
    if (repo_time_parse(m->time, &t) < 0 || !localtime_r(&t, &tm))
        return vb_error_set(err, "snapshot %s: its time '%s' is not a time", m->id, m->time);
    strftime(buf, len, "%Y-%m-%dT%H:%M:%S", &tm);
    return 0;
}

static int write_named(const struct export_dir *x, const char *name, const char *text,
                       struct vb_error *err)
{
    char *path = export_dir_path(x, name);
    int rc = path ? vb_write_file_atomic(path, text, strlen(text), err)
                  : vb_error_set(err, "out of memory");
    free(path);
    return rc;
}

static int export_files(struct repo *r, const struct repo_manifest *m, const struct export_dir *x,
                        int compress, bool quiet, struct vb_error *err)
{
    char date[64], name[512];
    if (snapshot_date(m, date, sizeof date, err) < 0)
        return -1;
    for (size_t i = 0; i < m->n_disks; i++) {
        const struct repo_manifest_disk *d = &m->disks[i];
        struct export_disk_opts o = {.compress = compress, .date = date, .quiet = quiet};
        /* the target names files in DIR: a manifest's must not reach elsewhere */
        if (!d->target[0] || strchr(d->target, '/'))
            return vb_error_set(err, "snapshot %s: disk target '%s' is not a file name", m->id,
                                d->target);
        snprintf(name, sizeof name, "%s.full.data", d->target);
        char *path = export_dir_path(x, name);
        int rc =
            path ? export_disk_stream(r, d, path, &o, err) : vb_error_set(err, "out of memory");
        free(path);
        if (rc < 0)
            return -1;
        char data[32], file[32];
        vb_info("%s: %s of data, %s written", name,
                progress_format_bytes(o.bytes_data, data, sizeof data),
                progress_format_bytes(o.bytes_file, file, sizeof file));
        if (d->qcow_json) {
            snprintf(name, sizeof name, "%s.%s.qcow.json", d->target, EXPORT_IDENT);
            if (write_named(x, name, d->qcow_json, err) < 0)
                return -1;
        }
    }
    snprintf(name, sizeof name, "vmconfig.%s.xml", EXPORT_IDENT);
    if (write_named(x, name, m->domain_xml ? m->domain_xml : "", err) < 0)
        return -1;
    for (size_t i = 0; i < m->n_blobs; i++) {
        const struct repo_manifest_blob *b = &m->blobs[i];
        const char *base = vb_base_name(b->path);
        if (!base[0] || !strcmp(base, ".") || !strcmp(base, ".."))
            return vb_error_set(err, "snapshot %s: %s path '%s' has no file name", m->id,
                                repo_blob_kind_name(b->kind), b->path);
        snprintf(name, sizeof name, "%s.%s", base, EXPORT_IDENT);
        char *path = export_dir_path(x, name);
        int rc = path ? export_blob_file(r, b, path, err) : vb_error_set(err, "out of memory");
        free(path);
        if (rc < 0)
            return -1;
    }
    return 0;
}

int cmd_export(const struct virtrepo_global *g, int argc, char **argv)
{
    static const struct option opts[] = {
        {"vm", required_argument, NULL, 'm'},
        {"compress", optional_argument, NULL, 'z'},
        {0},
    };
    const char *vm = NULL;
    int compress = STREAM_META_COMPRESSED_FALSE;
    int c;
    while ((c = getopt_long(argc, argv, "z::", opts, NULL)) != -1) {
        switch (c) {
        case 'm':
            vm = optarg;
            break;
        case 'z': {
            bool bad = false;
            long level = vb_opt_optional_number(argc, argv, optarg, 2, &bad);
            if (bad || level < 0 || level > 12)
                return vb_opt_usage_error(g->prog, g->usage,
                                          "export: -z takes an lz4 level from 0 to 12");
            compress = (int)level;
            break;
        }
        default:
            return vb_opt_usage_error(g->prog, g->usage, "export: unknown option '%s'",
                                      argv[optind - 1]);
        }
    }
    if (optind != argc - 3)
        return vb_opt_usage_error(g->prog, g->usage, "export: REPO SNAPSHOT DIR are needed");
    const char *path = argv[optind], *snapshot = argv[optind + 1], *dir = argv[optind + 2];

    struct vb_error err = {0};
    struct repo_manifest m = {0};
    struct repo_selection sel = {.vm = vm,
                                 .snapshot = snapshot,
                                 .key_file = g->key_file,
                                 .key_passphrase = g->key_passphrase,
                                 .session = "export"};
    struct repo *r = repo_select_open(path, &sel, &m, &err);
    struct export_dir x = {0};
    int rc = r ? export_dir_begin(dir, &x, &err) : -1;
    if (rc == 0) {
        rc = export_files(r, &m, &x, compress, g->quiet, &err);
        if (rc == 0)
            rc = export_dir_commit(&x, &err);
        if (rc < 0)
            export_dir_abort(&x);
    }
    if (rc < 0) {
        vb_error_log("export: %s", err.msg);
    } else {
        vb_info("exported snapshot %s of %s (%s) to %s as a full backup", m.id, m.vm, m.time,
                x.final);
        vb_info("%s has no checkpoint: it starts no chain, an incremental backup into it is "
                "refused",
                x.final);
    }
    export_dir_free(&x);
    repo_manifest_free(&m);
    repo_close(r);
    return rc < 0 ? 1 : 0;
}
