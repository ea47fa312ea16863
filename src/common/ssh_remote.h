/* The remote host of a qemu+ssh:// libvirt URI, reached with libssh: commands (qemu-img,
 * qemu-nbd) run through the remote user's shell with every argument quoted, and files
 * (loader, nvram, kernel, initrd, restored images' companions) moved over SFTP. No ssh
 * subprocess is involved. Host keys are checked against known_hosts; a key the file does not
 * know is accepted (and recorded) only when the caller asks for it.
 *
 * Threads: libssh sessions are independent, so each thread may open its own vb_ssh; one
 * vb_ssh must never be used by two threads at once (no locking inside). No passwords are
 * handled here and no key material is logged (only a host key's SHA256 fingerprint). */
#ifndef VB_SSH_REMOTE_H
#define VB_SSH_REMOTE_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include "error.h"

struct vb_ssh_opts {
    const char *host;         /* name or address (required) */
    int port;                 /* 0: 22 */
    const char *user;         /* NULL: the current user */
    const char *private_key;  /* NULL: the usual identities (~/.ssh/id_*) and the agent */
    const char *known_hosts;  /* NULL: ~/.ssh/known_hosts */
    bool accept_new_host_key; /* an unknown host key is accepted and recorded */
};

struct vb_ssh;

/* Connects, verifies the host key and authenticates with public keys. Errors name the
 * host:port and what to fix ("does not resolve", "connection refused", "host key for ... is
 * not in known_hosts", "host key CHANGED", "authentication as USER failed"). Every address
 * of the host is tried, 10 s each; the SSH handshake has 10 s too. ~/.ssh/config is not
 * read. A CHANGED key is refused even with accept_new_host_key. */
struct vb_ssh *vb_ssh_open(const struct vb_ssh_opts *opts, struct vb_error *err);
void vb_ssh_close(struct vb_ssh *s);
const char *vb_ssh_host(const struct vb_ssh *s);

/* Quotes one argument for a POSIX shell ('...' with embedded ' as '\''). Malloc'ed. */
char *vb_shell_quote(const char *arg);

/* Runs argv (NULL-terminated) on the remote host, each argument quoted (the remote user's
 * shell must be a POSIX shell). The command's stdin is at end-of-file. The remote
 * command's stdout is returned in *out (malloc'ed, NUL-terminated; out may be NULL; at most
 * 256 MiB), *out is NULL on failure. Fails when it cannot run or exits non-zero, naming
 * argv[0], the exit status and the first line of its stderr:
 * "ARGV0 on HOST failed (exit N): LINE". */
int vb_ssh_run(struct vb_ssh *s, char *const argv[], char **out, size_t *outlen,
               struct vb_error *err);

/* SFTP (one SFTP session per vb_ssh, opened on first use). Remote paths are absolute.
 * Downloads a regular file through <local>.partial (fsync, rename; removed on failure);
 * an existing local file is replaced. The local file gets the remote permission bits less
 * the umask. */
int vb_ssh_get(struct vb_ssh *s, const char *remote, const char *local, struct vb_error *err);
/* Uploads through <remote>.partial then rename; mode as the new file's permissions (set
 * exactly, whatever the server's umask). Refuses, naming it, when remote already exists
 * (checked before; OpenSSH's SFTP rename does not replace a file either). */
int vb_ssh_put(struct vb_ssh *s, const char *local, const char *remote, mode_t mode,
               struct vb_error *err);
/* 1 if the remote path exists, 0 if not, -1 on error. */
int vb_ssh_exists(struct vb_ssh *s, const char *remote, struct vb_error *err);
/* Fails if it exists. mode is set exactly. */
int vb_ssh_mkdir(struct vb_ssh *s, const char *remote, mode_t mode, struct vb_error *err);
/* mkdtemp on the remote host: template ends in XXXXXX, replaced in place (random
 * [A-Za-z0-9], retried while the name exists); created 0700, then set to mode. */
int vb_ssh_mkdtemp(struct vb_ssh *s, char *template_path, mode_t mode, struct vb_error *err);
int vb_ssh_chown(struct vb_ssh *s, const char *remote, int uid, int gid, struct vb_error *err);
/* Removes a directory and the files in it: every entry that is not a directory is
 * unlinked (not recursive: a subdirectory makes the final rmdir fail). */
int vb_ssh_rmdir_files(struct vb_ssh *s, const char *remote, struct vb_error *err);
int vb_ssh_unlink(struct vb_ssh *s, const char *remote, struct vb_error *err);

#endif
