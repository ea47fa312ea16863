#include "checksum.h"

#include <libdeflate.h>
#include <zlib.h>

uint32_t stream_adler32(uint32_t adler, const void *buf, size_t len)
{
    return len ? libdeflate_adler32(adler, buf, len) : adler;
}

uint32_t stream_adler32_combine(uint32_t sum_a, uint32_t sum_b, uint64_t len_b)
{
    return (uint32_t)adler32_combine64(sum_a, sum_b, (z_off64_t)len_b);
}
