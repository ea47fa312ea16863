/* repo-raw: raw images into and out of a repository through the snapshot writer and reader,
 * for repo_virtrepo.sh (there is no backup into a repository yet).
 *   repo-raw import [--domain-xml FILE] [--qcow-json DISK=FILE] [--checkpoint NAME]
 *                   REPO VMNAME UUID DISK=RAWFILE...   one snapshot, level copy; prints its id
 *     --domain-xml: the manifest's domain XML (default: a minimal <domain> of name and uuid);
 *     --qcow-json: that disk is recorded as qcow2 with this qemu-img info JSON (default: raw,
 *     none); --checkpoint: the checkpoint the snapshot records (level full then).
 *   repo-raw export REPO SNAPSHOT DISK OUT.raw          writes that disk of that snapshot
 * REPO_RAW_SLOW_MS=N (import): sleep N ms after each chunk, so that a test can kill it midway. */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "keys.h"
#include "manifest.h"
#include "snapshot_reader.h"
#include "snapshot_writer.h"
#include "timefmt.h"
#include "util.h"

static int die(const char *what, const struct vb_error *err)
{
    fprintf(stderr, "repo-raw: %s: %s\n", what, err->msg);
    return 1;
}

static int import_disk(struct repo *r, const char *target, const char *path, long slow_ms,
                       const char *qcow_json, struct repo_manifest_disk *d, struct vb_error *err)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    struct stat st;
    if (fd < 0 || fstat(fd, &st) < 0) {
        if (fd >= 0)
            close(fd);
        return vb_error_errno(err, "%s", path);
    }
    struct repo_disk_writer *w = repo_disk_writer_new(r, (uint64_t)st.st_size, 2, err);
    uint32_t cs = w ? repo_disk_writer_chunk_size(w) : 0;
    void *buf = w ? malloc(cs) : NULL;
    int rc = w && buf ? 0 : -1;
    if (w && !buf)
        vb_error_set(err, "out of memory");
    for (uint64_t off = 0; rc == 0 && off < (uint64_t)st.st_size; off += cs) {
        size_t len = (uint64_t)st.st_size - off < cs ? (size_t)((uint64_t)st.st_size - off) : cs;
        ssize_t got = pread(fd, buf, len, (off_t)off);
        if (got != (ssize_t)len)
            rc = got < 0 ? vb_error_errno(err, "%s", path)
                         : vb_error_set(err, "%s: short read at %" PRIu64, path, off);
        else
            rc = repo_disk_writer_put(w, off, buf, len, len, err);
        if (rc == 0 && slow_ms > 0)
            nanosleep(
                &(struct timespec){.tv_sec = slow_ms / 1000, .tv_nsec = (slow_ms % 1000) * 1000000},
                NULL);
    }
    struct repo_disk_stats stats;
    if (rc == 0)
        rc = repo_disk_writer_finish(w, &d->index, &stats, err);
    repo_disk_writer_free(w);
    free(buf);
    close(fd);
    if (rc < 0)
        return vb_error_prefix(err, "disk %s (%s)", target, path);
    d->target = strdup(target);
    d->format = strdup(qcow_json ? "qcow2" : "raw");
    if (qcow_json && !(d->qcow_json = strdup(qcow_json)))
        return vb_error_set(err, "out of memory");
    d->virtual_size = (uint64_t)st.st_size;
    d->chunk_size = cs;
    d->bytes_read = stats.bytes_read;
    d->bytes_new = stats.bytes_new;
    d->bytes_stored = stats.bytes_stored;
    fprintf(stderr,
            "repo-raw: %s: %" PRIu64 " chunks, %" PRIu64 " zero, %" PRIu64 " new; read %" PRIu64
            ", new %" PRIu64 ", stored %" PRIu64 "\n",
            target, stats.chunks, stats.chunks_zero, stats.chunks_new, stats.bytes_read,
            stats.bytes_new, stats.bytes_stored);
    return d->target && d->format ? 0 : vb_error_set(err, "out of memory");
}

