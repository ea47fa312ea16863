#include "util.h"

#include <errno.h>
#include <string.h>
#include <unistd.h>

int vb_write_all(int fd, const void *buf, size_t len)
{
    const char *p = buf;
    while (len) {
        ssize_t n = write(fd, p, len);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return -1;
        }
        p += n;
        len -= (size_t)n;
    }
    return 0;
}

const char *vb_base_name(const char *path)
{
    const char *s = strrchr(path, '/');
    return s ? s + 1 : path;
}

bool vb_is_zero(const void *buf, size_t n)
{
    const unsigned char *p = buf;
    /* the first byte, then the buffer against itself shifted by one: memcmp is vectorised */
    return n == 0 || (p[0] == 0 && memcmp(p, p + 1, n - 1) == 0);
}
