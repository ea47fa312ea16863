/* virtrestore: restore, dump or verify backups made by virtbackup or virtnbdbackup.
 * This file holds the option table, the help, and the dispatch; each action is in its own
 * file (restore.c, dump.c, verify.c). Only main decides the exit status. */
#include <getopt.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "env_knobs.h"
#include "keyfile.h"
#include "log.h"
#include "logfile.h"
#include "options.h"
#include "remote_opts.h"
#include "repo.h"
#include "restore.h"
#include "summary.h"

#define USAGE                                                                                      \
    "usage: virtrestore [-h] [-a {dump,restore,verify}] -i INPUT -o OUTPUT [-u UNTIL]\n"           \
    "                   [-s SEQUENCE] [-d DISK] [-n] [-f SOCKETFILE] [-r] [-c] [-D]\n"             \
    "                   [-C CONFIG_FILE] [-N NAME] [-B BUFFSIZE] [-A] [--compress]\n"              \
    "                   [-U URI] [-L LOGFILE] [--nocolor] [-v] [-V] [--json[=FILE]]\n"             \
    "                   [--user USER] [--password-file FILE] [--ssh-user USER]\n"                  \
    "                   [--ssh-port PORT] [--ssh-private-key KEY] [-P PORT] [-I ADDR]\n"           \
    "                   [--tls] [--tls-cert DIR] [--trust-config]\n"                               \
    "                   [--vm NAME] [--snapshot ID|latest]\n"

enum {
    OPT_COMPRESS = 256,
    OPT_NOCOLOR,
    OPT_JSON,
    OPT_CONNECTIONS,
    OPT_THREADS,
    OPT_TRUST_CONFIG,
    OPT_VM,
    OPT_SNAPSHOT,
    OPT_KEY
};

static const struct option long_opts[] = {
    {"action", required_argument, NULL, 'a'},
    {"input", required_argument, NULL, 'i'},
    {"output", required_argument, NULL, 'o'},
    {"until", required_argument, NULL, 'u'},
    {"sequence", required_argument, NULL, 's'},
    {"disk", required_argument, NULL, 'd'},
    {"noprogress", no_argument, NULL, 'n'},
    {"socketfile", required_argument, NULL, 'f'},
    {"raw", no_argument, NULL, 'r'},
    {"adjust-config", no_argument, NULL, 'c'},
    {"define", no_argument, NULL, 'D'},
    {"trust-config", no_argument, NULL, OPT_TRUST_CONFIG},
    {"config-file", required_argument, NULL, 'C'},
    {"name", required_argument, NULL, 'N'},
    {"buffsize", required_argument, NULL, 'B'},
    {"preallocate", no_argument, NULL, 'A'},
    {"compress", no_argument, NULL, OPT_COMPRESS},
    {"uri", required_argument, NULL, 'U'},
    {"logfile", required_argument, NULL, 'L'},
    {"nocolor", no_argument, NULL, OPT_NOCOLOR},
    {"verbose", no_argument, NULL, 'v'},
    {"version", no_argument, NULL, 'V'},
    {"json", optional_argument, NULL, OPT_JSON},
    {"nbd-connections", required_argument, NULL, OPT_CONNECTIONS},
    {"threads", required_argument, NULL, OPT_THREADS},
    {"help", no_argument, NULL, 'h'},
    {"vm", required_argument, NULL, OPT_VM},
    {"snapshot", required_argument, NULL, OPT_SNAPSHOT},
    {"key", required_argument, NULL, OPT_KEY},
    VB_REMOTE_LONG_OPTIONS,
    {0},
};

