/* The host a domain lives on, as one interface with two implementations (an ops table, as
 * libnbd's copy/ has one loop over its operations): this machine (host_local.c) or the
 * remote host of a libvirt URI reached over SSH/SFTP (host_ssh.c, ssh_remote.h). Commands
 * (qemu-img, qemu-nbd), files (loader, nvram, kernel, initrd, restored images), private
 * directories (the backup job's, qemu-nbd's) and the qemu-nbd servers of offline backups and
 * restores all go through it, so the tools do not ask which kind of host they have for any of
 * these. The remote options are virtbackup(1)'s and virtrestore(1)'s remote group. */
#ifndef VB_HOST_H
#define VB_HOST_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include "error.h"
#include "nbd_target.h"
#include "remote.h"

struct vb_host;
struct qemu_nbd;
struct qemu_nbd_opts;

/* One implementation of a host. Every operation is described at its vb_host_* wrapper below. */
struct vb_host_ops {
    const char *kind; /* "local", "ssh": for messages */
    int (*run)(struct vb_host *h, char *const argv[], char **out, size_t *len,
               struct vb_error *err);
    int (*exists)(struct vb_host *h, const char *path, struct vb_error *err);
    int (*fetch)(struct vb_host *h, const char *path, const char *local, struct vb_error *err);
    int (*put)(struct vb_host *h, const char *local, const char *path, mode_t mode,
               struct vb_error *err);
    int (*put_buffer)(struct vb_host *h, const void *data, size_t len, const char *path,
                      mode_t mode, struct vb_error *err);
    char *(*mkdtemp)(struct vb_host *h, const char *parent, const char *prefix, int uid, int gid,
                     struct vb_error *err);
    void (*rmdir)(struct vb_host *h, const char *dir);
    int (*mkdir_p)(struct vb_host *h, const char *path, struct vb_error *err);
    int (*rename_noreplace)(struct vb_host *h, const char *from, const char *to,
                            struct vb_error *err);
    int (*unlink)(struct vb_host *h, const char *path, struct vb_error *err);
    int (*sync)(struct vb_host *h, const char *path, struct vb_error *err);
    int (*stage_open)(struct vb_host *h, const char *prefix, const char *path, char **local,
                      struct vb_error *err);
    int (*stage_commit)(struct vb_host *h, char *local, const char *path, mode_t mode, bool keep,
                        struct vb_error *err);
    void (*nbd_listen)(const struct vb_host *h, const char *socket, int port_offset,
                       struct vb_nbd_target *t);
    struct qemu_nbd *(*qemu_nbd_start)(struct vb_host *h, const struct qemu_nbd_opts *opts,
                                       struct vb_error *err);
};

struct vb_host {
    const struct vb_host_ops *ops;
    struct vb_ssh *ssh; /* the SSH session of a remote host */
    char *name;         /* remote host as the URI names it */
    char *nbd_host;     /* where its NBD servers are reached */
    int nbd_port;
    bool tls;
    char *tls_cert;
    char *tmpdir;         /* $TMPDIR as given (NULL if unset or empty) */
    char *glibc_tunables; /* the user's GLIBC_TUNABLES (for qemu-nbd), or NULL */
};

/* This machine for local URIs; for remote ones opens the SSH session (errors name the host
 * and what to fix). A host must be closed with vb_host_close, also after a failure. */
int vb_host_open(const struct vb_remote_opts *opts, struct vb_host *h, struct vb_error *err);
void vb_host_close(struct vb_host *h);
/* h's implementation; a zeroed struct vb_host, never opened, is this machine. */
const struct vb_host_ops *vb_host_ops(const struct vb_host *h);
/* For option checks that differ by host (--tls, absolute paths), not for choosing how to do
 * an operation: that is the ops table's job. */
bool vb_host_is_remote(const struct vb_host *h);
/* Where local temporary files of remote transfers go: $TMPDIR or VB_TMPDIR_DEFAULT. */
const char *vb_host_tmpdir(const struct vb_host *h);

/* Runs argv (no shell locally; quoted for the remote shell) and returns its stdout. */
int vb_host_run(struct vb_host *h, char *const argv[], char **out, size_t *len,
                struct vb_error *err);
/* 1 if path exists (and, locally, is readable), 0 if not, -1 on error. */
int vb_host_exists(struct vb_host *h, const char *path, struct vb_error *err);
/* Copies the host's file to a local path (atomically). */
int vb_host_fetch(struct vb_host *h, const char *path, const char *local, struct vb_error *err);
/* Copies a local file to the host (atomically; refuses to overwrite, also a file that
 * appears while it runs: locally a no-replace rename, remotely SFTP's rename). */
int vb_host_put(struct vb_host *h, const char *local, const char *path, mode_t mode,
                struct vb_error *err);
/* Writes a new file with data (atomically; refuses to overwrite, as vb_host_put). */
int vb_host_put_buffer(struct vb_host *h, const void *data, size_t len, const char *path,
                       mode_t mode, struct vb_error *err);
/* A private directory <parent>/<prefix>.<pid>.XXXXXX (mode 0700, owned by uid:gid when
 * uid >= 0): the backup job's directory, qemu-nbd's. Malloc'ed. */
char *vb_host_mkdtemp(struct vb_host *h, const char *parent, const char *prefix, int uid, int gid,
                      struct vb_error *err);
/* Removes such a directory and the plain files in it; failures are warnings. NULL: no-op. */
void vb_host_rmdir(struct vb_host *h, const char *dir);
/* mkdir -p */
int vb_host_mkdir_p(struct vb_host *h, const char *path, struct vb_error *err);
/* Renames from to to, never replacing an existing to. */
int vb_host_rename_noreplace(struct vb_host *h, const char *from, const char *to,
                             struct vb_error *err);
/* Removes a file; a missing one is not an error. */
int vb_host_unlink(struct vb_host *h, const char *path, struct vb_error *err);
/* Makes a committed file's directory entry durable (remotely the file's data too: sync(1);
 * locally its writer synced the data already). */
int vb_host_sync(struct vb_host *h, const char *path, struct vb_error *err);

/* A file for the host written by a local writer: vb_host_stage_open gives the local path to
 * write (*local, malloc'ed: path itself on this machine; a file in a private local directory
 * <tmpdir>/<prefix>.XXXXXX (vb_host_tmpdir) for a remote host), vb_host_stage_commit puts it at
 * path with mode (remotely over SFTP, refusing to overwrite), unless keep is false, and frees
 * *local and removes what staging made here in both cases (locally a file not kept stays: the
 * caller removes its own partial files). */
int vb_host_stage_open(struct vb_host *h, const char *prefix, const char *path, char **local,
                       struct vb_error *err);
int vb_host_stage_commit(struct vb_host *h, char *local, const char *path, mode_t mode, bool keep,
                         struct vb_error *err);

/* Where an NBD server on this host is reached: a unix socket here (socket, which the caller
 * chose), TCP at the host's NBD address and port + port_offset for a remote host (with its
 * TLS credentials when --tls was given). t's strings are borrowed from socket and h. */
void vb_host_nbd_listen(const struct vb_host *h, const char *socket, int port_offset,
                        struct vb_nbd_target *t);

/* The two implementations (host_local.c, host_ssh.c). */
extern const struct vb_host_ops vb_host_local_ops;
extern const struct vb_host_ops vb_host_ssh_ops;

#endif
