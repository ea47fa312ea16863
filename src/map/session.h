/* One run of virtmap: plan the disks, open the exports, listen, attach devices, boot,
 * announce readiness, serve until a signal or the --run command ends, then tear everything
 * down in reverse order. */
#ifndef VM_SESSION_H
#define VM_SESSION_H

#include <stdbool.h>

struct map_options {
    const char *files;       /* -f FULL[,INC...] */
    const char *export_name; /* -e, with -f */
    const char *input;       /* -i DIR */
    const char *until;
    const char *listen_address, *listen_port;
    const char *socket_path;
    bool allow_remote;
    const char *device; /* -d: "none" or /dev/nbdX */
    const char *pidfile;
    const char *run;
    const char *overlay_dir;
    bool readonly;
    bool verify; /* read every file once before serving */
    bool boot, keep_nics;
    bool trust_config; /* --boot uses the backup's domain XML whole (no allow-list) */
    const char *boot_name;
    const char *uri; /* libvirt URI for --boot */
    unsigned long cache_mb;
};

/* Returns the process exit status. */
int map_session_run(const struct map_options *o);

#endif