static char *slurp(const char *path)
{
    FILE *f = fopen(path, "rb");
    char *text = NULL;
    size_t cap = 0;
    if (!f)
        return NULL;
    ssize_t n = getdelim(&text, &cap, '\0', f); /* the whole (text) file */
    fclose(f);
    if (n < 0) {
        free(text);
        return NULL;
    }
    return text;
}

static int import(int argc, char **argv)
{
    struct vb_error err = {0};
    char *domain_xml = NULL, *qcow_json = NULL;
    const char *qcow_disk = NULL, *checkpoint = NULL;
    while (argc >= 2 && strncmp(argv[0], "--", 2) == 0) {
        if (strcmp(argv[0], "--domain-xml") == 0 && !domain_xml) {
            if (!(domain_xml = slurp(argv[1])))
                return fprintf(stderr, "repo-raw: %s: %s\n", argv[1], strerror(errno)), 1;
        } else if (strcmp(argv[0], "--qcow-json") == 0 && !qcow_json && strchr(argv[1], '=')) {
            qcow_disk = argv[1];
            *strchr(argv[1], '=') = '\0';
            if (!(qcow_json = slurp(argv[1] + strlen(argv[1]) + 1)))
                return fprintf(stderr, "repo-raw: %s: %s\n", argv[1], strerror(errno)), 1;
        } else if (strcmp(argv[0], "--checkpoint") == 0) {
            checkpoint = argv[1];
        } else {
            return fprintf(stderr, "repo-raw: import: bad option %s\n", argv[0]), 2;
        }
        argc -= 2;
        argv += 2;
    }
    if (argc < 4)
        return fprintf(stderr, "usage: repo-raw import [OPTIONS] REPO VMNAME UUID DISK=RAW...\n"),
               2;
    const char *slow = getenv("REPO_RAW_SLOW_MS");
    long slow_ms = slow ? atol(slow) : 0;
    struct repo *r = repo_open(argv[0], NULL, &err);
    if (!r)
        return die(argv[0], &err);
    time_t now = time(NULL);
    struct repo_manifest m = {.level = REPO_LEVEL_COPY};
    repo_snapshot_id_new(now, m.id);
    repo_time_format(now, false, m.time);
    m.vm = strdup(argv[1]);
    snprintf(m.uuid, sizeof m.uuid, "%s", argv[2]);
    if (domain_xml)
        m.domain_xml = domain_xml;
    else if (asprintf(&m.domain_xml, "<domain><name>%s</name><uuid>%s</uuid></domain>", argv[1],
                      argv[2]) < 0)
        m.domain_xml = NULL;
    if (checkpoint) {
        m.level = REPO_LEVEL_FULL;
        m.has_checkpoint = true;
        m.checkpoint.name = strdup(checkpoint);
        m.checkpoint.creation_time = (int64_t)now;
        m.checkpoint.xml = strdup("<domaincheckpoint/>");
    }
    m.n_disks = (size_t)(argc - 3);
    m.disks = calloc(m.n_disks, sizeof *m.disks);
    int rc = m.vm && m.domain_xml && m.disks ? 0 : vb_error_set(&err, "out of memory");
    for (size_t i = 0; rc == 0 && i < m.n_disks; i++) {
        char *spec = argv[3 + i], *eq = strchr(spec, '=');
        if (!eq) {
            rc = vb_error_set(&err, "'%s' is not DISK=RAWFILE", spec);
            break;
        }
        *eq = '\0';
        rc = import_disk(r, spec, eq + 1, slow_ms,
                         qcow_disk && strcmp(qcow_disk, spec) == 0 ? qcow_json : NULL, &m.disks[i],
                         &err);
    }
    if (rc == 0)
        rc = repo_snapshot_commit(r, &m, &err);
    if (rc == 0)
        printf("%s\n", m.id);
    repo_manifest_free(&m);
    free(qcow_json);
    repo_close(r);
    return rc == 0 ? 0 : die("import", &err);
}

