/* The remote option group virtbackup and virtrestore share (virtbackup(1), "Remote hosts"): SASL
 * credentials, SSH, the NBD address and port, TLS. One parser, so both tools accept and
 * check them alike. */
#ifndef VB_REMOTE_OPTS_H
#define VB_REMOTE_OPTS_H

#include <getopt.h>

#include "error.h"
#include "remote.h"

enum {
    VB_OPT_USER = 1000,
    VB_OPT_PASSWORD,
    VB_OPT_PASSWORD_FILE,
    VB_OPT_SSH_USER,
    VB_OPT_SSH_PORT,
    VB_OPT_SSH_KEY,
    VB_OPT_SSH_ACCEPT,
    VB_OPT_TLS,
    VB_OPT_TLS_CERT,
};

/* getopt_long entries of the group ('P' and 'I' are also short options). */
#define VB_REMOTE_LONG_OPTIONS                                                                     \
    {"user", required_argument, NULL, VB_OPT_USER},                                                \
        {"password", required_argument, NULL, VB_OPT_PASSWORD},                                    \
        {"password-file", required_argument, NULL, VB_OPT_PASSWORD_FILE},                          \
        {"ssh-user", required_argument, NULL, VB_OPT_SSH_USER},                                    \
        {"ssh-port", required_argument, NULL, VB_OPT_SSH_PORT},                                    \
        {"ssh-private-key", required_argument, NULL, VB_OPT_SSH_KEY},                              \
        {"ssh-accept-new-key", no_argument, NULL, VB_OPT_SSH_ACCEPT},                              \
        {"nbd-port", required_argument, NULL, 'P'}, {"nbd-ip", required_argument, NULL, 'I'},      \
        {"tls", no_argument, NULL, VB_OPT_TLS},                                                    \
    {                                                                                              \
        "tls-cert", required_argument, NULL, VB_OPT_TLS_CERT                                       \
    }

struct vb_remote_cli {
    struct vb_remote_opts remote;
    const char *user;
    char *password; /* malloc'ed copy: the argv original is scrubbed */
};

/* 1: c was an option of the group and is stored; 0: not one of ours; -1: bad value (err). */
int vb_remote_cli_option(struct vb_remote_cli *cli, int c, const char *arg, struct vb_error *err);

/* After parsing, before any child process is started: scrubs --password from argv, takes
 * env_password (VIRTBACKUP_PASSWORD as vb_env_take_secret returned it: owned, may be NULL)
 * if no password was given, and records the URI and tmpdir ($TMPDIR, may be NULL). */
void vb_remote_cli_finish(struct vb_remote_cli *cli, int argc, char **argv, const char *uri,
                          char *env_password, const char *tmpdir);
void vb_remote_cli_free(struct vb_remote_cli *cli);

/* The --help text of the group. */
extern const char vb_remote_cli_help[];

#endif
