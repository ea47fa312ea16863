/* The local backend of the object store: one file per object, key -> <dir>/<key>.
 *
 * put is atomic and durable: the bytes go to a temporary file in the key's directory
 * (".<name>.XXXXXX.tmp", created O_EXCL|O_NOFOLLOW), which is fsynced, renamed over the key,
 * and the directory is fsynced; a directory put creates is fsynced into its parent. Each
 * writer has its own temporary file and rename() replaces atomically, so several processes
 * putting one key at once each leave a complete object. Keys are validated before any path is
 * built (no leading '/', no empty components, no component starting with '.', so no ".." and
 * no temporary name, printable ASCII) and every directory on the way is opened with
 * O_NOFOLLOW, so an object is always a file below the store's directory. The layout is in
 * virtbackup-repository(5). */
#include "objstore.h"
#include "util.h"
#include "vector.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#define LOCAL_KEY_MAX      1024
#define LOCAL_PAGE_DEFAULT 1000
/* ".<name>." + 6 random characters + ".tmp" must fit a file name */
#define LOCAL_TMP_EXTRA 12

struct local_store {
    struct repo_store base;
    int dirfd;
    char *dir;
};

static struct local_store *local_of(struct repo_store *s)
{
    return (struct local_store *)s;
}

/* A key, or (prefix_ok) a list prefix, which may be empty and end in '/' or mid-component. */
static int check_key(const char *key, bool prefix_ok, struct vb_error *err)
{
    size_t len = strlen(key);
    if (len == 0 && !prefix_ok)
        return vb_error_set(err, "empty object key");
    if (len > LOCAL_KEY_MAX)
        return vb_error_set(err, "object key %.40s...: longer than %d bytes", key, LOCAL_KEY_MAX);
    if (key[0] == '/')
        return vb_error_set(err, "object key %s: starts with '/'", key);
    const char *comp = key;
    for (const char *p = key;; p++) {
        unsigned char c = (unsigned char)*p;
        if (c == '/' || c == '\0') {
            if (p == comp && !(c == '\0' && (prefix_ok || len == 0)))
                return vb_error_set(err, "object key %s: empty component", key);
            if (comp[0] == '.')
                return vb_error_set(err,
                                    "object key %s: a component starts with '.' (no '..', "
                                    "no temporary names)",
                                    key);
            if (c == '\0')
                break;
            comp = p + 1;
        } else if (c <= 0x20 || c >= 0x7f) {
            return vb_error_set(err,
                                "object key %.*s...: byte 0x%02x at offset %zu is not "
                                "printable ASCII",
                                (int)(p - key), key, c, (size_t)(p - key));
        }
    }
    return 0;
}

/* The directory holding key's file, opened relative to the store without following symbolic
 * links; with create, missing directories are made (0700) and fsynced into their parent.
 * *leaf points into key at the file name. Returns the directory's fd, -2 when a directory
 * on the way is missing (only without create), or -1 with err set. */
