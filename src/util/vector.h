/* Growable arrays. A vector is any struct with the members `v` (element pointer), `n` (used)
 * and `cap` (allocated); VB_VECTOR declares one:
 *
 *     VB_VECTOR(name_list, char *);
 *     struct name_list names = {0};
 *     if (vb_vector_push(&names, s) < 0) ...out of memory...
 *     vb_vector_free(&names);
 *
 * Capacity doubles (from 16 elements), so n pushes cost O(n). Failing calls return -1 with
 * errno ENOMEM (also when the byte count would overflow) and leave the vector as it was. */
#ifndef VB_VECTOR_H
#define VB_VECTOR_H

#include <stddef.h>
#include <stdlib.h>

#define VB_VECTOR(name, type)                                                                      \
    struct name {                                                                                  \
        type *v;                                                                                   \
        size_t n, cap;                                                                             \
    }

/* Makes room for at least need elements of elem bytes in the array *(void **)array_ptr. */
int vb_vector_grow(void *array_ptr, size_t *cap, size_t need, size_t elem);

#define vb_vector_reserve(vec, need)                                                               \
    vb_vector_grow(&(vec)->v, &(vec)->cap, (need), sizeof *(vec)->v)

/* Appends x (evaluated once, after the room is made). */
#define vb_vector_push(vec, x)                                                                     \
    (vb_vector_reserve((vec), (vec)->n + 1) < 0 ? -1 : ((vec)->v[(vec)->n++] = (x), 0))

/* Frees the elements' array (not what the elements point to). */
#define vb_vector_free(vec) (free((vec)->v), (vec)->v = NULL, (vec)->n = (vec)->cap = 0)

#endif
