/* virtrestore's options and the entry points of its actions. */
#ifndef VR_RESTORE_H
#define VR_RESTORE_H

#include <signal.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "host.h"
#include "input.h"
#include "summary.h"

struct restore_opts {
    const char *input;
    const char *output;
    const char *until;
    const char *sequence; /* comma list of data files */
    const char *disk;     /* only this target dev */
    const char *socketfile;
    const char *config_file;      /* name of the written config, default vmconfig.xml */
    const char *name;             /* new domain name */
    const char *uri;              /* libvirt URI for -D; a remote one restores on that host */
    const char *user, *password;  /* SASL credentials for -D */
    struct vb_remote_opts remote; /* the remote options (SSH, NBD port/address, TLS) */
    struct vb_host *host;         /* where images are written: here or over SSH */
    const char *json;             /* --json: NULL none, "-" stdout, else a file */
    const char *logfile;
    bool noprogress, raw, adjust_config, define, preallocate, compress, verbose;
    bool trust_config; /* -c/-D keep the backup's domain XML whole (no allow-list) */
    long buffsize;
    int connections; /* NBD connections per disk */
    int decoders;    /* decoder threads */
};

extern volatile sig_atomic_t restore_stop;

/* Each returns 0 on success, -1 if anything failed (already logged). */
int restore_dump(const struct restore_opts *o, struct restore_input *in);
int restore_verify(const struct restore_opts *o, struct restore_input *in);
/* The checksum recorded in <name>.chksum: 1 found, 0 none (or the reference's "None"), -1
 * unreadable. */
int restore_read_chksum(struct restore_input *in, const char *name, uint32_t *want,
                        struct vb_error *err);
/* have, the adler32 of the whole data file name, against its .chksum. *checked is false when
 * there is no .chksum; a mismatch is an error naming the file. */
int restore_match_chksum(struct restore_input *in, const char *name, uint32_t have, bool *checked,
                         struct vb_error *err);
/* Copies a file of the backup to the restore host (over SFTP for a remote one); with adler
 * non-NULL also its adler32, from the same reads. */
int restore_copy_to_host(const struct restore_opts *o, struct restore_input *in, const char *name,
                         const char *dest, mode_t mode, uint32_t *adler, struct vb_error *err);
int restore_run(const struct restore_opts *o, struct restore_input *in, struct summary *sum);

#endif
