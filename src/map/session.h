/* One run of virtmap: plan the disks, open the exports, listen, attach devices, boot,
 * announce readiness, serve until a signal or the --run command ends, then tear everything
 * down in reverse order. */
#ifndef VM_SESSION_H
#define VM_SESSION_H

#include <stdbool.h>

struct map_options {
    const char *files;       /* -f FULL[,INC...] */
    const char *export_name; /* -e, with -f */
    const char *input;       /* -i DIR or REPO */
    bool repository;         /* the input is a repository (repo_is_repository) */
    const char *vm;          /* --vm, with a repository */
    const char *snapshot;    /* --snapshot ID|latest, with a repository */
    /* an encrypted repository's key file (--key, VIRTBACKUP_KEY_FILE) and its passphrase
     * (VIRTBACKUP_KEY_PASSPHRASE; NULL: asked on the terminal when needed) */
    const char *key_file, *key_passphrase;
    const char *until;
    const char *listen_address, *listen_port;
    bool listen_tcp; /* -l or -p given: TCP instead of the private unix socket */
    const char *socket_path;
    const char *private_socket_dir; /* mkdtemp template of the default socket's directory */
    bool allow_remote;
    unsigned max_connections;      /* network clients at once */
    unsigned handshake_timeout_ms; /* for a client's whole handshake */
    const char *tls_creds;         /* x509 directory, or */
    const char *tls_psk;           /* PSK file: TLS required of every client */
    bool tls_verify_peer;          /* x509: client certificates checked against the CA */
    const char *device;            /* -d: "none" or /dev/nbdX */
    const char *pidfile;
    const char *run;
    const char *overlay_dir;
    bool readonly;
    bool verify; /* read every file once before serving */
    bool boot, keep_nics;
    bool trust_config; /* --boot uses the backup's domain XML whole (no allow-list) */
    const char *boot_name;
    const char *uri;         /* libvirt URI for --boot */
    const char *console_log; /* --boot: the VM's serial console also goes to this file */
    unsigned long cache_mb;
    unsigned threads;   /* read-ahead workers of a repository input */
    const char *tmpdir; /* $TMPDIR: where the overlay's temporary directory goes */
};

/* Returns the process exit status. */
int map_session_run(const struct map_options *o);

#endif
