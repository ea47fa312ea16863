/* The restore action: plan every disk, create its image, write the final content in one
 * pass through a private qemu-nbd, commit the image by renaming it, then the config. */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "chksum.h"
#include "config.h"
#include "debug_stall.h"
#include "host_copy.h"
#include "image.h"
#include "log.h"
#include "piece_plan.h"
#include "plan.h"
#include "progress.h"
#include "qemu_nbd.h"
#include "restore.h"
#include "source_tap.h"
#include "writer_nbd.h"

#define MAX_QCOW_JSON (1024 * 1024)
/* Uncompressed pieces, like compressed ones at most an LZ4 slice: the decoders read them in
 * chunks (writer_nbd.h), so this only bounds the plan's size and keeps both decoders busy. */
#define UNCOMPRESSED_PIECE (32u * 1024 * 1024)

volatile sig_atomic_t restore_stop;

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* <dev>.<ident>.qcow.json for the point restored; else the newest one of the disk. */
static char *load_qcow_json(struct bset *set, const char *dev, const char *ident)
{
    char name[512];
    snprintf(name, sizeof name, "%s.%s.qcow.json", dev, ident);
    if (!bset_has(set, name)) {
        const char *found = NULL;
        size_t l = strlen(dev);
        for (size_t i = 0; i < bset_count(set); i++) {
            const char *n = bset_name(set, i);
            size_t nl = strlen(n);
            if (strncmp(n, dev, l) == 0 && n[l] == '.' && nl > 10 &&
                strcmp(n + nl - 10, ".qcow.json") == 0)
                found = n; /* names are sorted; any will do for the image options */
        }
        if (!found) {
            vb_info("%s: no saved image options (%s), using qemu-img defaults", dev, name);
            return NULL;
        }
        vb_warn("%s: no %s, using the image options of %s", dev, name, found);
        snprintf(name, sizeof name, "%s", found);
    }
    char *data = NULL;
    size_t len;
    struct vb_error err = {0};
    if (bset_read(set, name, MAX_QCOW_JSON, &data, &len, &err) < 0) {
        vb_warn("%s: %s; using qemu-img defaults", name, err.msg);
        return NULL;
    }
    vb_debug("%s: image options from %s", dev, name);
    return data;
}

static void remove_partial(const struct restore_opts *o, const char *partial,
                           struct image_created *made)
{
    struct vb_error e = {0};
    vb_host_unlink(o->host, partial, &e);
    if (made->data_file)
        vb_host_unlink(o->host, made->data_file, &e);
}

/* A committed image's name is durable before we report it restored. */
void restore_commit_sync(const struct restore_opts *o, const char *target)
{
    struct vb_error e = {0};
    if (vb_host_sync(o->host, target, &e) < 0)
        vb_warn("%s: %s", target, e.msg);
}

/* Every file a restore uses is checked against its .chksum before the image is committed:
 * an uncompressed payload has no other checksum. The restore reads only the data that
 * survives in the final image; the sources of the plan checksummed each read on the way
 * (source_tap.h), so only what nobody read is read now. */
static int check_planned_chksums(struct bset *set, const struct bset_chain *dc,
                                 struct vb_error *err)
{
    size_t checked = 0;
    uint64_t reread_total = 0;
    for (size_t k = 0; k < dc->plan.n && !restore_stop; k++) {
        const char *name = dc->names[dc->plan.order[k]];
        uint32_t want = dc->chksums[k].want, have;
        uint64_t reread;
        if (!dc->chksums[k].present)
            continue;
        if (stream_source_tap_adler32(dc->applied[k]->source, &have, &reread, err) < 0)
            return -1;
        if (have != want)
            return bset_chksum_mismatch(set, name, have, want, err);
        checked++;
        reread_total += reread;
    }
    if (restore_stop)
        return vb_error_set(err, "interrupted");
    char buf[32];
    size_t none = dc->plan.n - checked;
    /* "0 of 1 match" would read as a mismatch where there was no .chksum to compare with */
    if (none)
        vb_info("%s: %zu of %zu files match their .chksum, %zu %s none (%s read again for it)",
                dc->dev, checked, dc->plan.n, none, none == 1 ? "has" : "have",
                progress_format_bytes(reread_total, buf, sizeof buf));
    else
        vb_info("%s: %zu of %zu files match their .chksum (%s read again for it)", dc->dev, checked,
                dc->plan.n, progress_format_bytes(reread_total, buf, sizeof buf));
    return 0;
}

