#include "nbd_runs.h"

#include <inttypes.h>
#include <libnbd.h>
#include <stdbool.h>

#include "util.h"
#include "vector.h"

int64_t restore_find_runs(const char *data, size_t len, size_t request_size, struct data_run **runs,
                          size_t *nruns, size_t *runcap)
{
    *nruns = 0;
    uint64_t zero = 0;
    size_t start = 0, have = 0; /* the current run */
    for (size_t off = 0; off < len;) {
        size_t n = len - off < RESTORE_ZERO_GRAIN ? len - off : RESTORE_ZERO_GRAIN;
        bool z = vb_is_zero(data + off, n);
        if (z)
            zero += n;
        else if (have == 0)
            start = off;
        if (!z)
            have += n;
        bool last = off + n == len;
        if (have && (z || have >= request_size || last)) {
            if (vb_vector_grow(runs, runcap, *nruns + 1, sizeof **runs) < 0)
                return -1;
            (*runs)[(*nruns)++] = (struct data_run){start, have};
            have = 0;
        }
        off += n;
    }
    return (int64_t)zero;
}

int restore_nbd_connect(struct nbd_driver *d, const struct vb_nbd_target *target,
                        const char *export_name, int n, uint64_t need, struct vb_error *err)
{
    const char *where = d->name;
    for (int i = 0; i < n; i++) {
        struct nbd_handle *h = nbd_create();
        if (!h)
            return vb_error_set(err, "nbd_create: %s", nbd_get_error());
        if (nbd_driver_add(d, h, err) < 0) {
            nbd_close(h);
            return -1;
        }
        if (nbd_set_export_name(h, export_name ? export_name : "") < 0 ||
            vb_nbd_target_connect(h, target) < 0)
            return vb_error_set(err, "%s: NBD connection %d: %s%s", where, i + 1, nbd_get_error(),
                                vb_nbd_target_hint(target, nbd_get_error()));
        if (nbd_is_read_only(h) == 1)
            return vb_error_set(err, "%s: the NBD export is read-only", where);
        int64_t size = nbd_get_size(h);
        if (size < 0 || (uint64_t)size < need)
            return vb_error_set(err, "%s: export has %" PRId64 " bytes, the disk needs %" PRIu64,
                                where, size, need);
    }
    return 0;
}

int restore_nbd_flush(struct nbd_driver *d, struct vb_error *err)
{
    for (int i = 0; i < d->nconns; i++)
        if (nbd_flush(d->conn[i], 0) < 0)
            return vb_error_set(err, "%s: NBD flush: %s", d->name, nbd_get_error());
    return 0;
}
