/* The restore action on a repository snapshot (virtrestore(1), REPOSITORY INPUT): the
 * snapshot chosen, each disk's image created as for a backup set (qcow2 with the saved
 * qemu-img options), its chunks written in one pass through a private qemu-nbd
 * (repo_write.h), the image committed by renaming it; then the domain config and boot files
 * through the backup-set layer's view of the snapshot (store.h), as config.c does for a
 * directory. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "config.h"
#include "debug_stall.h"
#include "image.h"
#include "log.h"
#include "progress.h"
#include "qemu_nbd.h"
#include "repo_select.h"
#include "repo_write.h"
#include "restore.h"

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int write_disk(const struct restore_opts *o, struct repo *r, const struct repo_index *idx,
                      const char *dev, const char *partial, const char *format, uint64_t bytes,
                      struct nbd_write_stats *st, struct vb_error *err)
{
    struct nbd_write_opts wo;
    repo_write_opts_default(&wo);
    if (o->memory_mb > 0)
        wo.memory_budget = (uint64_t)o->memory_mb * 1024 * 1024;
    if (o->connections > 0)
        wo.connections = o->connections;
    if (o->decoders > 0)
        wo.workers = o->decoders;
    wo.stop = &restore_stop;
    wo.export_name = dev;
    struct qemu_nbd_opts qo = {.image = partial,
                               .format = format,
                               .export_name = dev,
                               .socket_path = o->socketfile,
                               .connections = wo.connections,
                               .compress = o->compress,
                               .discard = true,
                               .io_uring = true};
    struct qemu_nbd *srv = qemu_nbd_start(o->host, &qo, err);
    if (!srv)
        return -1;
    /* tests: the image's qemu-nbd serves, no client of ours is connected yet (debug builds) */
    VB_DEBUG_STALL(o->debug_stall, &restore_stop);
    wo.target = *qemu_nbd_target(srv);
    struct progress *prog = progress_new(dev, bytes, progress_mode_for_stderr(o->noprogress));
    wo.progress = prog;
    int rc = repo_write_nbd(r, idx, &wo, st, err);
    progress_finish(prog, rc == 0);
    progress_free(prog);
    struct vb_error serr = {0};
    if (qemu_nbd_stop(srv, &serr) < 0 && rc == 0) {
        *err = serr;
        rc = -1;
    }
    return rc;
}

static int restore_disk(const struct restore_opts *o, struct repo *r, const struct repo_manifest *m,
                        const struct repo_manifest_disk *d, const char *target,
                        struct restored_disk *rd, struct summary_disk *sd, struct vb_error *err)
{
    struct repo_index idx = {0};
    if (repo_get_index(r, &d->index, &idx, err) < 0)
        return vb_error_prefix(err, "%s: snapshot %s", r->path, m->id);
    if (idx.virtual_size != d->virtual_size) {
        repo_index_free(&idx);
        return vb_error_set(
            err, "%s: snapshot %s: the index holds %" PRIu64 " bytes, the manifest says %" PRIu64,
            r->path, m->id, idx.virtual_size, d->virtual_size);
    }
    const char *format = d->format ? d->format : "qcow2";
    uint64_t bytes = repo_index_stored_bytes(&idx);
    size_t stored = 0;
    for (size_t i = 0; i < idx.n; i++)
        stored += !repo_digest_is_zero(&idx.digests[i]);
    char partial[4096 + 16];
    snprintf(partial, sizeof partial, "%s.partial", target);
    int rc = vb_host_exists(o->host, partial, err);
    if (rc != 0) {
        repo_index_free(&idx);
        return rc < 0 ? -1
                      : vb_error_set(err, "%s: exists (left by a failed restore?); remove it first",
                                     partial);
    }
    struct image_spec spec = {.path = partial,
                              .format = format,
                              .size = d->virtual_size,
                              .preallocate = o->preallocate,
                              .qcow_json = d->qcow_json,
                              .data_dir = o->output,
                              .host = o->host};
    struct image_created made = {0};
    char a[32], b[32], c[32];
    if (!d->qcow_json && strncmp(format, "qcow", 4) == 0)
        vb_info("%s: no saved image options, using qemu-img defaults", d->target);
    vb_info("%s: creating %s (%s, %s), %zu of %zu chunks to read, %s of data", d->target, target,
            format, progress_format_bytes(d->virtual_size, a, sizeof a), stored, idx.n,
            progress_format_bytes(bytes, b, sizeof b));
    double t0 = now_s();
    struct nbd_write_stats st = {0};
    rc = image_create(&spec, &made, err);
    if (rc == 0) {
        rc = write_disk(o, r, &idx, d->target, partial, format, bytes, &st, err);
        if (rc < 0) /* name the image: "No space left on device" alone says not where */
            vb_error_prefix(err, "%s", target);
        if (rc == 0 && restore_stop)
            rc = vb_error_set(err, "interrupted");
        if (rc == 0 && vb_host_rename_noreplace(o->host, partial, target, err) < 0)
            rc = -1;
        if (rc < 0) { /* nothing that looks complete stays behind */
            vb_host_unlink(o->host, partial, &(struct vb_error){0});
            if (made.data_file)
                vb_host_unlink(o->host, made.data_file, &(struct vb_error){0});
        }
    }
    double secs = now_s() - t0;
    if (rc == 0) {
        restore_commit_sync(o, target);
        vb_info(
            "%s: restored %s in %.2f s (%s written, %s of zeroes skipped, %s/s)", d->target, target,
            secs, progress_format_bytes(st.bytes_written, a, sizeof a),
            progress_format_bytes(st.bytes_zero, b, sizeof b),
            progress_format_bytes(secs > 0 ? (uint64_t)((double)bytes / secs) : 0, c, sizeof c));
        rd->ok = true;
        rd->path = strdup(target);
        rd->format = strdup(format);
        rd->data_file = made.data_file;
        made.data_file = NULL;
    }
    sd->extents = stored;
    sd->bytes_read = bytes;
    sd->bytes_written = st.bytes_written;
    sd->seconds = secs;
    image_created_free(&made);
    repo_index_free(&idx);
    return rc;
}