static int restore_stream_disk(const struct restore_opts *o, struct bset *set,
                               struct bset_chain *dc, const char *target, struct restored_disk *rd,
                               struct summary_disk *sd, struct vb_error *err)
{
    if (bset_plan_index(set, dc, err) < 0)
        return -1;
    const struct chain_file *last = bset_chain_last(dc);
    char ident[256];
    bset_chain_ident(dc, ident, sizeof ident);
    const char *format = last->meta.disk_format[0] ? last->meta.disk_format : "qcow2";
    snprintf(sd->level, sizeof sd->level, "%s", chain_file_kind_name(last->kind));
    snprintf(sd->checkpoint, sizeof sd->checkpoint, "%s", last->meta.checkpoint_name);
    snprintf(sd->parent, sizeof sd->parent, "%s", last->meta.parent_checkpoint);
    sd->incremental = last->meta.incremental;
    for (size_t k = 0; k < dc->plan.n; k++)
        vb_info("%s: %zu/%zu: %s (%s, checkpoint %s)", dc->dev, k + 1, dc->plan.n,
                dc->names[dc->plan.order[k]],
                chain_file_kind_name(dc->files[dc->plan.order[k]].kind),
                dc->files[dc->plan.order[k]].meta.checkpoint_name);

    struct restore_work w;
    if (restore_work_build(dc->ci, UNCOMPRESSED_PIECE, &w, err) < 0)
        return -1;

    char partial[4096 + 16];
    snprintf(partial, sizeof partial, "%s.partial", target);
    int exists = vb_host_exists(o->host, partial, err);
    if (exists != 0) {
        restore_work_free(&w);
        return exists < 0 ? -1
                          : vb_error_set(err,
                                         "%s: exists (left by a failed restore?); remove it "
                                         "first",
                                         partial);
    }
    char *qjson = load_qcow_json(set, dc->dev, ident);
    struct image_spec spec = {.path = partial,
                              .format = format,
                              .size = dc->ci->virtual_size,
                              .preallocate = o->preallocate,
                              .qcow_json = qjson,
                              .data_dir = o->output,
                              .host = o->host};
    struct image_created made = {0};
    char sizebuf[32], databuf[32];
    vb_info("%s: creating %s (%s, %s), %s of data to write", dc->dev, target, format,
            progress_format_bytes(dc->ci->virtual_size, sizebuf, sizeof sizebuf),
            progress_format_bytes(w.bytes, databuf, sizeof databuf));
    int rc = image_create(&spec, &made, err);
    free(qjson);
    if (rc < 0) {
        restore_work_free(&w);
        return -1;
    }