static int find_manifest(struct repo *r, const char *id, struct repo_manifest *m,
                         struct vb_error *err);

struct find_ctx {
    const char *id;
    char uuid[REPO_UUID_LEN + 1];
};

static int find_one(void *ctx, const char *uuid, const char *id, struct vb_error *err)
{
    struct find_ctx *f = ctx;
    (void)err;
    if (strcmp(id, f->id) == 0)
        snprintf(f->uuid, sizeof f->uuid, "%s", uuid);
    return 0;
}

static int find_manifest(struct repo *r, const char *id, struct repo_manifest *m,
                         struct vb_error *err)
{
    struct find_ctx f = {.id = id};
    if (repo_list_snapshots(r, NULL, find_one, &f, err) < 0)
        return -1;
    if (!f.uuid[0])
        return vb_error_set(err, "no snapshot %s", id);
    return repo_get_manifest(r, f.uuid, id, m, err);
}

static int export(int argc, char **argv)
{
    struct vb_error err = {0};
    if (argc != 4)
        return fprintf(stderr, "usage: repo-raw export REPO SNAPSHOT DISK OUT.raw\n"), 2;
    struct repo *r = repo_open(argv[0], NULL, &err);
    if (!r)
        return die(argv[0], &err);
    struct repo_manifest m = {0};
    struct repo_disk_reader *rd = NULL;
    int fd = -1, rc = find_manifest(r, argv[1], &m, &err);
    const struct repo_manifest_disk *d = NULL;
    for (size_t i = 0; rc == 0 && i < m.n_disks; i++)
        if (strcmp(m.disks[i].target, argv[2]) == 0)
            d = &m.disks[i];
    if (rc == 0 && !d)
        rc = vb_error_set(&err, "snapshot %s has no disk %s", argv[1], argv[2]);
    if (rc == 0 && !(rd = repo_disk_reader_open(r, &d->index, &err)))
        rc = -1;
    if (rc == 0 && (fd = open(argv[3], O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644)) < 0)
        rc = vb_error_errno(&err, "%s", argv[3]);
    /* odd-sized reads that cross chunk boundaries, so that the reader's splitting is used */
    const size_t piece = 1000 * 1000 + 7;
    char *buf = malloc(piece);
    if (rc == 0 && !buf)
        rc = vb_error_set(&err, "out of memory");
    uint64_t size = rc == 0 ? repo_disk_reader_size(rd) : 0;
    for (uint64_t off = 0; rc == 0 && off < size; off += piece) {
        size_t len = size - off < piece ? (size_t)(size - off) : piece;
        rc = repo_disk_reader_pread(rd, buf, len, off, &err);
        if (rc == 0 && vb_write_all(fd, buf, len) < 0)
            rc = vb_error_errno(&err, "%s", argv[3]);
    }
    free(buf);
    if (fd >= 0 && close(fd) < 0 && rc == 0)
        rc = vb_error_errno(&err, "%s", argv[3]);
    repo_disk_reader_close(rd);
    repo_manifest_free(&m);
    repo_close(r);
    return rc == 0 ? 0 : die("export", &err);
}

int main(int argc, char **argv)
{
    if (argc >= 2 && strcmp(argv[1], "import") == 0)
        return import(argc - 2, argv + 2);
    if (argc >= 2 && strcmp(argv[1], "export") == 0)
        return export(argc - 2, argv + 2);
    fprintf(stderr, "usage: repo-raw import [--domain-xml FILE] [--qcow-json DISK=FILE]\n"
                    "                       [--checkpoint NAME] REPO VMNAME UUID DISK=RAWFILE...\n"
                    "       repo-raw export REPO SNAPSHOT DISK OUT.raw\n");
    return 2;
}