static int open_parent(struct local_store *ls, const char *key, bool create, const char **leaf,
                       struct vb_error *err)
{
    int cur = fcntl(ls->dirfd, F_DUPFD_CLOEXEC, 0);
    if (cur < 0)
        return vb_error_errno(err, "%s", ls->dir);
    const char *p = key;
    char comp[LOCAL_KEY_MAX + 1];
    for (const char *slash; (slash = strchr(p, '/')) != NULL; p = slash + 1) {
        size_t n = (size_t)(slash - p);
        memcpy(comp, p, n);
        comp[n] = '\0';
        int next = openat(cur, comp, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        if (next < 0 && errno == ENOENT && create) {
            /* fsync the parent also when another writer made the directory first: our object
             * must not depend on that writer having synced it yet */
            if ((mkdirat(cur, comp, 0700) < 0 && errno != EEXIST) || fsync(cur) < 0) {
                int e = errno;
                close(cur);
                errno = e;
                return vb_error_errno(err, "%s/%.*s: creating the directory", ls->dir,
                                      (int)(slash - key), key);
            }
            next = openat(cur, comp, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        }
        int e = errno;
        close(cur);
        if (next < 0) {
            if (!create && (e == ENOENT || e == ENOTDIR))
                return -2;
            errno = e;
            return vb_error_errno(err, "%s/%.*s", ls->dir, (int)(slash - key), key);
        }
        cur = next;
    }
    *leaf = p;
    return cur;
}

static void random_name_part(char out[7])
{
    static const char alphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    unsigned char r[6];
    if (getrandom(r, sizeof r, 0) != (ssize_t)sizeof r) {
        /* the name only has to differ from the other writers' (O_EXCL checks it) */
        static unsigned counter;
        unsigned x = (unsigned)getpid() * 2654435761u + counter++;
        for (size_t i = 0; i < sizeof r; i++, x >>= 5)
            r[i] = (unsigned char)x;
    }
    for (size_t i = 0; i < sizeof r; i++)
        out[i] = alphabet[r[i] % (sizeof alphabet - 1)];
    out[6] = '\0';
}

/* The object written to a new temporary file next to the key and synced: *dfd is the
 * key's directory (open), tmp the temporary's name in it. */
static int write_temporary(struct local_store *ls, const char *key, const void *data, size_t len,
                           int *dfd_out, const char **leaf_out, char tmp[NAME_MAX + 1],
                           struct vb_error *err)
{
    const char *leaf;
    int dfd = open_parent(ls, key, true, &leaf, err);
    if (dfd < 0)
        return vb_error_prefix(err, "put %s", key);
    if (strlen(leaf) + LOCAL_TMP_EXTRA > NAME_MAX) {
        close(dfd);
        return vb_error_set(err, "put %s: the name is too long for a temporary file", key);
    }
    int fd = -1;
    for (int attempt = 0; fd < 0; attempt++) {
        char rnd[7];
        random_name_part(rnd);
        snprintf(tmp, NAME_MAX + 1, ".%s.%s.tmp", leaf, rnd);
        fd = openat(dfd, tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
        if (fd < 0 && (errno != EEXIST || attempt >= 100)) {
            vb_error_errno(err, "put %s: %s/%s: creating a temporary file", key, ls->dir, key);
            close(dfd);
            return -1;
        }
    }
    const char *step = "writing";
    if (vb_write_all(fd, data, len) < 0)
        goto fail;
    step = "syncing";
    if (fsync(fd) < 0)
        goto fail;
    step = "closing";
    int rc = close(fd);
    fd = -1;
    if (rc < 0)
        goto fail;
    *dfd_out = dfd;
    *leaf_out = leaf;
    return 0;

fail:
    vb_error_errno(err, "put %s: %s %s/%s", key, step, ls->dir, key);
    if (fd >= 0)
        close(fd);
    unlinkat(dfd, tmp, 0);
    close(dfd);
    return -1;
}

/* The directory of a key just made to hold it, synced (then closed). */
static int sync_key_dir(struct local_store *ls, const char *key, int dfd, struct vb_error *err)
{
    if (fsync(dfd) < 0) {
        /* the object is complete, only its durability is unknown */
        vb_error_errno(err, "put %s: %s/%s: syncing the directory", key, ls->dir, key);
        close(dfd);
        return -1;
    }
    close(dfd);
    return 0;
}

/* put and put_new: the synced temporary file renamed over the key, or (exclusive)
 * hard-linked to it, which fails where a name exists: of several writers exactly one links
 * (1 for the others). */
static int put_object(struct repo_store *s, const char *key, const void *data, size_t len,
                      bool exclusive, struct vb_error *err)
{
    struct local_store *ls = local_of(s);
    if (check_key(key, false, err) < 0)
        return vb_error_prefix(err, "put");
    int dfd = -1;
    const char *leaf = NULL;
    char tmp[NAME_MAX + 1];
    if (write_temporary(ls, key, data, len, &dfd, &leaf, tmp, err) < 0)
        return -1;
    int done = exclusive ? linkat(dfd, tmp, dfd, leaf, 0) : renameat(dfd, tmp, dfd, leaf);
    int saved = errno;
    if (exclusive || done < 0)
        unlinkat(dfd, tmp, 0);
    if (done < 0) {
        close(dfd);
        if (exclusive && saved == EEXIST)
            return 1;
        errno = saved;
        return vb_error_errno(err, "put %s: %s the temporary file to %s/%s", key,
                              exclusive ? "linking" : "renaming", ls->dir, key);
    }
    return sync_key_dir(ls, key, dfd, err);
}

static int local_put(struct repo_store *s, const char *key, const void *data, size_t len,
                     struct vb_error *err)
{
    return put_object(s, key, data, len, false, err);
}

static int local_put_new(struct repo_store *s, const char *key, const void *data, size_t len,
                         struct vb_error *err)
{
    return put_object(s, key, data, len, true, err);
}

static int local_get(struct repo_store *s, const char *key, uint64_t off, size_t len, void **data,
                     size_t *got, struct vb_error *err)
{
    struct local_store *ls = local_of(s);
    *data = NULL;
    *got = 0;
    if (check_key(key, false, err) < 0)
        return vb_error_prefix(err, "get");
    const char *leaf;
    int dfd = open_parent(ls, key, false, &leaf, err);
    if (dfd == -2)
        return 1;
    if (dfd < 0)
        return vb_error_prefix(err, "get %s", key);
    int fd = openat(dfd, leaf, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
    int e = errno;
    close(dfd);
    if (fd < 0) {
        if (e == ENOENT)
            return 1;
        errno = e;
        return vb_error_errno(err, "get %s: %s/%s", key, ls->dir, key);
    }
    struct stat st;
    if (fstat(fd, &st) < 0) {
        vb_error_errno(err, "get %s: %s/%s", key, ls->dir, key);
        close(fd);
        return -1;
    }
    if (!S_ISREG(st.st_mode)) {
        close(fd);
        return vb_error_set(err, "get %s: %s/%s: not a regular file", key, ls->dir, key);
    }
    uint64_t size = (uint64_t)st.st_size;
    if (off > size) {
        close(fd);
        return vb_error_set(err, "get %s: %s/%s: offset %llu is beyond its end (%llu bytes)", key,
                            ls->dir, key, (unsigned long long)off, (unsigned long long)size);
    }
    uint64_t want = size - off;
    if (len != 0 && (uint64_t)len < want)
        want = len;
    if (want > SIZE_MAX - 1) {
        close(fd);
        return vb_error_set(err, "get %s: %s/%s: too large to read", key, ls->dir, key);
    }
    unsigned char *buf = malloc(want ? (size_t)want : 1);
    if (!buf) {
        close(fd);
        return vb_error_errno(err, "get %s: %llu bytes", key, (unsigned long long)want);
    }
    size_t done = 0;
    while (done < want) {
        ssize_t r = pread(fd, buf + done, (size_t)want - done, (off_t)(off + done));
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0) {
            if (r == 0)
                vb_error_set(err, "get %s: %s/%s: ends at %llu, before %llu", key, ls->dir, key,
                             (unsigned long long)(off + done), (unsigned long long)(off + want));
            else
                vb_error_errno(err, "get %s: reading %s/%s", key, ls->dir, key);
            free(buf);
            close(fd);
            return -1;
        }
        done += (size_t)r;
    }
    close(fd);
    *data = buf;
    *got = done;
    return 0;
}

static int local_head(struct repo_store *s, const char *key, struct repo_stat *out,
                      struct vb_error *err)
{
    struct local_store *ls = local_of(s);
    if (check_key(key, false, err) < 0)
        return vb_error_prefix(err, "head");
    const char *leaf;
    int dfd = open_parent(ls, key, false, &leaf, err);
    if (dfd == -2)
        return 1;
    if (dfd < 0)
        return vb_error_prefix(err, "head %s", key);
    struct stat st;
    int rc = fstatat(dfd, leaf, &st, AT_SYMLINK_NOFOLLOW);
    int e = errno;
    close(dfd);
    if (rc < 0) {
        if (e == ENOENT)
            return 1;
        errno = e;
        return vb_error_errno(err, "head %s: %s/%s", key, ls->dir, key);
    }
    if (!S_ISREG(st.st_mode))
        return vb_error_set(err, "head %s: %s/%s: not a regular file", key, ls->dir, key);
    out->size = (uint64_t)st.st_size;
    out->mtime = (int64_t)st.st_mtime;
    return 0;
}

static int local_del(struct repo_store *s, const char *key, struct vb_error *err)
{
    struct local_store *ls = local_of(s);
    if (check_key(key, false, err) < 0)
        return vb_error_prefix(err, "delete");
    const char *leaf;
    int dfd = open_parent(ls, key, false, &leaf, err);
    if (dfd == -2)
        return 1;
    if (dfd < 0)
        return vb_error_prefix(err, "delete %s", key);
    if (unlinkat(dfd, leaf, 0) < 0) {
        int e = errno;
        close(dfd);
        if (e == ENOENT)
            return 1;
        errno = e;
        return vb_error_errno(err, "delete %s: %s/%s", key, ls->dir, key);
    }
    /* empty directories stay: a concurrent put may be about to use them */
    int rc = fsync(dfd);
    close(dfd);
    if (rc < 0)
        return vb_error_errno(err, "delete %s: %s/%s: syncing the directory", key, ls->dir, key);
    return 0;
}

/* ---- list: a walk of the directory tree in key order ---- */

/* A directory entry; a subdirectory's name carries its trailing '/', so that sorting the
 * names sorts the keys below them ("a/x" sorts after "a-b", as '/' > '-'). */
VB_VECTOR(entry_list, char *);

struct list_walk {
    struct local_store *ls;
    const char *prefix;
    size_t prefix_len;
    const char *after;
    size_t max, seen;
    bool *more;
    bool stop;
    int (*fn)(void *ctx, const char *key, const struct repo_stat *st, struct vb_error *err);
    void *ctx;
    struct vb_error *err;
    char key[LOCAL_KEY_MAX + 2]; /* the path of the directory being walked, then the entry */
};

static int cmp_names(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static bool starts_with(const char *s, const char *p, size_t plen)
{
    return strncmp(s, p, plen) == 0;
}

/* Whether the key (a file) or the subtree (a name ending in '/') can hold keys of the page. */
static bool entry_wanted(const struct list_walk *w, const char *cand, size_t cand_len, bool dir)
{
    if (dir) {
        if (!starts_with(cand, w->prefix, w->prefix_len) && !starts_with(w->prefix, cand, cand_len))
            return false;
        /* every key below cand starts with cand: all before `after` when cand sorts before
         * it and is not a prefix of it */
        if (w->after && strcmp(cand, w->after) < 0 && !starts_with(w->after, cand, cand_len))
            return false;
        return true;
    }
    if (!starts_with(cand, w->prefix, w->prefix_len))
        return false;
    return !w->after || strcmp(cand, w->after) > 0;
}

static void free_entries(struct entry_list *e)
{
    for (size_t i = 0; i < e->n; i++)
        free(e->v[i]);
    vb_vector_free(e);
}

/* Walks the directory dfd (taken over), whose keys start with w->key[0..path_len). */
static int walk_dir(struct list_walk *w, int dfd, size_t path_len)
{
    DIR *d = fdopendir(dfd);
    if (!d) {
        close(dfd);
        return vb_error_errno(w->err, "%s/%.*s", w->ls->dir, (int)path_len, w->key);
    }
    struct entry_list entries = {0};
    int rc = 0;
    for (;;) {
        errno = 0;
        struct dirent *de = readdir(d);
        if (!de) {
            if (errno != 0)
                rc = vb_error_errno(w->err, "%s/%.*s: reading the directory", w->ls->dir,
                                    (int)path_len, w->key);
            break;
        }
        if (de->d_name[0] == '.') /* ".", "..", temporary files */
            continue;
        bool dir;
        if (de->d_type == DT_DIR || de->d_type == DT_REG) {
            dir = de->d_type == DT_DIR;
        } else if (de->d_type == DT_UNKNOWN) {
            struct stat st;
            if (fstatat(dirfd(d), de->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0)
                continue; /* gone meanwhile */
            if (!S_ISDIR(st.st_mode) && !S_ISREG(st.st_mode))
                continue;
            dir = S_ISDIR(st.st_mode);
        } else {
            continue; /* symbolic links and the like are never objects */
        }
        size_t name_len = strlen(de->d_name);
        if (path_len + name_len + 1 > LOCAL_KEY_MAX)
            continue; /* cannot be a key */
        memcpy(w->key + path_len, de->d_name, name_len);
        if (dir)
            w->key[path_len + name_len++] = '/';
        w->key[path_len + name_len] = '\0';
        if (!entry_wanted(w, w->key, path_len + name_len, dir))
            continue;
        char *name = strndup(w->key + path_len, name_len);
        if (!name || vb_vector_push(&entries, name) < 0) {
            free(name);
            rc = vb_error_errno(w->err, "listing %s", w->ls->dir);
            break;
        }
    }
    if (rc == 0 && entries.n > 1)
        qsort(entries.v, entries.n, sizeof *entries.v, cmp_names);
    for (size_t i = 0; rc == 0 && !w->stop && i < entries.n; i++) {
        const char *name = entries.v[i];
        size_t name_len = strlen(name);
        memcpy(w->key + path_len, name, name_len + 1);
        if (name[name_len - 1] == '/') {
            char sub[NAME_MAX + 1];
            memcpy(sub, name, name_len - 1);
            sub[name_len - 1] = '\0';
            int sfd = openat(dirfd(d), sub, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
            if (sfd < 0) {
                if (errno == ENOENT)
                    continue;
                rc = vb_error_errno(w->err, "%s/%s", w->ls->dir, w->key);
                break;
            }
            rc = walk_dir(w, sfd, path_len + name_len);
            continue;
        }
        struct stat st;
        if (fstatat(dirfd(d), name, &st, AT_SYMLINK_NOFOLLOW) < 0) {
            if (errno == ENOENT)
                continue; /* deleted meanwhile */
            rc = vb_error_errno(w->err, "%s/%s", w->ls->dir, w->key);
            break;
        }
        if (w->seen == w->max) {
            *w->more = true;
            w->stop = true;
            break;
        }
        w->seen++;
        struct repo_stat rs = {.size = (uint64_t)st.st_size, .mtime = (int64_t)st.st_mtime};
        rc = w->fn(w->ctx, w->key, &rs, w->err) < 0 ? -1 : 0;
    }
    free_entries(&entries);
    closedir(d);
    return rc;
}

static int local_list(struct repo_store *s, const char *prefix, const char *after, size_t max,
                      int (*fn)(void *ctx, const char *key, const struct repo_stat *st,
                                struct vb_error *err),
                      void *ctx, bool *more, struct vb_error *err)
{
    struct local_store *ls = local_of(s);
    *more = false;
    if (!prefix)
        prefix = "";
    if (check_key(prefix, true, err) < 0)
        return vb_error_prefix(err, "list");
    struct list_walk *w = calloc(1, sizeof *w);
    if (!w)
        return vb_error_errno(err, "list %s", prefix);
    w->ls = ls;
    w->prefix = prefix;
    w->prefix_len = strlen(prefix);
    w->after = after;
    w->max = max ? max : LOCAL_PAGE_DEFAULT;
    w->more = more;
    w->fn = fn;
    w->ctx = ctx;
    w->err = err;
    int rc = -1;
    /* a new open file description: a dup would share the read position of the directory */
    int dfd = openat(ls->dirfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd < 0)
        vb_error_errno(err, "%s", ls->dir);
    else
        rc = walk_dir(w, dfd, 0);
    free(w);
    if (rc < 0)
        return vb_error_prefix(err, "list %s", prefix);
    return 0;
}

/* copy where no link can be made (another file system, a file system without links) */
static int copy_by_reading(struct repo_store *s, const char *src, const char *dst,
                           struct vb_error *err)
{
    void *data = NULL;
    size_t len = 0;
    int rc = local_get(s, src, 0, 0, &data, &len, err);
    if (rc != 0)
        return rc;
    rc = local_put(s, dst, data, len, err);
    free(data);
    return rc;
}

/* A hard link of src under a temporary name in dst's directory, renamed over dst: dst
 * appears complete or not at all, and replaces an object there (both hold the same bytes for
 * the content-addressed keys that are copied). */
static int local_copy(struct repo_store *s, const char *src, const char *dst, struct vb_error *err)
{
    struct local_store *ls = local_of(s);
    if (check_key(src, false, err) < 0 || check_key(dst, false, err) < 0)
        return vb_error_prefix(err, "copy");
    const char *sleaf, *dleaf;
    int sdfd = open_parent(ls, src, false, &sleaf, err);
    if (sdfd == -2)
        return 1;
    if (sdfd < 0)
        return vb_error_prefix(err, "copy %s", src);
    int ddfd = open_parent(ls, dst, true, &dleaf, err);
    if (ddfd < 0) {
        close(sdfd);
        return vb_error_prefix(err, "copy %s to %s", src, dst);
    }
    if (strlen(dleaf) + LOCAL_TMP_EXTRA > NAME_MAX) {
        close(sdfd);
        close(ddfd);
        return vb_error_set(err, "copy to %s: the name is too long for a temporary file", dst);
    }
    char tmp[NAME_MAX + 1];
    int rc = -1, e = 0;
    for (int attempt = 0; attempt < 100; attempt++) {
        char rnd[7];
        random_name_part(rnd);
        snprintf(tmp, sizeof tmp, ".%s.%s.tmp", dleaf, rnd);
        rc = linkat(sdfd, sleaf, ddfd, tmp, 0);
        e = errno;
        if (rc == 0 || e != EEXIST)
            break;
    }
    close(sdfd);
    if (rc < 0) {
        close(ddfd);
        if (e == ENOENT)
            return 1;
        if (e == EXDEV || e == EPERM || e == EMLINK || e == ENOTSUP)
            return copy_by_reading(s, src, dst, err);
        errno = e;
        return vb_error_errno(err, "copy %s: linking %s/%s to %s/%s", src, ls->dir, src, ls->dir,
                              dst);
    }
    if (renameat(ddfd, tmp, ddfd, dleaf) < 0) {
        e = errno;
        unlinkat(ddfd, tmp, 0);
        close(ddfd);
        errno = e;
        return vb_error_errno(err, "copy %s: renaming the link to %s/%s", src, ls->dir, dst);
    }
    return sync_key_dir(ls, dst, ddfd, err);
}

static void local_close(struct repo_store *s)
{
    if (!s)
        return;
    struct local_store *ls = local_of(s);
    close(ls->dirfd);
    free(ls->dir);
    free(ls->base.describe);
    free(ls);
}

static const struct repo_store_ops local_ops = {
    .put = local_put,
    .put_new = local_put_new,
    .get = local_get,
    .head = local_head,
    .list = local_list,
    .del = local_del,
    .copy = local_copy,
    .close = local_close,
};

struct repo_store *repo_store_local_open(const char *dir, struct vb_error *err)
{
    struct local_store *ls = calloc(1, sizeof *ls);
    if (!ls) {
        vb_error_errno(err, "%s", dir);
        return NULL;
    }
    ls->dirfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (ls->dirfd < 0) {
        vb_error_errno(err, "%s", dir);
        free(ls);
        return NULL;
    }
    ls->dir = strdup(dir);
    ls->base.describe = strdup(dir);
    if (!ls->dir || !ls->base.describe) {
        vb_error_errno(err, "%s", dir);
        local_close(&ls->base);
        return NULL;
    }
    ls->base.ops = &local_ops;
    return &ls->base;
}