    struct nbd_write_opts wo;
    nbd_write_opts_default(&wo);
    if (o->memory_mb > 0)
        wo.memory_budget = (uint64_t)o->memory_mb * 1024 * 1024;
    if (o->connections > 0)
        wo.connections = o->connections;
    if (o->decoders > 0)
        wo.workers = o->decoders;
    wo.stop = &restore_stop;
    wo.export_name = dc->dev;
    struct qemu_nbd_opts qo = {.image = partial,
                               .format = format,
                               .export_name = dc->dev,
                               .socket_path = o->socketfile,
                               .connections = wo.connections,
                               .compress = o->compress,
                               .discard = true,
                               .io_uring = true};
    double t0 = now_s();
    struct qemu_nbd *srv = qemu_nbd_start(o->host, &qo, err);
    struct nbd_write_stats st = {0};
    struct progress *prog = NULL;
    if (!srv) {
        rc = -1;
    } else {
        /* tests: the image's qemu-nbd serves, no client of ours is connected yet (debug
         * builds only) */
        VB_DEBUG_STALL(o->debug_stall, &restore_stop);
        wo.target = *qemu_nbd_target(srv);
        prog = progress_new(dc->dev, w.bytes, progress_mode_for_stderr(o->noprogress));
        wo.progress = prog;
        rc = restore_write_nbd(dc->ci, &w, &wo, &st, err);
        if (rc < 0) /* name the image: "No space left on device" alone says not where */
            vb_error_prefix(err, "%s", target);
        progress_finish(prog, rc == 0);
        struct vb_error serr = {0};
        if (qemu_nbd_stop(srv, &serr) < 0 && rc == 0) {
            *err = serr;
            rc = -1;
        }
    }
    progress_free(prog);
    if (rc == 0 && check_planned_chksums(set, dc, err) < 0)
        rc = -1;
    double secs = now_s() - t0;
    if (rc == 0 && vb_host_rename_noreplace(o->host, partial, target, err) < 0)
        rc = -1;
    if (rc == 0) {
        restore_commit_sync(o, target);
        char a[32], b[32];
        vb_info("%s: restored %s in %.2f s (%s written, %s of zeroes skipped, %s/s)", dc->dev,
                target, secs, progress_format_bytes(st.bytes_written, a, sizeof a),
                progress_format_bytes(st.bytes_zero, b, sizeof b),
                progress_format_bytes(secs > 0 ? (uint64_t)((double)w.bytes / secs) : 0, sizebuf,
                                      sizeof sizebuf));
        rd->ok = true;
        rd->path = strdup(target);
        rd->format = strdup(format);
        rd->data_file = made.data_file;
        made.data_file = NULL;
    } else {
        /* nothing that looks complete stays behind */
        remove_partial(o, partial, &made);
    }
    sd->extents = w.n;
    sd->bytes_read = w.stored;
    sd->bytes_written = st.bytes_written;
    sd->seconds = secs;
    image_created_free(&made);
    restore_work_free(&w);
    return rc;
}

static int restore_raw_disk(const struct restore_opts *o, struct bset *set, struct bset_chain *dc,
                            const char *target, struct restored_disk *rd, struct summary_disk *sd,
                            struct vb_error *err)
{
    char partial[4096 + 16];
    snprintf(partial, sizeof partial, "%s.partial", target);
    double t0 = now_s();
    vb_info("%s: copying raw image %s to %s", dc->dev, dc->names[0], target);
    uint32_t have = 0;
    int rc = restore_copy_to_host(o, set, dc->names[0], partial, 0600, &have, err);
    bool checked = false;
    if (rc == 0 && bset_match_chksum(set, dc->names[0], have, &checked, err) < 0)
        rc = -1;
    if (rc == 0 && restore_stop)
        rc = vb_error_set(err, "interrupted");
    if (rc == 0 && vb_host_rename_noreplace(o->host, partial, target, err) < 0)
        rc = -1;
    if (rc < 0)
        vb_host_unlink(o->host, partial, &(struct vb_error){0});
    else if (checked)
        vb_info("%s: %s matches its .chksum", dc->dev, dc->names[0]);
    sd->seconds = now_s() - t0;
    snprintf(sd->level, sizeof sd->level, "copy");
    if (rc == 0) {
        restore_commit_sync(o, target);
        rd->ok = true;
        rd->path = strdup(target);
        rd->format = strdup("raw");
    }
    return rc;
}

/* <out>/<basename of the disk's source path>, or <out>/<dev> without one. */
void restore_target_path(const struct restore_opts *o, const struct domxml_disk *d, const char *dev,
                         char *buf, size_t len)
{
    const char *base = dev;
    char *copy = d && d->source ? strdup(d->source) : NULL;
    if (copy && *copy)
        base = basename(copy);
    snprintf(buf, len, "%s/%s", o->output, base);
    free(copy);
}

void restored_free(struct restored_disk *rd, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        free(rd[i].path);
        free(rd[i].format);
        free(rd[i].data_file);
    }
    free(rd);
}

