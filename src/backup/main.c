/* virtbackup: command line, then the run (run.c). The options are those of virtbackup(1),
 * which keeps virtnbdbackup 2.47's. */
#include <getopt.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "backup.h"
#include "env_knobs.h"
#include "frame.h"
#include "keyfile.h"
#include "log.h"
#include "options.h"
#include "remote_opts.h"
#include "repo.h"
#include "run.h"

static const char usage_line[] =
    "usage: virtbackup -d DOMAIN -o OUTPUT [-l copy|full|inc|diff|auto] [options]";

static void usage(FILE *f)
{
    fprintf(f, "%s\n", usage_line);
    fputs("\n"
          "Back up a libvirt/qemu domain's disks, online (checkpoints and dirty bitmaps) or\n"
          "offline, into a directory of thin stream files that virtrestore and virtmap read.\n"
          "Compatible with virtnbdbackup: same options, layout and stream format.\n"
          "\n"
          "Backup:\n"
          "  -d, --domain NAME          domain to back up (required)\n"
          "  -l, --level LEVEL          copy (default; no checkpoint), full (starts a chain),\n"
          "                             inc (changes since the last checkpoint), diff (changes\n"
          "                             since the last full/inc, no new checkpoint), auto (full\n"
          "                             into an empty directory, inc into one with a full)\n"
          "  -o, --output DIR           backup directory (created if missing), or a\n"
          "                             repository made by virtrepo init (not diff)\n"
          "  -z, --compress[=N]         lz4-compress the data (level N, default 2)\n"
          "  -t, --type stream|raw      stream format (default) or a plain raw image (copy/full)\n"
          "  -r, --raw                  include raw disks (saved as full sparse copies)\n"
          "  -i, --include DEV          back up only disk DEV (e.g. vda)\n"
          "  -x, --exclude DEV[,DEV]    skip these disks\n"
          "  -w, --worker N             disks copied in parallel (default: all)\n"
          "  -C, --checkpointdir DIR    where checkpoint XML is kept (default OUTPUT/checkpoints)\n"
          "      --scratchdir DIR       where qemu keeps scratch files during the job (/var/tmp)\n"
          "  -f, --socketfile PATH      the job's NBD socket (default: in a private directory\n"
          "                             under --scratchdir)\n"
          "  -F, --freeze-mountpoint M  guest filesystems to freeze (comma list; default all)\n"
          "      --freeze-timeout SEC   guest agent timeout for freeze/thaw (default 30)\n"
          "      --pause                pause the domain while the job starts\n"
          "  -S, --start-domain         accepted: shut-off domains are started paused anyway\n"
          "      --no-start-domain      never start a shut-off domain (full becomes copy)\n"
          "      --no-sparse-detection  inc/diff: save every dirty range as data\n"
          "      --compat-zeroes        inc/diff: zeroed ranges as zero-filled data, so that\n"
          "                             virtnbdrestore (which ignores ZERO frames) restores them\n"
          "  -T, --threshold BYTES      inc/diff: skip (exit 0) if fewer bytes changed\n"
          "      --full-every DAYS      repository inc: read in full when the last full read\n"
          "                             is older (default 30, 0 never)\n"
          "      --key FILE             an encrypted repository's key (or VIRTBACKUP_KEY_FILE)\n"
          "\n"
          "Connection:\n"
          "  -U, --uri URI              libvirt URI (default qemu:///system)\n",
          f);
    fputs(vb_remote_cli_help, f);
    fputs("\n"
          "Job control:\n"
          "  -s, --startonly            start the backup job and exit (for external tools)\n"
          "  -k, --killonly             end a running backup job of the domain\n"
          "  -p, --printonly            print the bytes changed since the last checkpoint\n"
          "\n"
          "Output:\n"
          "  -n, --noprogress           no progress output\n"
          "      --quiet                errors only (implies -n)\n"
          "      --json[=FILE]          a JSON summary at the end (stdout or FILE)\n"
          "  -e, --strict               exit 2 if warnings were logged\n"
          "  -v, --verbose              debug messages\n"
          "  -L, --syslog, --nocolor, -q, --qemu   accepted for compatibility\n"
          "  -V, --version              print the version\n"
          "  -h, --help                 this help\n"
          "\n"
          "Exit status: 0 success (also a -T skip), 1 error, 2 warnings with --strict.\n"
          "Files: <dev>.full.data, <dev>.inc.virtnbdbackup.N.data, <dev>.diff.<time>.data,\n"
          "<dev>.copy.data, each with a .chksum (adler32); <domain>.cpt, checkpoints/,\n"
          "vmconfig.*.xml, *.qcow.json, backup.<level>.<time>.log. See virtbackup(1).\n",
          f);
}

