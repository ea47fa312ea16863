/* virtmap: expose any point of a backup chain as NBD exports (and kernel devices), with a
 * copy-on-write overlay, for single-file restore and instant boot. This file holds the
 * option table, the help, and the checks between options; session.c does the work. Only
 * main decides the exit status. */
#include <getopt.h>
#include <malloc.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "env_knobs.h"
#include "keyfile.h"
#include "log.h"
#include "nbd_proto.h"
#include "nbd_server.h"
#include "options.h"
#include "repo.h"
#include "session.h"

#define USAGE                                                                                      \
    "usage: virtmap (-f FULL[,INC...] [-e NAME] | -i INPUT [--until NAME]\n"                       \
    "                | -i REPO [--vm NAME] [--snapshot ID|latest | --until TIME])\n"               \
    "               [--socket PATH | [-l ADDRESS] [-p PORT] [--allow-remote]]\n"                   \
    "               [--tls-creds DIR [--tls-no-verify-peer] | --tls-psk FILE]\n"                   \
    "               [--max-connections N] [--handshake-timeout SEC]\n"                             \
    "               [-d DEVICE|auto|none] [--pidfile FILE] [--run CMD] [--overlay DIR] [-r]\n"     \
    "               [--verify]\n"                                                                  \
    "               [--boot [--name NAME] [--keep-nics] [--trust-config] [--console-log FILE]\n"   \
    "                       [-U URI]]\n"                                                           \
    "               [-L LOGFILE] [-v] [-q] [-V]\n"

enum {
    OPT_UNTIL = 256,
    OPT_SOCKET,
    OPT_ALLOW_REMOTE,
    OPT_PIDFILE,
    OPT_RUN,
    OPT_OVERLAY,
    OPT_BOOT,
    OPT_NAME,
    OPT_KEEP_NICS,
    OPT_TRUST_CONFIG,
    OPT_NOCOLOR,
    OPT_CACHE,
    OPT_VERIFY,
    OPT_MAX_CONN,
    OPT_HANDSHAKE_TIMEOUT,
    OPT_TLS_CREDS,
    OPT_TLS_PSK,
    OPT_TLS_NO_VERIFY,
    OPT_CONSOLE_LOG,
    OPT_VM,
    OPT_SNAPSHOT,
    OPT_KEY,
};

static const struct option long_opts[] = {
    {"file", required_argument, NULL, 'f'},
    {"export-name", required_argument, NULL, 'e'},
    {"input", required_argument, NULL, 'i'},
    {"until", required_argument, NULL, OPT_UNTIL},
    {"vm", required_argument, NULL, OPT_VM},
    {"snapshot", required_argument, NULL, OPT_SNAPSHOT},
    {"key", required_argument, NULL, OPT_KEY},
    {"listen-address", required_argument, NULL, 'l'},
    {"listen-port", required_argument, NULL, 'p'},
    {"socket", required_argument, NULL, OPT_SOCKET},
    {"allow-remote", no_argument, NULL, OPT_ALLOW_REMOTE},
    {"max-connections", required_argument, NULL, OPT_MAX_CONN},
    {"handshake-timeout", required_argument, NULL, OPT_HANDSHAKE_TIMEOUT},
    {"tls-creds", required_argument, NULL, OPT_TLS_CREDS},
    {"tls-psk", required_argument, NULL, OPT_TLS_PSK},
    {"tls-no-verify-peer", no_argument, NULL, OPT_TLS_NO_VERIFY},
    {"device", required_argument, NULL, 'd'},
    {"pidfile", required_argument, NULL, OPT_PIDFILE},
    {"run", required_argument, NULL, OPT_RUN},
    {"overlay", required_argument, NULL, OPT_OVERLAY},
    {"readonly", no_argument, NULL, 'r'},
    {"boot", no_argument, NULL, OPT_BOOT},
    {"name", required_argument, NULL, OPT_NAME},
    {"keep-nics", no_argument, NULL, OPT_KEEP_NICS},
    {"trust-config", no_argument, NULL, OPT_TRUST_CONFIG},
    {"console-log", required_argument, NULL, OPT_CONSOLE_LOG},
    {"uri", required_argument, NULL, 'U'},
    {"cache-size", required_argument, NULL, OPT_CACHE},
    {"verify", no_argument, NULL, OPT_VERIFY},
    {"blocksize", required_argument, NULL, 'b'},
    {"threads", required_argument, NULL, 't'},
    {"noprogress", no_argument, NULL, 'n'},
    {"logfile", required_argument, NULL, 'L'},
    {"nocolor", no_argument, NULL, OPT_NOCOLOR},
    {"hexdump", no_argument, NULL, 'H'},
    {"verbose", no_argument, NULL, 'v'},
    {"quiet", no_argument, NULL, 'q'},
    {"version", no_argument, NULL, 'V'},
    {"help", no_argument, NULL, 'h'},
    {0},
};