static void help(void)
{
    printf(USAGE
           "\n"
           "Restore, dump or verify a backup made by virtbackup or virtnbdbackup.\n"
           "\n"
           "Actions (-a ACTION, or -o dump / -o verify):\n"
           "  restore  (default) restore every disk to a new qcow2 image in OUTPUT, at the\n"
           "           latest point of the chain or at --until; the chain order comes from\n"
           "           the files' metadata, never from modification times\n"
           "  dump     print every data file's metadata as a JSON array on stdout\n"
           "  verify   check every data file: adler32 against its .chksum when there is one,\n"
           "           and always every frame and every LZ4 checksum; one line per file\n"
           "\n"
           "Options:\n"
           "  -i, --input INPUT       backup directory, a zip file made by 'virtbackup -o -',\n"
           "                          a comma list of such zip files (full first), or a\n"
           "                          repository (virtrepo init)\n"
           "  -o, --output OUTPUT     restore directory (created if missing); 'dump' and\n"
           "                          'verify' select those actions\n"
           "  -u, --until NAME        restore up to and including checkpoint NAME\n"
           "                          (e.g. virtnbdbackup.2); diffs are not applied; for a\n"
           "                          repository also a local time ('2026-12-01 03:00[:SS]'\n"
           "                          or ISO 8601 with offset): the newest snapshot at or\n"
           "                          before it\n"
           "      --vm NAME           repository: the VM (name or uuid); needed only when\n"
           "                          the repository holds several\n"
           "      --snapshot ID       repository: this snapshot, or 'latest' (the default)\n"
           "      --key FILE          an encrypted repository's key (or VIRTBACKUP_KEY_FILE)\n"
           "  -s, --sequence F1,F2..  apply exactly these data files in this order (the first\n"
           "                          a full or copy); the image is OUTPUT/<disk>; no config\n"
           "  -d, --disk DISK         only this disk (target dev, e.g. vda)\n"
           "  -n, --noprogress        no progress output\n"
           "  -f, --socketfile PATH   socket of the private qemu-nbd (default: in a private\n"
           "                          temporary directory)\n"
           "  -r, --raw               also copy raw disk images (skipped otherwise)\n"
           "  -c, --adjust-config     rewrite the domain config for the restored VM: name\n"
           "                          restore_<name> (or -N), no uuid, disks at the restored\n"
           "                          images, no backing stores, cdrom/floppy and unrestored\n"
           "                          disks removed, loader/nvram/kernel/initrd at the copies\n"
           "                          restored next to the images\n"
           "  -D, --define            define the restored domain in libvirt (implies -c);\n"
           "                          autostart if the backup recorded it\n"
           "                          (-c/-D keep only what a VM needs from the backup's\n"
           "                          config: no host devices, filesystems, host files,\n"
           "                          emulator or qemu:commandline; each drop is logged)\n"
           "      --trust-config      -c/-D: keep the backup's config whole (only for a\n"
           "                          backup you trust: it can name any host resource)\n"
           "  -C, --config-file NAME  name of the written config (default vmconfig.xml)\n"
           "  -N, --name NAME         domain name for -c/-D\n"
           "  -B, --buffsize BYTES    read size of verify (default 1 MiB)\n"
           "  -A, --preallocate       create images fully preallocated\n"
           "      --compress          write qcow2-compressed clusters (qemu-nbd compress)\n"
           "  -U, --uri URI           libvirt URI for -D (default qemu:///system); a remote\n"
           "                          URI (qemu+ssh://host/system) restores on that host:\n"
           "                          OUTPUT is a directory there, images are written\n"
           "                          through a qemu-nbd started there over SSH\n"
           "  -L, --logfile FILE      also write the log to FILE\n"
           "      --nocolor           accepted for compatibility (output is never colored)\n"
           "  -v, --verbose           debug messages\n"
           "  -V, --version           print 'virtrestore <version>' and exit\n"
           "      --json[=FILE]       a JSON summary of the run on stdout (or in FILE)\n"
           "      --nbd-connections N NBD connections per disk (default 4)\n"
           "      --threads N         read/decompress threads (default: CPUs, at least 4)\n"
           "  -h, --help              this help\n"
           "\n"
           "Connection (as virtbackup):\n"
           "%s"
           "\n"
           "Images are OUTPUT/<basename of the disk's source path> (OUTPUT/<disk> with -s).\n"
           "Existing files are never overwritten. An image is written as <image>.partial and\n"
           "renamed only when complete; a failed or interrupted restore leaves no image\n"
           "behind. A .partial left by a killed run stops the next run until removed.\n"
           "\n"
           "Examples:\n"
           "  virtrestore -i /backup/vm1 -o /restore              latest point\n"
           "  virtrestore -i /backup/vm1 -o /restore -u virtnbdbackup.1\n"
           "  virtrestore -i /backup/vm1 -o /restore -cD -N vm1-copy\n"
           "  virtrestore -i full.zip,inc1.zip -o /restore\n"
           "  virtrestore -i /backup/vm1 -o verify\n"
           "  virtrestore -i /backup/repo --vm vm1 -u '2026-12-01 03:00' -o /restore\n"
           "\n"
           "Exit status: 0 success; 1 any error (also if only one disk failed) or SIGINT,\n"
           "SIGTERM, SIGHUP.\n",
           vb_remote_cli_help);
}

#define usage_error(...) vb_opt_usage_error("virtrestore", USAGE, __VA_ARGS__)

static void on_signal(int sig)
{
    restore_stop = sig; /* named in the error message */
}

enum action { ACTION_RESTORE, ACTION_DUMP, ACTION_VERIFY };

