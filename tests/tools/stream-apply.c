/* stream-apply: the test oracle for chains. Orders the given files by their metadata
 * (virtbackup-stream(5), CHAINS), merges them through the chain index (newest wins, ZERO frames
 * honoured) and writes the disk's final content into a raw file. */
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "chain.h"
#include "chain_index.h"
#include "tool_common.h"

static int write_all_at(int fd, const void *buf, size_t len, uint64_t off, const char *path,
                        struct vb_error *err)
{
    const char *p = buf;
    while (len) {
        ssize_t n = pwrite(fd, p, len, (off_t)off);
        if (n < 0)
            return vb_error_errno(err, "%s: write at %" PRIu64, path, off);
        p += n;
        off += (uint64_t)n;
        len -= (size_t)n;
    }
    return 0;
}

static int apply(const struct chain_index *ci, const char *target, struct vb_error *err)
{
    int fd = open(target, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0)
        return vb_error_errno(err, "%s: create", target);
    int rc = 0;
    if (ftruncate(fd, (off_t)ci->virtual_size) < 0)
        rc = vb_error_errno(err, "%s: truncate", target);
    void *data = malloc(STREAM_SLICE_SIZE);
    struct stream_read_buf buf = {0};
    if (!data)
        rc = vb_error_set(err, "out of memory");
    for (size_t s = 0; rc == 0 && s < ci->nsegs; s++) {
        const struct chain_segment *seg = &ci->segs[s];
        if (seg->zero)
            continue; /* a fresh file is zero already */
        const struct stream_index *idx = ci->files[seg->file];
        const struct stream_extent *x = &idx->extents[seg->extent];
        for (uint64_t pos = seg->start; rc == 0 && pos < seg->start + seg->length;) {
            uint64_t end = tool_piece_end(x, pos, seg->start + seg->length);
            rc = stream_index_read(idx, seg->extent, pos - x->start, end - pos, data, &buf, err);
            if (rc == 0)
                rc = write_all_at(fd, data, end - pos, pos, target, err);
            pos = end;
        }
    }
    if (rc == 0 && fsync(fd) < 0)
        rc = vb_error_errno(err, "%s: fsync", target);
    close(fd);
    free(data);
    stream_read_buf_free(&buf);
    return rc;
}

int main(int argc, char **argv)
{
    const char *until = NULL;
    static const struct option opts[] = {{"until", required_argument, NULL, 'u'}, {0}};
    int c;
    while ((c = getopt_long(argc, argv, "u:", opts, NULL)) != -1) {
        if (c != 'u') {
            fprintf(stderr, "usage: stream-apply [--until NAME] TARGET FILE...\n");
            return 1;
        }
        until = optarg;
    }
    if (argc - optind < 2) {
        fprintf(stderr, "usage: stream-apply [--until NAME] TARGET FILE...\n");
        return 1;
    }
    const char *target = argv[optind];
    size_t n = (size_t)(argc - optind - 1);
    struct chain_file *files = calloc(n, sizeof *files);
    struct stream_index **all = calloc(n, sizeof *all);
    struct stream_index **ordered = calloc(n, sizeof *ordered);
    struct chain_plan plan = {0};
    struct chain_index *ci = NULL;
    struct vb_error err = {0};
    int rc = 1;
    for (size_t i = 0; i < n; i++) {
        files[i].path = argv[optind + 1 + i];
        all[i] = stream_index_open(files[i].path, &err);
        if (!all[i])
            goto out;
        files[i].meta = all[i]->meta;
        if (chain_classify(&files[i], &err) < 0)
            goto out;
    }
    if (chain_plan_build(files, n, until, &plan, &err) < 0)
        goto out;
    for (size_t k = 0; k < plan.n; k++) {
        ordered[k] = all[plan.order[k]];
        fprintf(stderr, "stream-apply: %zu: %s (%s, checkpoint %s)\n", k + 1,
                files[plan.order[k]].path, chain_file_kind_name(files[plan.order[k]].kind),
                files[plan.order[k]].meta.checkpoint_name);
    }
    ci = chain_index_build(ordered, plan.n, &err);
    if (!ci || apply(ci, target, &err) < 0)
        goto out;
    fprintf(stderr, "stream-apply: %s: %" PRIu64 " bytes, %zu segments, %" PRIu64 " data bytes\n",
            target, ci->virtual_size, ci->nsegs, ci->data_bytes);
    rc = 0;
out:
    if (rc)
        fprintf(stderr, "stream-apply: %s\n", err.msg);
    chain_index_free(ci);
    chain_plan_free(&plan);
    for (size_t i = 0; i < n; i++)
        stream_index_free(all[i]);
    free(all);
    free(ordered);
    free(files);
    return rc;
}