static void help(void)
{
    printf(USAGE
           "\n"
           "Serve a backup chain made by virtbackup or virtnbdbackup over NBD, without\n"
           "restoring it: for single-file restore and for booting the VM from its backup.\n"
           "\n"
           "  -f, --file FULL[,INC...]  one disk: a full (or copy) file and incrementals\n"
           "  -e, --export-name NAME    export name with -f (default: sda)\n"
           "  -i, --input INPUT         every disk of a backup, named by target: a backup\n"
           "                            directory, a zip file made by 'virtbackup -o -',\n"
           "                            a comma list of such zip files (full first),\n"
           "                            or a repository (every disk of one snapshot)\n"
           "      --until NAME          with -i: the point in time (a checkpoint name; of a\n"
           "                            repository: the last snapshot at or before TIME)\n"
           "      --vm NAME             with -i REPO: the VM (name or uuid) whose snapshot\n"
           "                            to serve (needed when the repository holds several)\n"
           "      --snapshot ID|latest  with -i REPO: the snapshot (default: latest)\n"
           "      --key FILE            an encrypted repository's key (or VIRTBACKUP_KEY_FILE)\n"
           "      --socket PATH         listen on this unix socket (default: a socket only\n"
           "                            your user can use, in a private runtime directory)\n"
           "  -l, --listen-address ADDR listen on TCP instead (default address 127.0.0.1:\n"
           "                            every local user can connect)\n"
           "  -p, --listen-port PORT    listen on TCP, this port (default 10809; 0: any)\n"
           "      --allow-remote        allow a non-loopback listen address (needs TLS)\n"
           "      --tls-creds DIR       require TLS: x509 ca-cert.pem, server-cert.pem,\n"
           "                            server-key.pem [ca-crl.pem]; clients need a\n"
           "                            certificate signed by the CA\n"
           "      --tls-no-verify-peer  with --tls-creds: no client certificate needed\n"
           "      --tls-psk FILE        require TLS with pre-shared keys (username:hexkey)\n"
           "      --max-connections N   clients served at once, more are refused (32)\n"
           "      --handshake-timeout SEC  time a client has to choose an export (30)\n"
           "  -d, --device DEV|auto|none\n"
           "                            attach to the kernel NBD client (default: /dev/nbd0,\n"
           "                            further disks of -i on the following devices; auto:\n"
           "                            the first free ones); a device in use is refused\n"
           "      --pidfile FILE        write the process id once serving\n"
           "      --run CMD             run CMD (sh -c) with $uri and $nbd set once serving,\n"
           "                            stop when it exits and return its exit status\n"
           "      --overlay DIR         keep writes in DIR (default: a temporary directory\n"
           "                            removed at exit); reused by later runs\n"
           "  -r, --readonly            refuse writes (EPERM)\n"
           "      --verify              read every file once before serving: LZ4 checksums\n"
           "                            and the adler32 of its .chksum (structure is always\n"
           "                            checked; a flipped byte in uncompressed data is not);\n"
           "                            of a repository: every chunk against its digest\n"
           "      --boot                start a transient VM from the backup's vmconfig\n"
           "      --name NAME           name of the booted VM (default: <vm>-virtmap)\n"
           "      --keep-nics           keep the network interfaces of the booted VM\n"
           "      --trust-config        boot the backup's config whole (default: only what a\n"
           "                            VM needs; no host devices, filesystems, host files)\n"
           "      --console-log FILE    append the booted VM's serial console to FILE\n"
           "  -U, --uri URI             libvirt URI for --boot (default: qemu:///system)\n"
           "      --cache-size MIB      decoded-block cache for compressed backups and\n"
           "                            repository chunks (256)\n"
           "  -t, --threads N           repository read-ahead workers (4)\n"
           "  -L, --logfile FILE        also log to FILE\n"
           "  -v, --verbose             debug messages\n"
           "  -q, --quiet               errors only\n"
           "  -b, -n, -H, --nocolor     accepted for compatibility with virtnbdmap (no-ops)\n"
           "  -V, --version             print the version\n");
}

#define usage_error(...) vb_opt_usage_error("virtmap", USAGE, __VA_ARGS__)

