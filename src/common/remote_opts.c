#include "remote_opts.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "options.h"

const char vb_remote_cli_help[] =
    "      --user USER            SASL user name (qemu+tcp://, qemu+tls://)\n"
    "      --password PW          SASL password (better: --password-file FILE or the\n"
    "                             environment variable VIRTBACKUP_PASSWORD)\n"
    "      --password-file FILE   read the SASL password from the first line of FILE\n"
    "\n"
    "Remote hosts (-U qemu+ssh://user@host/system): files and commands go over SSH,\n"
    "disk data over NBD/TCP to or from the host:\n"
    "      --ssh-user USER        SSH user (default: the URI's user, else yours)\n"
    "      --ssh-port PORT        SSH port (default: the URI's port, else 22)\n"
    "      --ssh-private-key KEY  SSH key (default: the URI's keyfile=, else ~/.ssh/id_*\n"
    "                             and the agent)\n"
    "      --ssh-accept-new-key   accept and record a host key known_hosts lacks (a\n"
    "                             changed key is always refused)\n"
    "  -I, --nbd-ip ADDR          address of the host's NBD server (default: the URI's\n"
    "                             host name)\n"
    "  -P, --nbd-port PORT        its port (default 10809; offline disks use PORT,\n"
    "                             PORT+1, ...); distinct ports for parallel runs\n"
    "      --tls                  NBD over TLS; the server's certificate is verified\n"
    "      --tls-cert DIR         ca-cert.pem, client-cert.pem, client-key.pem (default\n"
    "                             /etc/pki/qemu)\n";

static char *read_password_file(const char *path)
{
    FILE *f = fopen(path, "r");
    if (!f)
        return NULL;
    char *line = NULL;
    size_t cap = 0;
    ssize_t n = getline(&line, &cap, f);
    fclose(f);
    if (n < 0) {
        free(line);
        return strdup("");
    }
    line[strcspn(line, "\r\n")] = '\0';
    return line;
}

static int parse_port(const char *arg, const char *what, int *out, struct vb_error *err)
{
    long long num;
    if (!vb_opt_parse_number(arg, &num) || num < 1 || num > 65535)
        return vb_error_set(err, "invalid %s '%s' (1-65535)", what, arg);
    *out = (int)num;
    return 1;
}

int vb_remote_cli_option(struct vb_remote_cli *cli, int c, const char *arg, struct vb_error *err)
{
    struct vb_remote_opts *r = &cli->remote;
    switch (c) {
    case VB_OPT_USER:
        cli->user = arg;
        return 1;
    case VB_OPT_PASSWORD:
    case VB_OPT_PASSWORD_FILE: {
        char *pw = c == VB_OPT_PASSWORD ? strdup(arg) : read_password_file(arg);
        if (!pw)
            return vb_error_errno(err, "cannot read password file '%s'", arg);
        free(cli->password);
        cli->password = pw;
        return 1;
    }
    case VB_OPT_SSH_USER:
        r->ssh_user = arg;
        return 1;
    case VB_OPT_SSH_PORT:
        return parse_port(arg, "SSH port", &r->ssh_port, err);
    case VB_OPT_SSH_KEY:
        r->ssh_key = arg;
        return 1;
    case VB_OPT_SSH_ACCEPT:
        r->ssh_accept_new_key = true;
        return 1;
    case 'P':
        return parse_port(arg, "NBD port", &r->nbd_port, err);
    case 'I':
        r->nbd_ip = arg;
        return 1;
    case VB_OPT_TLS:
        r->tls = true;
        return 1;
    case VB_OPT_TLS_CERT:
        r->tls_cert = arg;
        return 1;
    default:
        return 0;
    }
}

void vb_remote_cli_finish(struct vb_remote_cli *cli, int argc, char **argv, const char *uri,
                          char *env_password, const char *tmpdir)
{
    vb_opt_scrub(argc, argv, "password");
    if (env_password && !cli->password) {
        cli->password = env_password;
    } else if (env_password) { /* an option's password wins */
        memset(env_password, 0, strlen(env_password));
        free(env_password);
    }
    cli->remote.uri = uri;
    cli->remote.tmpdir = tmpdir;
}

void vb_remote_cli_free(struct vb_remote_cli *cli)
{
    if (cli->password) {
        memset(cli->password, 0, strlen(cli->password));
        free(cli->password);
    }
    cli->password = NULL;
}
