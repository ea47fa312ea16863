#include "repo_write.h"

#include <inttypes.h>
#include <stdbool.h>

#include "write_pipeline.h"

struct producer {
    struct repo *repo;
    const struct repo_index *idx;
};

void repo_write_opts_default(struct nbd_write_opts *o)
{
    *o = (struct nbd_write_opts){
        .connections = 4,
        .max_in_flight = 16,
        .request_size = 2 * 1024 * 1024,
        .workers = 4,
        .memory_budget = 64 * 1024 * 1024,
    };
}

uint64_t repo_index_stored_bytes(const struct repo_index *idx)
{
    uint64_t n = 0;
    for (size_t i = 0; i < idx->n; i++)
        if (!repo_digest_is_zero(&idx->digests[i]))
            n += repo_index_chunk_len(idx, i);
    return n;
}

/* Fetches and decodes chunk i (the unit of work) into a buffer and queues it; the index's
 * all-zero chunks are neither fetched nor written. */
static int read_chunk(void *producer, void *state, struct write_pipeline *wp, size_t i,
                      struct vb_error *e)
{
    (void)state;
    struct producer *pr = producer;
    const struct repo_index *idx = pr->idx;
    if (repo_digest_is_zero(&idx->digests[i]))
        return 0;
    struct wp_buffer *b = wp_buffer_get(wp);
    if (!b)
        return -1; /* failed elsewhere */
    uint64_t voff = (uint64_t)i * idx->chunk_size;
    size_t want = repo_index_chunk_len(idx, i), len = 0;
    int rc = repo_get_chunk_into(pr->repo, &idx->digests[i], b->data, idx->chunk_size, &len, e);
    if (rc < 0) {
        vb_error_prefix(e, "disk offset %" PRIu64, voff);
    } else if (len != want) {
        char hex[65];
        repo_digest_hex(&idx->digests[i], hex);
        rc = vb_error_set(e,
                          "disk offset %" PRIu64 ": chunk %s holds %zu bytes, the index wants %zu",
                          voff, hex, len, want);
    }
    if (rc < 0) {
        wp_buffer_drop(wp, b);
        return -1;
    }
    b->voff = voff;
    b->len = len;
    return wp_buffer_queue(wp, b, e);
}

int repo_write_nbd(struct repo *r, const struct repo_index *idx, const struct nbd_write_opts *o,
                   struct nbd_write_stats *st, struct vb_error *err)
{
    struct producer pr = {.repo = r, .idx = idx};
    struct write_pipeline_work work = {
        .export_need = idx->virtual_size,
        .units = idx->n,
        .buffer_size = idx->chunk_size,
        .buffers = (size_t)(o->memory_budget / idx->chunk_size),
    };
    static const struct wp_producer_ops ops = {.produce = read_chunk};
    return write_pipeline_run(o, &work, &ops, &pr, st, err);
}
