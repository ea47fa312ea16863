#include "debug_stall.h"

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

void vb_debug_stall(const char *spec, const char *point, const volatile sig_atomic_t *stop)
{
    if (!spec || !spec[0])
        return;
    /* "NAME=..." holds at the point NAME only (debug_stall.h) */
    const char *eq = strchr(spec, '=');
    if (eq && spec[0] != '/') {
        size_t n = (size_t)(eq - spec);
        if (!point || strlen(point) != n || strncmp(spec, point, n) != 0)
            return;
        spec = eq + 1;
    }
    if (spec[0] != '/') {
        for (int i = atoi(spec) * 10; i > 0 && !*stop; i--)
            usleep(100000);
        return;
    }
    if (access(spec, F_OK) != 0)
        return;
    char marker[4200];
    snprintf(marker, sizeof marker, "%s.stalled", spec);
    int fd = open(marker, O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
    if (fd >= 0)
        close(fd);
    while (access(spec, F_OK) == 0 && !*stop)
        usleep(20000);
}