int main(int argc, char **argv)
{
    struct map_options o = {
        .export_name = NULL,
        .listen_address = "127.0.0.1",
        .listen_port = "10809",
        .device = "/dev/nbd0",
        .cache_mb = 256,
        .threads = 4,
        .max_connections = NBD_DEFAULT_MAX_CONNECTIONS,
        .handshake_timeout_ms = NBD_DEFAULT_HANDSHAKE_MS,
        .tls_verify_peer = true,
    };
    bool verbose = false, quiet = false;
    const char *threads_clamped = NULL; /* warned once logging is set up */
    const char *logfile = NULL;
    int c;
    /* The block cache's large entries (whole 32 MiB slices of linked-block frames) come and
     * go all the time. glibc raises its mmap threshold to the size of each mmap'ed block
     * freed, after which such entries come from the heap, whose freed holes it keeps: 60-75
     * MiB above --cache-size when nbdcopy read a 750 MB reference -z chain twice. A fixed
     * threshold keeps them mmap'ed, so an evicted entry goes back to the system. */
    mallopt(M_MMAP_THRESHOLD, 4 << 20);
    opterr = 0;
    while ((c = getopt_long(argc, argv, ":f:e:i:l:p:d:rU:b:t:nL:HvqVh", long_opts, NULL)) != -1) {
        long long num;
        switch (c) {
        case 'f':
            o.files = optarg;
            break;
        case 'e':
            o.export_name = optarg;
            break;
        case 'i':
            o.input = optarg;
            break;
        case OPT_UNTIL:
            o.until = optarg;
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
        case 'l':
            o.listen_address = optarg;
            o.listen_tcp = true;
            break;
        case 'p':
            if (!vb_opt_parse_number(optarg, &num) || num > 65535)
                return usage_error("bad port '%s'", optarg);
            o.listen_port = optarg;
            o.listen_tcp = true;
            break;
        case OPT_MAX_CONN:
            if (!vb_opt_parse_number(optarg, &num) || num < 1 || num > 65536)
                return usage_error("bad --max-connections '%s' (1 to 65536)", optarg);
            o.max_connections = (unsigned)num;
            break;
        case OPT_HANDSHAKE_TIMEOUT:
            if (!vb_opt_parse_number(optarg, &num) || num < 1 || num > 86400)
                return usage_error("bad --handshake-timeout '%s' (1 to 86400 seconds)", optarg);
            o.handshake_timeout_ms = (unsigned)num * 1000;
            break;
        case OPT_TLS_CREDS:
            o.tls_creds = optarg;
            break;
        case OPT_TLS_PSK:
            o.tls_psk = optarg;
            break;
        case OPT_TLS_NO_VERIFY:
            o.tls_verify_peer = false;
            break;
        case OPT_SOCKET:
            o.socket_path = optarg;
            break;
        case OPT_ALLOW_REMOTE:
            o.allow_remote = true;
            break;
        case 'd':
            o.device = optarg;
            break;
        case OPT_PIDFILE:
            o.pidfile = optarg;
            break;
        case OPT_RUN:
            o.run = optarg;
            break;
        case OPT_OVERLAY:
            o.overlay_dir = optarg;
            break;
        case 'r':
            o.readonly = true;
            break;
        case OPT_BOOT:
            o.boot = true;
            break;
        case OPT_NAME:
            o.boot_name = optarg;
            break;
        case OPT_KEEP_NICS:
            o.keep_nics = true;
            break;
        case OPT_TRUST_CONFIG:
            o.trust_config = true;
            break;
        case OPT_CONSOLE_LOG:
            o.console_log = optarg;
            break;
        case 'U':
            o.uri = optarg;
            break;
        case OPT_VERIFY:
            o.verify = true;
            break;
        case OPT_CACHE:
            if (!vb_opt_parse_number(optarg, &num) || num < 1 || num > 1 << 20)
                return usage_error("bad --cache-size '%s'", optarg);
            o.cache_mb = (unsigned long)num;
            break;
        case 't': /* virtnbdmap's nbdkit threads; here: a repository's read-ahead workers */
            if (!vb_opt_parse_number(optarg, &num) || num < 1)
                return usage_error("bad --threads '%s' (a number from 1)", optarg);
            if (num > 64) {
                /* a virtnbdmap command line may ask nbdkit for more: it still runs */
                threads_clamped = optarg;
                num = 64;
            }
            o.threads = (unsigned)num;
            break;
        case 'b': /* virtnbdmap's nbdkit blocksize filter: our server takes any size */
        case 'n':
        case 'H':
        case OPT_NOCOLOR:
            break;
        case 'L':
            logfile = optarg;
            break;
        case 'v':
            verbose = true;
            break;
        case 'q':
            quiet = true;
            break;
        case 'V':
            printf("virtmap %s\n", VB_VERSION);
            return 0;
        case 'h':
            help();
            return 0;
        case ':':
            return usage_error("option '%s' needs a value", argv[optind - 1]);
        default:
            return usage_error("unknown option '%s'", argv[optind - 1]);
        }
    }
    if (optind < argc)
        return usage_error("unexpected argument '%s'", argv[optind]);
    if (!o.files == !o.input)
        return usage_error("give either -f FILES or -i DIR");
    if (o.until && !o.input)
        return usage_error("--until needs -i DIR (with -f, list the files to serve)");
    o.repository = o.input && repo_is_repository(o.input);
    /* an encrypted repository's key (the passphrase leaves the environment: qemu and the
     * guest tools virtmap starts inherit it) */
    if (!o.key_file)
        o.key_file = getenv("VIRTBACKUP_KEY_FILE");
    o.key_passphrase = repo_passphrase_keep(vb_env_take_secret("VIRTBACKUP_KEY_PASSPHRASE"));
    if (!o.repository && (o.vm || o.snapshot))
        return usage_error("%s: %s goes with a repository input", o.input ? o.input : "-f",
                           o.vm ? "--vm" : "--snapshot");
    if (o.snapshot && o.until)
        return usage_error("--snapshot and --until exclude each other");
    if (o.export_name && !o.files)
        return usage_error("-e names the export of -f; with -i exports are named by disk");
    if (o.boot && !o.input)
        return usage_error("--boot needs -i DIR (the backup's vmconfig is read from it)");
    if ((o.boot_name || o.keep_nics || o.trust_config || o.console_log) && !o.boot)
        return usage_error("--name, --keep-nics, --trust-config and --console-log go with --boot");
    /* libvirt's virtlogd writes the console log: it needs the path from / */
    char console_log[4096];
    if (o.console_log && o.console_log[0] != '/') {
        char cwd[3000];
        if (!getcwd(cwd, sizeof cwd) || (size_t)snprintf(console_log, sizeof console_log, "%s/%s",
                                                         cwd, o.console_log) >= sizeof console_log)
            return usage_error("--console-log: cannot make '%s' an absolute path", o.console_log);
        o.console_log = console_log;
    }
    if (o.readonly && o.overlay_dir)
        return usage_error("-r and --overlay exclude each other");
    if (!o.export_name)
        o.export_name = "sda";
    if (strlen(o.export_name) > NBD_MAX_STRING)
        return usage_error("-e: an export name of %zu bytes; NBD allows at most %d",
                           strlen(o.export_name), NBD_MAX_STRING);
    if (o.socket_path && o.listen_tcp)
        return usage_error("--socket and -l/-p exclude each other (a unix socket or TCP)");
    if (o.tls_creds && o.tls_psk)
        return usage_error("--tls-creds and --tls-psk exclude each other");
    if (!o.tls_verify_peer && !o.tls_creds)
        return usage_error("--tls-no-verify-peer goes with --tls-creds");
    bool tls = o.tls_creds || o.tls_psk;
    if (o.allow_remote && !tls)
        return usage_error("--allow-remote needs TLS (--tls-creds DIR or --tls-psk FILE): "
                           "without it anyone who reaches the address reads the backup");
    if (o.boot && tls)
        return usage_error("--boot serves its VM on a private unix socket: --tls-creds and "
                           "--tls-psk do not apply");
    /* the default socket's private directory: under /run for root, else in the user's
     * runtime directory (or $TMPDIR) */
    char private_dir[4096];
    const char *xdg = getenv("XDG_RUNTIME_DIR"), *tmp = getenv("TMPDIR");
    if (geteuid() == 0)
        snprintf(private_dir, sizeof private_dir, "/run/virtmap/XXXXXX");
    else
        snprintf(private_dir, sizeof private_dir, "%s/virtmap.XXXXXX",
                 xdg && *xdg   ? xdg
                 : tmp && *tmp ? tmp
                               : "/tmp");
    o.private_socket_dir = private_dir;
    o.tmpdir = tmp;

    vb_log_init("virtmap", verbose, quiet);
    if (logfile)
        vb_log_set_file(logfile);
    if (threads_clamped)
        vb_warn("--threads %s: at most 64 read-ahead workers, using 64", threads_clamped);
    int rc = map_session_run(&o);
    vb_log_close();
    return rc;
}
