/* The target directory of an export (virtrepo(1), EXPORT): everything is written into
 * <dir>.partial, which is renamed to <dir> last, so a killed or failed export never leaves a
 * <dir> that looks like a complete backup. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "export.h"
#include "fileutil.h"

/* 1 when path is an empty directory, 0 when it holds something, -1 on error. */
static int dir_is_empty(const char *path, struct vb_error *err)
{
    DIR *d = opendir(path);
    if (!d)
        return vb_error_errno(err, "%s", path);
    int empty = 1;
    struct dirent *e;
    while (empty && (e = readdir(d)))
        if (strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0)
            empty = 0;
    closedir(d);
    return empty;
}

int export_dir_begin(const char *dir, struct export_dir *x, struct vb_error *err)
{
    memset(x, 0, sizeof *x);
    size_t len = strlen(dir);
    while (len > 1 && dir[len - 1] == '/')
        len--;
    const char *slash = memrchr(dir, '/', len);
    const char *base = slash ? slash + 1 : dir;
    size_t blen = len - (size_t)(base - dir);
    if (blen == 0 || (blen == 1 && base[0] == '.') || (blen == 2 && !strncmp(base, "..", 2)))
        return vb_error_set(err, "%s: name the target directory itself (not /, . or ..)", dir);
    if (asprintf(&x->final, "%.*s", (int)len, dir) < 0) {
        x->final = NULL;
        return vb_error_set(err, "out of memory");
    }
    if (asprintf(&x->partial, "%s.partial", x->final) < 0) {
        x->partial = NULL;
        export_dir_free(x);
        return vb_error_set(err, "out of memory");
    }
    struct stat st;
    if (stat(x->final, &st) == 0) {
        int empty = S_ISDIR(st.st_mode) ? dir_is_empty(x->final, err) : 0;
        if (empty == 0 && !S_ISDIR(st.st_mode))
            vb_error_set(err, "%s exists and is not a directory", x->final);
        else if (empty == 0)
            vb_error_set(err, "%s is not empty: an export writes into a new or empty directory",
                         x->final);
        if (empty != 1) {
            export_dir_free(x);
            return -1;
        }
        x->existed = true;
        x->mode = st.st_mode & 07777;
    } else if (errno != ENOENT) {
        vb_error_errno(err, "%s", x->final);
        export_dir_free(x);
        return -1;
    } else if (slash && slash != dir) {
        char *parent = strndup(dir, (size_t)(slash - dir));
        int rc = parent ? vb_mkdir_p(parent, err) : vb_error_set(err, "out of memory");
        free(parent);
        if (rc < 0) {
            export_dir_free(x);
            return -1;
        }
    }
    if (mkdir(x->partial, 0755) < 0) {
        if (errno == EEXIST)
            vb_error_set(err,
                         "%s exists: an export to %s is running, or one was interrupted (then "
                         "remove it)",
                         x->partial, x->final);
        else
            vb_error_errno(err, "%s: mkdir", x->partial);
        export_dir_free(x);
        return -1;
    }
    if (x->existed && chmod(x->partial, x->mode) < 0) {
        vb_error_errno(err, "%s: chmod", x->partial);
        export_dir_abort(x);
        export_dir_free(x);
        return -1;
    }
    return 0;
}

char *export_dir_path(const struct export_dir *x, const char *name)
{
    char *p;
    return asprintf(&p, "%s/%s", x->partial, name) < 0 ? NULL : p;
}

int export_dir_commit(struct export_dir *x, struct vb_error *err)
{
    int fd = open(x->partial, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        return vb_error_errno(err, "%s", x->partial);
    int rc = fsync(fd) < 0 && errno != EINVAL ? vb_error_errno(err, "%s: fsync", x->partial) : 0;
    close(fd);
    if (rc < 0)
        return -1;
    /* rename(2) replaces only an empty directory: one filled meanwhile stays as it is */
    if (rename(x->partial, x->final) < 0) {
        if (errno == ENOTEMPTY || errno == EEXIST)
            return vb_error_set(err, "%s is no longer empty: the export is not put there",
                                x->final);
        return vb_error_errno(err, "rename %s to %s", x->partial, x->final);
    }
    return vb_fsync_dir_of(x->final, err);
}

void export_dir_abort(struct export_dir *x)
{
    DIR *d = opendir(x->partial);
    if (!d)
        return;
    struct dirent *e;
    while ((e = readdir(d)))
        if (strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0)
            unlinkat(dirfd(d), e->d_name, 0);
    closedir(d);
    rmdir(x->partial);
}

void export_dir_free(struct export_dir *x)
{
    free(x->final);
    free(x->partial);
    x->final = x->partial = NULL;
}
