/* The snapshot of a run into a repository (virtbackup-repository(5)): once every disk's chunks
 * and index are in, the boot files (loader, nvram, kernel, initrd) as blobs, then the
 * manifest, put last: it is the commit, so a run that fails or is killed before it leaves
 * only chunks no snapshot refers to. */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "debug_stall.h"
#include "log.h"
#include "manifest.h"
#include "run_internal.h"
#include "snapshot_writer.h"
#include "timefmt.h"
#include "util.h"

/* The whole of a local file, malloc'ed. */
static int read_local(const char *path, void **data, size_t *len, struct vb_error *err)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return vb_error_errno(err, "%s", path);
    struct stat st;
    if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
        int rc = vb_error_errno(err, "%s: not a regular file", path);
        close(fd);
        return rc;
    }
    size_t n = (size_t)st.st_size;
    uint8_t *buf = malloc(n ? n : 1);
    if (!buf) {
        close(fd);
        return vb_error_set(err, "%s: out of memory", path);
    }
    size_t got = 0;
    while (got < n) {
        ssize_t r = read(fd, buf + got, n - got);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0) {
            int rc = r < 0 ? vb_error_errno(err, "%s: read", path)
                           : vb_error_set(err, "%s: shrank while being read", path);
            free(buf);
            close(fd);
            return rc;
        }
        got += (size_t)r;
    }
    close(fd);
    *data = buf;
    *len = n;
    return 0;
}

/* A boot file of the domain's host: read here, or fetched over SFTP into a private directory
 * (removed before returning) and read from there. */
static int read_boot_file(struct vb_host *host, const char *path, void **data, size_t *len,
                          struct vb_error *err)
{
    if (!vb_host_is_remote(host))
        return read_local(path, data, len, err);
    char dir[4200], tmp[8600];
    snprintf(dir, sizeof dir, "%s/virtbackup-boot.%ld.XXXXXX", vb_host_tmpdir(host),
             (long)getpid());
    if (!mkdtemp(dir))
        return vb_error_errno(err, "cannot create a directory for boot files in %s",
                              vb_host_tmpdir(host));
    snprintf(tmp, sizeof tmp, "%s/%s", dir, vb_base_name(path));
    int rc = vb_host_fetch(host, path, tmp, err);
    if (rc < 0)
        vb_error_prefix(err, "boot file %s on %s", path, host->name);
    else
        rc = read_local(tmp, data, len, err);
    unlink(tmp);
    if (rmdir(dir) < 0)
        vb_warn("cannot remove %s: %s", dir, strerror(errno));
    return rc;
}

static int save_blobs(struct backup_run *r, struct repo_manifest *m, struct vb_error *err)
{
    const char *path[] = {r->info.loader, r->info.nvram, r->info.kernel, r->info.initrd};
    const enum repo_blob_kind kind[] = {REPO_BLOB_LOADER, REPO_BLOB_NVRAM, REPO_BLOB_KERNEL,
                                        REPO_BLOB_INITRD};
    for (size_t i = 0; i < 4; i++) {
        if (!path[i])
            continue;
        int exists = vb_host_exists(&r->host, path[i], err);
        if (exists < 0)
            return -1;
        if (!exists) {
            vb_warn("boot file %s is not readable, not saved", path[i]);
            continue;
        }
        void *data;
        size_t len;
        if (read_boot_file(&r->host, path[i], &data, &len, err) < 0)
            return -1;
        struct repo_manifest_blob *b = &m->blobs[m->n_blobs];
        int rc = repo_put_blob(r->repo, data, len, &b->index, err);
        free(data);
        if (rc < 0)
            return vb_error_prefix(err, "boot file %s", path[i]);
        b->kind = kind[i];
        b->path = (char *)path[i];
        b->size = len;
        m->n_blobs++;
    }
    return 0;
}

int repo_snapshot_save(struct backup_run *r, struct vb_error *err)
{
    struct repo_manifest m = {0};
    struct repo_manifest_blob blobs[4];
    struct repo_manifest_disk *disks = calloc(r->njobs, sizeof *disks);
    char *xml = virDomainGetXMLDesc(r->dom, 0);
    int rc = -1;
    if (!disks || !xml) {
        if (!xml)
            vb_virt_error(err, "cannot read the domain XML");
        else
            vb_error_set(err, "out of memory");
        goto out;
    }
    repo_snapshot_id_new(r->start_time, m.id);
    m.vm = r->info.name;
    snprintf(m.uuid, sizeof m.uuid, "%s", r->info.uuid);
    repo_time_format(r->start_time, false, m.time);
    /* -l full's checkpoint is recorded for the next incremental (virtbackup(1), REPOSITORY
     * OUTPUT) */
    if (repo_checkpoint_describe(r, &m, err) < 0)
        goto out;
    /* an offline inc creates none: its base's stays the one the next inc starts at */
    if (!m.has_checkpoint && r->base && r->offline) {
        m.has_checkpoint = true;
        m.checkpoint.name = r->base->checkpoint.name;
        m.checkpoint.creation_time = r->base->checkpoint.creation_time;
        if (!(m.checkpoint.xml = strdup(r->base->checkpoint.xml))) {
            vb_error_set(err, "out of memory");
            goto out;
        }
    }
    /* an inc names its base; a run that read every disk in full is a full (virtbackup(1),
     * REPOSITORY OUTPUT) */
    m.level = r->base                                   ? REPO_LEVEL_INC
              : r->o->level == LEVEL_COPY || r->offline ? REPO_LEVEL_COPY
                                                        : REPO_LEVEL_FULL;
    if (r->base)
        snprintf(m.parent, sizeof m.parent, "%s", r->base->id);
    /* --full-every's clock, so that it does not need the chain's older snapshots (a prune
     * may remove them: each snapshot is complete) */
    if (m.level == REPO_LEVEL_FULL)
        snprintf(m.full_time, sizeof m.full_time, "%s", m.time);
    else if (m.level == REPO_LEVEL_INC && r->base_full_time >= 0)
        repo_time_format(r->base_full_time, false, m.full_time);
    m.domain_xml = xml;
    m.disks = disks;
    m.blobs = blobs;
    for (size_t i = 0; i < r->njobs; i++) {
        const struct disk_job *j = &r->jobs[i];
        struct repo_manifest_disk *d = &disks[i];
        d->target = (char *)j->disk->target;
        d->virtual_size = j->meta.virtual_size;
        d->chunk_size = repo_chunk_size(r->repo);
        d->index = j->index;
        d->format = (char *)(j->disk->format ? j->disk->format : "raw");
        d->bytes_read = j->bytes_read;
        d->bytes_new = j->bytes_new;
        d->bytes_stored = j->bytes_stored;
        if (image_info_wanted(j->disk)) {
            const char *json;
            size_t len;
            if (image_info_get(r->images, i, &r->host, &json, &len, err) < 0)
                goto out;
            d->qcow_json = (char *)json;
        }
        m.n_disks++;
    }
    if (save_blobs(r, &m, err) < 0)
        goto out;
    /* tests: every chunk, index and blob is in, the manifest is not (debug builds only) */
    VB_DEBUG_STALL_AT(r->o->debug_stall, "commit", &backup_interrupted);
    rc = repo_snapshot_commit(r->repo, &m, err);
    if (rc == 0) {
        vb_info("snapshot %s of %s committed to repository %s", m.id, m.vm, r->o->output);
        summary_set_snapshot(r->summary, m.id);
    }
out:
    free(m.checkpoint.xml);
    free(disks);
    free(xml);
    return rc;
}