#define bad_usage(...) vb_opt_usage_error("virtbackup", usage_line, __VA_ARGS__)

enum {
    OPT_SCRATCHDIR = 256,
    OPT_NO_START,
    OPT_PAUSE,
    OPT_NO_SPARSE,
    OPT_COMPAT_ZEROES,
    OPT_QUIET,
    OPT_NOCOLOR,
    OPT_JSON,
    OPT_FREEZE_TIMEOUT,
    OPT_FULL_EVERY,
    OPT_KEY,
};

int main(int argc, char **argv)
{
    static const struct option longopts[] = {
        {"domain", required_argument, NULL, 'd'},
        {"level", required_argument, NULL, 'l'},
        {"type", required_argument, NULL, 't'},
        {"raw", no_argument, NULL, 'r'},
        {"output", required_argument, NULL, 'o'},
        {"checkpointdir", required_argument, NULL, 'C'},
        {"scratchdir", required_argument, NULL, OPT_SCRATCHDIR},
        {"start-domain", no_argument, NULL, 'S'},
        {"no-start-domain", no_argument, NULL, OPT_NO_START},
        {"pause", no_argument, NULL, OPT_PAUSE},
        {"include", required_argument, NULL, 'i'},
        {"exclude", required_argument, NULL, 'x'},
        {"socketfile", required_argument, NULL, 'f'},
        {"noprogress", no_argument, NULL, 'n'},
        {"compress", optional_argument, NULL, 'z'},
        {"worker", required_argument, NULL, 'w'},
        {"freeze-mountpoint", required_argument, NULL, 'F'},
        {"freeze-timeout", required_argument, NULL, OPT_FREEZE_TIMEOUT},
        {"full-every", required_argument, NULL, OPT_FULL_EVERY},
        {"key", required_argument, NULL, OPT_KEY},
        {"strict", no_argument, NULL, 'e'},
        {"no-sparse-detection", no_argument, NULL, OPT_NO_SPARSE},
        {"compat-zeroes", no_argument, NULL, OPT_COMPAT_ZEROES},
        {"threshold", required_argument, NULL, 'T'},
        {"uri", required_argument, NULL, 'U'},
        VB_REMOTE_LONG_OPTIONS,
        {"syslog", no_argument, NULL, 'L'},
        {"quiet", no_argument, NULL, OPT_QUIET},
        {"nocolor", no_argument, NULL, OPT_NOCOLOR},
        {"qemu", no_argument, NULL, 'q'},
        {"startonly", no_argument, NULL, 's'},
        {"killonly", no_argument, NULL, 'k'},
        {"printonly", no_argument, NULL, 'p'},
        {"verbose", no_argument, NULL, 'v'},
        {"version", no_argument, NULL, 'V'},
        {"json", optional_argument, NULL, OPT_JSON},
        {"help", no_argument, NULL, 'h'},
        {0},
    };
    struct backup_opts o = {
        .level = LEVEL_COPY,
        .level_arg = "copy",
        .scratchdir = "/var/tmp",
        .compress = STREAM_META_COMPRESSED_FALSE,
        .threshold = -1,
        .freeze_timeout = 30,
        .full_every_days = 30,
    };
    struct vb_remote_cli cli = {0};
    bool full_every_given = false;
    opterr = 0;
    int c;
    /* '+': stop at the first non-option (there are no positional arguments) */
    while ((c = getopt_long(argc, argv, "+d:l:t:ro:C:Si:x:f:nz::w:F:eT:U:P:I:LqskpvVh", longopts,
                            NULL)) != -1) {
        long long num;
        bool bad;
        struct stat st;
        switch (c) {
        case 'd':
            o.domain = optarg;
            break;
        case 'l':
            if (!backup_level_parse(optarg, &o.level))
                return bad_usage("invalid level '%s' (copy, full, inc, diff or auto)", optarg);
            o.level_arg = optarg;
            break;
        case 't':
            if (strcmp(optarg, "stream") == 0)
                o.type_raw = false;
            else if (strcmp(optarg, "raw") == 0)
                o.type_raw = true;
            else
                return bad_usage("invalid type '%s' (stream or raw)", optarg);
            break;
        case 'r':
            o.raw = true;
            break;
        case 'o':
            o.output = optarg;
            break;
        case 'C':
            o.checkpointdir = optarg;
            break;
        case OPT_SCRATCHDIR:
            o.scratchdir = optarg;
            break;
        case 'S':
            /* 1.9.15's -S DIR (--scratchdir) in existing cron lines */
            if (optind < argc && stat(argv[optind], &st) == 0 && S_ISDIR(st.st_mode)) {
                o.scratchdir = argv[optind++];
                fprintf(stderr, "virtbackup: warning: '-S DIR' is deprecated, use "
                                "--scratchdir DIR\n");
            } else {
                o.start_domain = true;
            }
            break;
        case OPT_NO_START:
            o.no_start_domain = true;
            break;
        case OPT_PAUSE:
            o.pause = true;
            break;
        case 'i':
            o.include = optarg;
            break;
        case 'x':
            o.exclude = optarg;
            break;
        case 'f':
            o.socketfile = optarg;
            break;
        case 'n':
            o.noprogress = true;
            break;
        case 'z':
            o.compress = (int)vb_opt_optional_number(argc, argv, optarg, 2, &bad);
            if (bad || o.compress > 12)
                return bad_usage("invalid compression level '%s' (0-12)", optarg);
            break;
        case 'w':
            if (!vb_opt_parse_number(optarg, &num) || num > 1024)
                return bad_usage("invalid worker count '%s'", optarg);
            o.workers = num < 1 ? 1 : (int)num;
            break;
        case 'F':
            o.freeze = optarg;
            break;
        case OPT_FREEZE_TIMEOUT:
            if (!vb_opt_parse_number(optarg, &num) || num < 1 || num > 3600)
                return bad_usage("invalid freeze timeout '%s'", optarg);
            o.freeze_timeout = (int)num;
            break;
        case OPT_KEY:
            o.key_file = optarg;
            break;
        case OPT_FULL_EVERY:
            if (!vb_opt_parse_number(optarg, &num) || num < 0 || num > 36500)
                return bad_usage("invalid --full-every '%s' (days, 0 for never)", optarg);
            o.full_every_days = (int)num;
            full_every_given = true;
            break;
        case 'e':
            o.strict = true;
            break;
        case OPT_NO_SPARSE:
            o.no_sparse_detection = true;
            break;
        case OPT_COMPAT_ZEROES:
            o.compat_zeroes = true;
            break;
        case 'T':
            if (!vb_opt_parse_number(optarg, &num))
                return bad_usage("invalid threshold '%s' (bytes)", optarg);
            o.threshold = num;
            break;
        case 'U':
            o.uri = optarg;
            break;
        case 'L':
        case OPT_NOCOLOR:
        case 'q':
            break; /* accepted for compatibility */
        case OPT_QUIET:
            o.quiet = true;
            o.noprogress = true;
            break;
        case 's':
            o.startonly = true;
            break;
        case 'k':
            o.killonly = true;
            break;
        case 'p':
            o.printonly = true;
            break;
        case 'v':
            o.verbose = true;
            break;
        case OPT_JSON:
            o.json = true;
            o.json_file = optarg;
            break;
        case 'V':
            printf("virtbackup %s\n", VB_VERSION);
            return 0;
        case 'h':
            usage(stdout);
            return 0;
        default: {
            struct vb_error e = {0};
            int mine = vb_remote_cli_option(&cli, c, optarg, &e);
            if (mine < 0)
                return bad_usage("%s", e.msg);
            if (mine > 0)
                break;
            if (optopt && strchr("dltoCixfwFTUPI", optopt))
                return bad_usage("option -%c requires a value", optopt);
            return bad_usage("unknown option '%s'", argv[optind - 1]);
        }
        }
    }
    if (optind < argc)
        return bad_usage("unexpected argument '%s'", argv[optind]);
    /* Children (qemu-img, qemu-nbd, libvirt's ssh) inherit the environment: the password
     * leaves it here, whether it is used or an option's wins. */
    vb_remote_cli_finish(&cli, argc, argv, o.uri, vb_env_take_secret("VIRTBACKUP_PASSWORD"),
                         getenv("TMPDIR"));
    o.remote = cli.remote;
    /* tuning knobs and test hooks: virtbackup(1), ENVIRONMENT */
    o.connections = (int)vb_env_size("VIRTBACKUP_CONNECTIONS", 0, 1, 4);
    o.request_size = vb_env_size("VIRTBACKUP_REQUEST_SIZE", 512 * 1024, 4096, STREAM_SLICE_SIZE);
    o.requests = vb_env_size("VIRTBACKUP_REQUESTS", 16, 1, 1024);
    o.compress_threads = vb_env_count("VIRTBACKUP_COMPRESS_THREADS", 16);
    o.lock_dir = getenv("VIRTBACKUP_LOCK_DIR");
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
    if (!o.domain)
        return bad_usage("%s", "a domain is required (-d DOMAIN)");
    if (!o.output && !o.killonly && !o.printonly)
        return bad_usage("%s", "an output directory is required (-o DIR)");
    if (o.type_raw && o.compress != STREAM_META_COMPRESSED_FALSE)
        return bad_usage("%s", "-t raw cannot be compressed");
    if (o.type_raw && (o.level == LEVEL_INC || o.level == LEVEL_DIFF))
        return bad_usage("%s", "-t raw is only possible for copy and full backups");
    if (o.output && strcmp(o.output, "-") == 0) {
        if (o.json && (!o.json_file || strcmp(o.json_file, "-") == 0))
            return bad_usage("%s", "--json to stdout cannot be combined with -o -");
        if (o.type_raw || o.raw)
            return bad_usage("%s", "raw output cannot go into the zip stream (-o -)");
        if (isatty(STDOUT_FILENO))
            return bad_usage("%s", "-o - writes a zip archive: redirect stdout to a file or pipe");
        /* as the reference: one worker, bookkeeping (.cpt, checkpoints/) in "." */
        o.zip = true;
        o.output = ".";
        o.workers = 1;
    }

    if (o.output && !o.zip && repo_is_repository(o.output)) {
        /* virtbackup(1), REPOSITORY OUTPUT */
        if (o.level == LEVEL_DIFF)
            return bad_usage("%s", "-l diff does not apply to a repository: every snapshot "
                                   "is complete; -l inc reads only what changed");
        if (o.compress != STREAM_META_COMPRESSED_FALSE)
            return bad_usage("%s", "-z does not apply to a repository: its compression is "
                                   "the one virtrepo init set");
        if (o.type_raw)
            return bad_usage("%s", "-t raw does not apply to a repository");
        if (o.startonly)
            return bad_usage("%s", "-s cannot go with a repository (-o names one)");
        o.repository = true;
    }

    vb_log_init("virtbackup", o.verbose, o.quiet);
    /* virtbackup(1), --full-every: a cron line that moved from a repository to a directory
     * keeps running, warned */
    if (full_every_given && !o.repository)
        vb_warn("--full-every applies to a repository output only: ignored for %s",
                o.zip      ? "the zip stream (-o -)"
                : o.output ? o.output
                           : "this run");
    int rc = backup_main(&o);
    vb_remote_cli_free(&cli);
    return rc;
}
