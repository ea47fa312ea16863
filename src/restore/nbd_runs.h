/* The NBD side of virtrestore's write pipeline (write_pipeline.c): the connections to the
 * private qemu-nbd, their flush, and the split of a buffer into the runs worth writing (a
 * fresh image reads as zero, so all-zero grains are skipped). */
#ifndef VR_NBD_RUNS_H
#define VR_NBD_RUNS_H

#include <stddef.h>
#include <stdint.h>

#include "error.h"
#include "nbd_driver.h"
#include "nbd_target.h"

/* Runs of zeroes shorter than this are written anyway: finer splitting costs requests and
 * gains nothing on 64 KiB qcow2 clusters. */
#define RESTORE_ZERO_GRAIN (64 * 1024)

struct data_run {
    size_t off, len; /* within the buffer */
};

/* Sets *runs and *nruns (growing *runcap) to the runs of non-zero grains of data[0..len), each at
 * most request_size bytes. Returns the zero bytes skipped, or -1 when out of memory. */
int64_t restore_find_runs(const char *data, size_t len, size_t request_size, struct data_run **runs,
                          size_t *nruns, size_t *runcap);

/* Opens n connections of the driver to the export (named in errors by d->name): writable,
 * at least need bytes large. */
int restore_nbd_connect(struct nbd_driver *d, const struct vb_nbd_target *target,
                        const char *export_name, int n, uint64_t need, struct vb_error *err);

/* Flushes every connection: without multi-conn a flush covers only its own connection's
 * writes. */
int restore_nbd_flush(struct nbd_driver *d, struct vb_error *err);

#endif
