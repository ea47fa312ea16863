/* A file of the set copied out to a local file, sparse where the data is all zeroes. */
#include <fcntl.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "backup_set.h"
#include "checksum.h"
#include "util.h"

#define COPY_BLOCK (1024 * 1024)

int bset_copy(struct bset *set, const char *name, const char *dest, unsigned mode, uint32_t *adler,
              struct vb_error *err)
{
    struct stream_source *src = bset_source(set, name, err);
    if (!src)
        return -1;
    int fd = open(dest, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, mode ? mode : 0600);
    if (fd < 0) {
        int rc = vb_error_errno(err, "%s: cannot create (it is never overwritten)", dest);
        stream_source_free(src);
        return rc;
    }
    char *buf = malloc(COPY_BLOCK);
    int rc = buf ? 0 : vb_error_set(err, "out of memory");
    uint32_t sum = STREAM_ADLER32_INIT;
    for (uint64_t off = 0; rc == 0 && off < src->size;) {
        size_t n = src->size - off < COPY_BLOCK ? (size_t)(src->size - off) : COPY_BLOCK;
        if (stream_source_read_exact(src, buf, n, off, err) < 0) {
            rc = -1;
            break;
        }
        if (adler)
            sum = stream_adler32(sum, buf, n);
        /* Blocks of zeroes become holes: raw disk images stay as sparse as they were. */
        if (!vb_is_zero(buf, n)) {
            for (size_t done = 0; done < n && rc == 0;) {
                ssize_t w = pwrite(fd, buf + done, n - done, (off_t)(off + done));
                if (w < 0)
                    rc = vb_error_errno(err, "%s: write at %" PRIu64, dest, off + done);
                else
                    done += (size_t)w;
            }
        }
        off += n;
    }
    if (rc == 0 && ftruncate(fd, (off_t)src->size) < 0)
        rc = vb_error_errno(err, "%s: truncate", dest);
    if (rc == 0 && fsync(fd) < 0)
        rc = vb_error_errno(err, "%s: fsync", dest);
    close(fd);
    if (rc < 0)
        unlink(dest);
    else if (adler)
        *adler = sum;
    free(buf);
    stream_source_free(src);
    return rc;
}