int restore_run(const struct restore_opts *o, struct bset *set, struct summary *sum)
{
    struct vb_error err = {0};
    struct bset_chain *chains = NULL;
    size_t n = 0;
    struct restore_config *cfg = NULL;
    struct restored_disk *rd = NULL;
    int failed = 0;

    if (o->sequence) {
        if (bset_plan_sequence(set, o->sequence, &chains, &err) == 0)
            n = 1;
    } else {
        bset_plan_chains(set, o->disk, o->until, &chains, &n, &err);
    }
    if (!chains) {
        vb_error_log("%s", err.msg);
        struct summary_disk *sd = summary_add_disk(sum, o->disk ? o->disk : "");
        if (sd) {
            sd->status = SUMMARY_ERROR;
            snprintf(sd->error, sizeof sd->error, "%s", err.msg);
        }
        return -1;
    }
    if (vb_host_mkdir_p(o->host, o->output, &err) < 0) {
        vb_error_log("%s", err.msg);
        bset_chains_free(chains, n);
        return -1;
    }
    if (!o->sequence) {
        char ident[256];
        bset_chain_ident(&chains[0], ident, sizeof ident);
        if (config_load(set, ident, &cfg, &err) < 0) {
            vb_error_log("%s", err.msg);
            failed++;
        }
    }
    rd = calloc(n, sizeof *rd);
    for (size_t i = 0; rd && i < n && !restore_stop; i++) {
        struct bset_chain *dc = &chains[i];
        snprintf(rd[i].dev, sizeof rd[i].dev, "%s", dc->dev);
        struct summary_disk *sd = summary_add_disk(sum, dc->dev);
        struct summary_disk dummy = {0};
        if (!sd)
            sd = &dummy;
        const struct domxml_disk *d = o->sequence ? NULL : config_disk(cfg, dc->dev);
        if (cfg && !d && !o->sequence)
            vb_warn("%s: disk is not in the domain config %s; restoring it as %s/%s", dc->dev,
                    cfg->name, o->output, dc->dev);
        char target[4096];
        restore_target_path(o, d, dc->dev, target, sizeof target);
        snprintf(sd->file, sizeof sd->file, "%s", target);
        if (d && (strcmp(d->device, "cdrom") == 0 || strcmp(d->device, "floppy") == 0)) {
            vb_info("%s: %s, skipped", dc->dev, d->device);
            sd->status = SUMMARY_SKIPPED;
            continue;
        }
        bool raw = dc->raw_image || (d && d->format && strcmp(d->format, "raw") == 0);
        if (raw && !o->raw) {
            vb_info("%s: raw disk, skipped (use --raw to copy it)", dc->dev);
            sd->status = SUMMARY_SKIPPED;
            continue;
        }
        int rc, exists = vb_host_exists(o->host, target, &err);
        if (exists < 0)
            rc = -1;
        else if (exists)
            rc = vb_error_set(&err, "%s: target exists already, refusing to overwrite it", target);
        else if (dc->raw_image)
            rc = restore_raw_disk(o, set, dc, target, &rd[i], sd, &err);
        else
            rc = restore_stream_disk(o, set, dc, target, &rd[i], sd, &err);
        if (rc < 0) {
            vb_error_log("%s: %s", dc->dev, err.msg);
            sd->status = SUMMARY_ERROR;
            snprintf(sd->error, sizeof sd->error, "%s", err.msg);
            failed++;
        }
    }
    if (restore_stop) {
        if (!failed) { /* else the disk's error said so already */
            const char *sig = sigabbrev_np((int)restore_stop);
            vb_error_log("interrupted by SIG%s", sig ? sig : "?");
        }
        failed++;
    }
    if (!o->sequence && !restore_stop && rd && failed) {
        vb_warn("domain config not written%s: not every disk was restored",
                o->define ? " nor defined" : "");
    } else if (!o->sequence && !restore_stop && rd) {
        if (config_finish(o, set, cfg, rd, n, &err) < 0) {
            vb_error_log("%s", err.msg);
            failed++;
        }
    }
    if (!rd) {
        vb_error_log("out of memory");
        failed++;
    }
    restored_free(rd, rd ? n : 0);
    config_free(cfg);
    bset_chains_free(chains, n);
    return failed ? -1 : 0;
}
