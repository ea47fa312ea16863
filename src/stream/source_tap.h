/* A stream source that remembers the adler32 of every range read through it. Afterwards the
 * checksum of the whole file costs only the bytes nobody read (superseded data, gaps between
 * reads): a restore, which reads just the data that survives in the final image, checks each
 * file against its .chksum without reading its input a second time. */
#ifndef VB_SOURCE_TAP_H
#define VB_SOURCE_TAP_H

#include <stdint.h>

#include "error.h"
#include "source.h"

/* Wraps inner (ownership passes to the tap, also on failure). */
struct stream_source *stream_source_tap_new(struct stream_source *inner, struct vb_error *err);

/* The adler32 of the whole file: the recorded ranges in file order, the rest read now.
 * *reread receives the bytes read for it. src must come from stream_source_tap_new and no
 * other thread may read through it meanwhile. */
int stream_source_tap_adler32(struct stream_source *src, uint32_t *sum, uint64_t *reread,
                              struct vb_error *err);

#endif