static int parse_action(const char *s, enum action *a)
{
    if (strcmp(s, "restore") == 0)
        *a = ACTION_RESTORE;
    else if (strcmp(s, "dump") == 0)
        *a = ACTION_DUMP;
    else if (strcmp(s, "verify") == 0)
        *a = ACTION_VERIFY;
    else
        return -1;
    return 0;
}

int main(int argc, char **argv)
{
    struct restore_opts o = {.buffsize = 0};
    enum action action = ACTION_RESTORE;
    bool want_json = false;
    struct vb_remote_cli cli = {0};
    int c;
    opterr = 0;
    while ((c = getopt_long(argc, argv, ":a:i:o:u:s:d:nf:rcDC:N:B:AU:L:vVhP:I:", long_opts,
                            NULL)) != -1) {
        long long num;
        switch (c) {
        case 'a':
            if (parse_action(optarg, &action) < 0)
                return usage_error("-a/--action: invalid choice '%s' (restore, dump, verify)",
                                   optarg);
            break;
        case 'i':
            o.input = optarg;
            break;
        case 'o':
            o.output = optarg;
            break;
        case 'u':
            o.until = optarg;
            break;
        case 's':
            o.sequence = optarg;
            break;
        case 'd':
            o.disk = optarg;
            break;
        case 'n':
            o.noprogress = true;
            break;
        case 'f':
            o.socketfile = optarg;
            break;
        case 'r':
            o.raw = true;
            break;
        case 'c':
            o.adjust_config = true;
            break;
        case 'D':
            o.define = o.adjust_config = true;
            break;
        case OPT_TRUST_CONFIG:
            o.trust_config = true;
            break;
        case 'C':
            if (!*optarg || strchr(optarg, '/'))
                return usage_error("-C/--config-file: '%s' must be a plain file name", optarg);
            o.config_file = optarg;
            break;
        case 'N':
            o.name = optarg;
            break;
        case 'B':
            if (!vb_opt_parse_number(optarg, &num) || num < 512 || num > (1 << 30))
                return usage_error("-B/--buffsize: invalid value '%s' (512 .. 1073741824)", optarg);
            o.buffsize = (long)num;
            break;
        case 'A':
            o.preallocate = true;
            break;
        case OPT_COMPRESS:
            o.compress = true;
            break;
        case 'U':
            o.uri = optarg;
            break;
        case 'L':
            o.logfile = optarg;
            break;
        case OPT_NOCOLOR:
            break;
        case 'v':
            o.verbose = true;
            break;
        case 'V':
            printf("virtrestore %s\n", VB_VERSION);
            return 0;
        case OPT_JSON:
            want_json = true;
            o.json = optarg ? optarg : "-";
            break;
        case OPT_CONNECTIONS:
            if (!vb_opt_parse_number(optarg, &num) || num < 1 || num > 16)
                return usage_error("--nbd-connections: invalid value '%s' (1 .. 16)", optarg);
            o.connections = (int)num;
            break;
        case OPT_THREADS:
            if (!vb_opt_parse_number(optarg, &num) || num < 1 || num > 64)
                return usage_error("--threads: invalid value '%s' (1 .. 64)", optarg);
            o.decoders = (int)num;
            break;
        case OPT_VM:
            o.vm = optarg;
            break;
        case OPT_SNAPSHOT:
            o.snapshot = optarg;
            break;
        case OPT_KEY:
            o.key_file = optarg;
            break;
        case 'h':
            help();
            return 0;
        case ':':
            return usage_error("option %s needs a value", argv[optind - 1]);
        default: {
            struct vb_error e = {0};
            int mine = vb_remote_cli_option(&cli, c, optarg, &e);
            if (mine < 0)
                return usage_error("%s", e.msg);
            if (mine == 0)
                return usage_error("unknown option %s", argv[optind - 1]);
        }
        }
    }
    /* Children (qemu-img, qemu-nbd, libvirt's ssh) inherit the environment: the password
     * leaves it here, whether it is used or an option's wins. */
    vb_remote_cli_finish(&cli, argc, argv, o.uri, vb_env_take_secret("VIRTBACKUP_PASSWORD"),
                         getenv("TMPDIR"));
    o.remote = cli.remote;
    /* tuning knobs and test hooks: virtrestore(1), ENVIRONMENT */
    const char *mb = getenv("VIRTRESTORE_MEMORY_MB");
    o.memory_mb = mb && atoi(mb) > 0 ? atoi(mb) : 0;
    /* an encrypted repository's key: the passphrase leaves the environment like the password */
    if (!o.key_file)
        o.key_file = getenv("VIRTBACKUP_KEY_FILE");
    o.key_passphrase = repo_passphrase_keep(vb_env_take_secret("VIRTBACKUP_KEY_PASSPHRASE"));
#ifndef NDEBUG
    o.debug_stall = getenv("VIRTBACKUP_DEBUG_STALL");
#endif
    /* the user's malloc tuning stays in force for qemu-nbd, after ours (qemu_nbd.h) */
    o.remote.glibc_tunables = getenv("GLIBC_TUNABLES");
    o.user = cli.user;
    o.password = cli.password;
    if (optind < argc)
        return usage_error("unexpected argument '%s'", argv[optind]);
    if (o.output && (strcmp(o.output, "dump") == 0 || strcmp(o.output, "verify") == 0))
        parse_action(o.output, &action);
    if (!o.input)
        return usage_error("%s", "the option -i/--input is required");
    if (action == ACTION_RESTORE && !o.output)
        return usage_error("%s", "the option -o/--output is required");
    if (action == ACTION_DUMP && want_json && strcmp(o.json, "-") == 0)
        return usage_error("%s", "--json without FILE would mix with the dump on stdout");
    if (o.sequence && (o.adjust_config || o.until)) {
        return usage_error("%s", o.until ? "--sequence and --until exclude each other"
                                         : "--sequence restores no config: -c/-D do not apply");
    }
    if (o.trust_config && !o.adjust_config)
        return usage_error("%s", "--trust-config goes with -c/-D");
    bool is_repo = repo_is_repository(o.input);
    if (!is_repo && (o.vm || o.snapshot))
        return usage_error("%s: %s goes with a repository input", o.input,
                           o.vm ? "--vm" : "--snapshot");
    if (is_repo && o.sequence)
        return usage_error("%s: --sequence names data files; a repository has none", o.input);
    if (o.snapshot && o.until)
        return usage_error("%s", "--snapshot and --until exclude each other");
    if (o.decoders <= 0) { /* at least 4: reads of plain streams overlap better */
        long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
        o.decoders = ncpu > 4 ? (int)ncpu : 4;
    }

    vb_log_init("virtrestore", o.verbose, false);
    struct vb_error err = {0};
    if (o.logfile && logfile_start(o.logfile, &err) < 0) {
        fprintf(stderr, "virtrestore: %s\n", err.msg);
        return 1;
    }
    struct sigaction sa = {.sa_handler = on_signal};
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGHUP, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);

    struct summary *sum = summary_new("virtrestore");
    int rc = -1;
    struct vb_host host = {0};
    o.host = &host;
    struct bset *set = is_repo ? NULL : bset_open(o.input, &err);
    if (!is_repo && !set) {
        vb_error_log("%s", err.msg);
    } else if (action == ACTION_RESTORE && vb_host_open(&o.remote, &host, &err) < 0) {
        vb_error_log("%s", err.msg);
    } else if (action == ACTION_RESTORE && vb_host_is_remote(&host) && o.output[0] != '/') {
        vb_error_log("-o %s: a restore on the remote host %s needs an absolute directory", o.output,
                     host.name);
    } else if (action == ACTION_RESTORE && o.remote.tls && vb_host_is_remote(&host) &&
               vb_tls_client_dir_check(host.tls_cert, &err) < 0) {
        vb_error_log("%s", err.msg);
    } else if (is_repo && action == ACTION_DUMP) {
        rc = restore_repo_dump(&o);
    } else if (is_repo && action == ACTION_VERIFY) {
        rc = restore_repo_verify(&o);
    } else if (is_repo) {
        rc = restore_repo_run(&o, sum);
    } else if (action == ACTION_DUMP) {
        rc = restore_dump(&o, set);
    } else if (action == ACTION_VERIFY) {
        rc = restore_verify(&o, set);
    } else {
        rc = restore_run(&o, set, sum);
    }
    bset_free(set);
    vb_host_close(&host);
    vb_remote_cli_free(&cli);
    if (rc == 0 && vb_log_count(VB_LOG_ERROR) > 0)
        rc = -1; /* an error logged anywhere fails the run */
    int exit_code = rc == 0 ? 0 : 1;
    if (want_json && sum &&
        summary_write(sum, o.json, rc == 0 ? SUMMARY_OK : SUMMARY_ERROR, exit_code,
                      vb_log_count(VB_LOG_WARNING), &err) < 0) {
        vb_error_log("%s", err.msg);
        exit_code = 1;
    }
    summary_free(sum);
    logfile_stop();
    return exit_code;
}
