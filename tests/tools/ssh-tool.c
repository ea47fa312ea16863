/* ssh-tool: a command line over src/common/ssh_remote (libssh) for the integration tests.
 *
 *   ssh-tool [--port N] [--user U] [--key F] [--known-hosts F] [--accept-new] HOST CMD ...
 *     run ARG...            runs ARG... remotely (each argument quoted); copies its stdout
 *     get REMOTE LOCAL      SFTP download (through LOCAL.partial)
 *     put [--mode OCTAL] LOCAL REMOTE   SFTP upload (through REMOTE.partial; default mode 0644)
 *     exists PATH           prints "yes" or "no"
 *     mkdtemp TEMPLATE      creates a directory from TEMPLATE (ends in XXXXXX), prints its path
 *     rmdir PATH            removes the directory and the files in it
 *     unlink PATH           removes one file
 *
 * Errors: "ssh-tool: <message>" on stderr, exit 1. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libssh/libssh.h>

#include "log.h"
#include "ssh_remote.h"

static void usage(void)
{
    fprintf(stderr, "usage: ssh-tool [--port N] [--user U] [--key F] [--known-hosts F] "
                    "[--accept-new] HOST run ARG... | get REMOTE LOCAL | put [--mode OCTAL] "
                    "LOCAL REMOTE | exists PATH | mkdtemp TEMPLATE | rmdir PATH | unlink PATH\n");
    exit(1);
}

static void need_args(int have, int want, const char *cmd)
{
    if (have != want) {
        fprintf(stderr, "ssh-tool: %s takes %d argument%s\n", cmd, want, want == 1 ? "" : "s");
        usage();
    }
}

static int run_command(struct vb_ssh *s, const char *cmd, int argc, char **argv,
                       struct vb_error *err)
{
    if (strcmp(cmd, "run") == 0) {
        if (argc < 1)
            usage();
        char *out = NULL;
        size_t len = 0;
        if (vb_ssh_run(s, argv, &out, &len, err) < 0)
            return -1;
        fwrite(out, 1, len, stdout);
        free(out);
        return 0;
    }
    if (strcmp(cmd, "get") == 0) {
        need_args(argc, 2, cmd);
        return vb_ssh_get(s, argv[0], argv[1], err);
    }
    if (strcmp(cmd, "put") == 0) {
        mode_t mode = 0644;
        if (argc >= 2 && strcmp(argv[0], "--mode") == 0) {
            char *end;
            unsigned long m = strtoul(argv[1], &end, 8);
            if (*end || m > 07777)
                return vb_error_set(err, "invalid mode '%s'", argv[1]);
            mode = (mode_t)m;
            argc -= 2;
            argv += 2;
        }
        need_args(argc, 2, cmd);
        return vb_ssh_put(s, argv[0], argv[1], mode, err);
    }
    if (strcmp(cmd, "exists") == 0) {
        need_args(argc, 1, cmd);
        int r = vb_ssh_exists(s, argv[0], err);
        if (r < 0)
            return -1;
        puts(r ? "yes" : "no");
        return 0;
    }
    if (strcmp(cmd, "mkdtemp") == 0) {
        need_args(argc, 1, cmd);
        char *t = strdup(argv[0]);
        if (!t)
            return vb_error_set(err, "out of memory");
        int r = vb_ssh_mkdtemp(s, t, 0700, err);
        if (r == 0)
            puts(t);
        free(t);
        return r;
    }
    if (strcmp(cmd, "rmdir") == 0) {
        need_args(argc, 1, cmd);
        return vb_ssh_rmdir_files(s, argv[0], err);
    }
    if (strcmp(cmd, "unlink") == 0) {
        need_args(argc, 1, cmd);
        return vb_ssh_unlink(s, argv[0], err);
    }
    fprintf(stderr, "ssh-tool: unknown command '%s'\n", cmd);
    usage();
    return -1;
}

int main(int argc, char **argv)
{
    struct vb_ssh_opts o = {0};
    int i = 1;
    for (; i < argc && strncmp(argv[i], "--", 2) == 0; i++) {
        const char *a = argv[i];
        if (strcmp(a, "--accept-new") == 0) {
            o.accept_new_host_key = true;
            continue;
        }
        if (i + 1 >= argc)
            usage();
        const char *v = argv[++i];
        if (strcmp(a, "--port") == 0) {
            char *end;
            long p = strtol(v, &end, 10);
            if (*end || p < 1 || p > 65535) {
                fprintf(stderr, "ssh-tool: invalid port '%s'\n", v);
                return 1;
            }
            o.port = (int)p;
        } else if (strcmp(a, "--user") == 0) {
            o.user = v;
        } else if (strcmp(a, "--key") == 0) {
            o.private_key = v;
        } else if (strcmp(a, "--known-hosts") == 0) {
            o.known_hosts = v;
        } else {
            fprintf(stderr, "ssh-tool: unknown option '%s'\n", a);
            usage();
        }
    }
    if (argc - i < 2)
        usage();
    o.host = argv[i];
    const char *cmd = argv[i + 1];

    vb_log_init("ssh-tool", getenv("SSH_TOOL_DEBUG") != NULL, false);
    struct vb_error err = {0};
    int rc = 1;
    struct vb_ssh *s = vb_ssh_open(&o, &err);
    if (s) {
        rc = run_command(s, cmd, argc - i - 2, argv + i + 2, &err) == 0 ? 0 : 1;
        vb_ssh_close(s);
    }
    if (rc)
        fprintf(stderr, "ssh-tool: %s\n", err.msg);
    if (fflush(stdout) != 0) {
        perror("ssh-tool: stdout");
        rc = 1;
    }
    ssh_finalize();
    return rc;
}
