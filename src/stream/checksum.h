/* The checksum of a data file (.chksum): adler32 as zlib defines it, the reference's choice.
 * It is taken over every byte a backup writes and a restore reads, so its speed matters:
 * libdeflate's vectorised adler32 runs at ~21 GB/s on these machines, zlib's at ~3.6 GB/s
 * (bench/README.md). zlib still combines sums of adjacent pieces (libdeflate cannot). */
#ifndef VB_STREAM_CHECKSUM_H
#define VB_STREAM_CHECKSUM_H

#include <stddef.h>
#include <stdint.h>

/* The sum of no bytes; start every running sum with it. */
#define STREAM_ADLER32_INIT 1u

/* Continues the running sum adler over len bytes at buf (any length, any alignment). */
uint32_t stream_adler32(uint32_t adler, const void *buf, size_t len);

/* The sum of A followed by B, from the sums of both and the length of B. */
uint32_t stream_adler32_combine(uint32_t sum_a, uint32_t sum_b, uint64_t len_b);

#endif
