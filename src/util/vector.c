#include "vector.h"

#include <errno.h>
#include <stdint.h>
#include <string.h>

int vb_vector_grow(void *array_ptr, size_t *cap, size_t need, size_t elem)
{
    if (need <= *cap)
        return 0;
    size_t ncap = *cap ? *cap : 16;
    while (ncap < need) {
        if (ncap > SIZE_MAX / 2) {
            ncap = need;
            break;
        }
        ncap *= 2;
    }
    if (elem && ncap > SIZE_MAX / elem) {
        errno = ENOMEM;
        return -1;
    }
    /* the array pointer is copied through memcpy: it may be of any object pointer type */
    void *old;
    memcpy(&old, array_ptr, sizeof old);
    void *p = realloc(old, ncap * elem);
    if (!p) {
        errno = ENOMEM;
        return -1;
    }
    memcpy(array_ptr, &p, sizeof p);
    *cap = ncap;
    return 0;
}
