#include "nbd_device.h"

#include <dirent.h>
#include <errno.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>

#include "vector.h"

int nbd_device_sysfs_dir(const char *path, char *dir, size_t len, struct vb_error *err)
{
    struct stat st;
    if (stat(path, &st) < 0)
        return vb_error_errno(err, "%s", path);
    if (!S_ISBLK(st.st_mode))
        return vb_error_set(err, "%s: not a block device", path);
    snprintf(dir, len, "/sys/dev/block/%u:%u", major(st.st_rdev), minor(st.st_rdev));
    return 0;
}

/* The first line of a small sysfs or procfs file, without its newline. */
static int read_line(const char *path, char *buf, size_t len)
{
    FILE *f = fopen(path, "re");
    if (!f)
        return -1;
    bool ok = fgets(buf, (int)len, f) != NULL;
    fclose(f);
    if (!ok)
        return -1;
    buf[strcspn(buf, "\n")] = '\0';
    return 0;
}

int nbd_device_owner(const char *sysdir, struct nbd_owner *owner)
{
    char path[128], line[64];
    snprintf(path, sizeof path, "%s/pid", sysdir);
    /* the kernel creates the file when the device starts and removes it when it ends */
    if (read_line(path, line, sizeof line) < 0)
        return 0;
    owner->pid = strtol(line, NULL, 10);
    owner->comm[0] = '\0';
    /* the kernel records the thread that runs NBD_DO_IT: name its process */
    snprintf(path, sizeof path, "/proc/%ld/status", owner->pid);
    FILE *f = fopen(path, "re");
    if (f) {
        char l[128];
        long tgid;
        while (fgets(l, sizeof l, f))
            if (sscanf(l, "Tgid: %ld", &tgid) == 1) {
                owner->pid = tgid;
                break;
            }
        fclose(f);
    }
    snprintf(path, sizeof path, "/proc/%ld/comm", owner->pid);
    if (read_line(path, owner->comm, sizeof owner->comm) < 0)
        owner->comm[0] = '\0';
    return 1;
}

void nbd_owner_describe(const struct nbd_owner *owner, char *buf, size_t len)
{
    if (owner->comm[0])
        snprintf(buf, len, "process %ld (%s)", owner->pid, owner->comm);
    else
        snprintf(buf, len, "process %ld, which is gone", owner->pid);
}

int nbd_device_sectors(const char *sysdir, uint64_t *sectors)
{
    char path[128], line[32];
    snprintf(path, sizeof path, "%s/size", sysdir);
    if (read_line(path, line, sizeof line) < 0)
        return -1;
    *sectors = strtoull(line, NULL, 10);
    return 0;
}

static int cmp_unsigned(const void *a, const void *b)
{
    unsigned x = *(const unsigned *)a, y = *(const unsigned *)b;
    return (x > y) - (x < y);
}

int nbd_device_numbers(unsigned **out, size_t *n, struct vb_error *err)
{
    *out = NULL;
    *n = 0;
    DIR *d = opendir("/sys/block");
    if (!d)
        return vb_error_errno(err, "/sys/block");
    size_t cap = 0;
    struct dirent *de;
    while ((de = readdir(d))) {
        unsigned num;
        char tail;
        if (sscanf(de->d_name, "nbd%u%c", &num, &tail) != 1)
            continue;
        if (vb_vector_grow(out, &cap, *n + 1, sizeof **out) < 0) {
            closedir(d);
            free(*out);
            *out = NULL;
            *n = 0;
            return vb_error_set(err, "out of memory");
        }
        (*out)[(*n)++] = num;
    }
    closedir(d);
    if (*n)
        qsort(*out, *n, sizeof **out, cmp_unsigned);
    return 0;
}
