/* virtrestore's options and the entry points of its actions. */
#ifndef VR_RESTORE_H
#define VR_RESTORE_H

#include <signal.h>
#include <stdbool.h>
#include <stddef.h>

#include "input.h"
#include "summary.h"

struct restore_opts {
    const char *input;
    const char *output;
    const char *until;
    const char *sequence; /* comma list of data files */
    const char *disk;     /* only this target dev */
    const char *socketfile;
    const char *config_file; /* name of the written config, default vmconfig.xml */
    const char *name;        /* new domain name */
    const char *uri;         /* libvirt URI for -D */
    const char *json;        /* --json: NULL none, "-" stdout, else a file */
    const char *logfile;
    bool noprogress, raw, adjust_config, define, preallocate, compress, verbose;
    long buffsize;
    int connections; /* NBD connections per disk */
    int decoders;    /* decoder threads */
};

extern volatile sig_atomic_t restore_stop;

/* Each returns 0 on success, -1 if anything failed (already logged). */
int restore_dump(const struct restore_opts *o, struct restore_input *in);
int restore_verify(const struct restore_opts *o, struct restore_input *in);
int restore_run(const struct restore_opts *o, struct restore_input *in, struct summary *sum);

#endif