static const struct repo_manifest_disk *find_disk(const struct repo_manifest *m, const char *dev)
{
    for (size_t i = 0; i < m->n_disks; i++)
        if (strcmp(m->disks[i].target, dev) == 0)
            return &m->disks[i];
    return NULL;
}

static void fail_summary(struct summary *sum, const char *disk, const char *msg)
{
    struct summary_disk *sd = summary_add_disk(sum, disk ? disk : "");
    if (sd) {
        sd->status = SUMMARY_ERROR;
        snprintf(sd->error, sizeof sd->error, "%s", msg);
    }
}

int restore_repo_run(const struct restore_opts *o, struct summary *sum)
{
    struct vb_error err = {0};
    struct repo_manifest m = {0};
    struct repo_selection sel = {.vm = o->vm,
                                 .snapshot = o->snapshot,
                                 .until = o->until,
                                 .key_file = o->key_file,
                                 .key_passphrase = o->key_passphrase,
                                 .session = "restore"};
    struct repo *r = repo_select_open(o->input, &sel, &m, &err);
    if (r && o->disk && !find_disk(&m, o->disk)) {
        char list[512] = "";
        for (size_t i = 0; i < m.n_disks; i++)
            snprintf(list + strlen(list), sizeof list - strlen(list), "%s%s", i ? ", " : "",
                     m.disks[i].target);
        vb_error_set(&err, "-d %s: snapshot %s has no such disk; it has %s", o->disk, m.id, list);
        repo_close(r);
        r = NULL;
    }
    if (r && vb_host_mkdir_p(o->host, o->output, &err) < 0) {
        repo_close(r);
        r = NULL;
    }
    if (!r) {
        vb_error_log("%s", err.msg);
        fail_summary(sum, o->disk, err.msg);
        repo_manifest_free(&m);
        return -1;
    }
    int failed = 0;
    struct restore_config *cfg = NULL;
    struct bset *set = bset_open_repo_snapshot(r, &m, &err);
    if (!set || config_load(set, m.id, &cfg, &err) < 0) {
        vb_error_log("%s", err.msg);
        failed++;
    }
    struct restored_disk *rd = calloc(m.n_disks ? m.n_disks : 1, sizeof *rd);
    size_t nrd = 0;
    for (size_t i = 0; rd && i < m.n_disks && !restore_stop; i++) {
        const struct repo_manifest_disk *d = &m.disks[i];
        if (o->disk && strcmp(o->disk, d->target) != 0)
            continue;
        struct restored_disk *out = &rd[nrd++];
        snprintf(out->dev, sizeof out->dev, "%s", d->target);
        struct summary_disk *sd = summary_add_disk(sum, d->target);
        struct summary_disk dummy = {0};
        if (!sd)
            sd = &dummy;
        snprintf(sd->level, sizeof sd->level, "%s", repo_level_name(m.level));
        if (m.has_checkpoint && m.checkpoint.name)
            snprintf(sd->checkpoint, sizeof sd->checkpoint, "%s", m.checkpoint.name);
        snprintf(sd->parent, sizeof sd->parent, "%s", m.parent);
        const struct domxml_disk *dx = config_disk(cfg, d->target);
        if (cfg && !dx)
            vb_warn("%s: disk is not in the domain config %s; restoring it as %s/%s", d->target,
                    cfg->name, o->output, d->target);
        char target[4096];
        restore_target_path(o, dx, d->target, target, sizeof target);
        snprintf(sd->file, sizeof sd->file, "%s", target);
        int rc, exists = vb_host_exists(o->host, target, &err);
        if (exists < 0)
            rc = -1;
        else if (exists)
            rc = vb_error_set(&err, "%s: target exists already, refusing to overwrite it", target);
        else
            rc = restore_disk(o, r, &m, d, target, out, sd, &err);
        if (rc < 0) {
            vb_error_log("%s: %s", d->target, err.msg);
            sd->status = SUMMARY_ERROR;
            snprintf(sd->error, sizeof sd->error, "%s", err.msg);
            failed++;
        }
    }
    if (restore_stop) {
        if (!failed) {
            const char *sig = sigabbrev_np((int)restore_stop);
            vb_error_log("interrupted by SIG%s", sig ? sig : "?");
        }
        failed++;
    }
    if (!rd) {
        vb_error_log("out of memory");
        failed++;
    } else if (!restore_stop && failed) {
        vb_warn("domain config not written%s: not every disk was restored",
                o->define ? " nor defined" : "");
    } else if (!restore_stop && config_finish(o, set, cfg, rd, nrd, &err) < 0) {
        vb_error_log("%s", err.msg);
        failed++;
    }
    restored_free(rd, rd ? nrd : 0);
    config_free(cfg);
    bset_free(set);
    repo_manifest_free(&m);
    repo_close(r);
    return failed ? -1 : 0;
}
