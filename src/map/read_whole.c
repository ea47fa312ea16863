#include "read_whole.h"

#include <errno.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

int read_whole_fd(int fd, const char *path, uint8_t **buf, size_t *len, struct vb_error *err)
{
    struct stat st;
    if (fstat(fd, &st) < 0)
        return vb_error_errno(err, "%s: stat", path);
    size_t n = (size_t)st.st_size;
    uint8_t *b = malloc(n ? n : 1);
    if (!b)
        return vb_error_set(err, "%s: out of memory (%zu bytes)", path, n);
    for (size_t done = 0; done < n;) {
        ssize_t r = pread(fd, b + done, n - done, (off_t)done);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0) {
            if (r < 0)
                vb_error_errno(err, "%s: read", path);
            else
                vb_error_set(err, "%s: changed while being read", path);
            free(b);
            return -1;
        }
        done += (size_t)r;
    }
    *buf = b;
    *len = n;
    return 0;
}
