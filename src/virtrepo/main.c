/* virtrepo: manage a deduplicating repository (virtbackup-repository(5)): make one, list,
 * forget, check and verify its snapshots. This file holds the global options, the help and
 * the dispatch to one file per command (cmd_*.c); only main decides the exit status. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "options.h"
#include "virtrepo.h"

#define USAGE                                                                                      \
    "usage: virtrepo [-v] [-q] [--key FILE] COMMAND ARGS...\n"                                     \
    "       virtrepo init PATH [--chunk-size SIZE] [--compression zstd[:LEVEL]|lz4|none]\n"        \
    "                          [--encrypt KEYFILE] [--session-stale SECONDS] [--heartbeat "        \
    "SECONDS]\n"                                                                                   \
    "       virtrepo key create|passwd|fingerprint FILE, key export|import --paper FILE\n"         \
    "       virtrepo snapshots REPO [--vm NAME] [--json]\n"                                        \
    "       virtrepo forget REPO ID... [--force]\n"                                                \
    "       virtrepo prune REPO [--vm NAME] --keep-RULE N... [--dry-run] [--json]\n"               \
    "       virtrepo protect|unprotect REPO ID... [--vm NAME]\n"                                   \
    "       virtrepo check REPO\n"                                                                 \
    "       virtrepo verify REPO [--snapshot ID | --part K/N] [-w N]\n"                            \
    "       virtrepo import DIR REPO [--json]\n"                                                   \
    "       virtrepo export REPO ID|latest DIR [--vm NAME] [-z[N]]\n"                              \
    "       virtrepo stats REPO [--json]\n"                                                        \
    "       virtrepo gc REPO [--json] [--dry-run]\n"                                               \
    "       virtrepo --help | --version\n"

static const struct virtrepo_command commands[] = {
    {"init", cmd_init},       {"snapshots", cmd_snapshots}, {"forget", cmd_forget},
    {"check", cmd_check},     {"verify", cmd_verify},       {"import", cmd_import},
    {"export", cmd_export},   {"stats", cmd_stats},         {"prune", cmd_prune},
    {"protect", cmd_protect}, {"unprotect", cmd_unprotect}, {"key", cmd_key},
    {"gc", cmd_gc},
};

static void help(void)
{
    printf(USAGE
           "\n"
           "Manage a virtbackup repository: chunks stored once, whatever snapshot, disk or\n"
           "VM they belong to (the format: virtbackup-repository(5)).\n"
           "\n"
           "Commands:\n"
           "  init PATH           make a repository in PATH (a new or empty directory)\n"
           "      --chunk-size SIZE   chunk size, a power of two from 64K to 64M (4M)\n"
           "      --compression C     zstd[:LEVEL] (LEVEL 1..19, default zstd:1), lz4, none\n"
           "      --session-stale S   a session not refreshed for S seconds is dead (900)\n"
           "      --heartbeat S       sessions are refreshed every S seconds (60)\n"
           "      --encrypt KEYFILE   encrypt it with this key (made by key create)\n"
           "  key create FILE     a new random key in FILE (mode 0600)\n"
           "      --passphrase        wrapped by a passphrase (scrypt)\n"
           "  key passwd FILE     change the key file's passphrase (--remove: drop it)\n"
           "  key fingerprint FILE  print the key's fingerprint\n"
           "  key export --paper FILE  print the key in a form to write down\n"
           "  key import --paper FILE  read that form on standard input into FILE\n"
           "  snapshots REPO      list the snapshots, oldest first\n"
           "      --vm NAME           only those of this VM\n"
           "      --json              a JSON array (id, vm, uuid, time, level, parent, disks)\n"
           "  forget REPO ID...   remove these snapshots (their chunks stay until a gc)\n"
           "      --force             protected ones too\n"
           "  prune REPO          remove the snapshots no --keep-RULE keeps, per VM (at\n"
           "                      least one rule; the newest, the next inc's base and\n"
           "                      its chain, and protected ones are kept)\n"
           "      --keep-last N       the N newest snapshots\n"
           "      --keep-hourly N     the newest of each of the last N hours with one; also\n"
           "      --keep-daily N      days, --keep-weekly (ISO weeks), --keep-monthly and\n"
           "      --keep-yearly N     --keep-yearly (local time, TZ)\n"
           "      --vm NAME           only this VM's snapshots\n"
           "      --dry-run           say what would be removed, remove nothing\n"
           "      --json              the plan as a JSON array (id, vm, uuid, time, action,\n"
           "                          reasons)\n"
           "  protect REPO ID...  keep these snapshots from prune and forget\n"
           "      --vm NAME           the VM, where two have a snapshot of this id\n"
           "  unprotect REPO ID...  let them go again\n"
           "  check REPO          structure and references: the config, every manifest, its\n"
           "                      indexes, every chunk they name present with a valid header;\n"
           "                      no chunk data is read\n"
           "  verify REPO         read every chunk the snapshots use and check its digest\n"
           "      --snapshot ID       only this snapshot's chunks\n"
           "      --part K/N          only chunks in the K-th of N ranges of names (N <= 256);\n"
           "                          damaged chunks go to bad/, the run is recorded in scrub/\n"
           "      -w, --worker N      chunks read at once (default 4)\n"
           "  import DIR REPO     every point of a stream chain (a backup directory, a zip or\n"
           "                      a comma list of zips) as a snapshot; points imported\n"
           "                      already are skipped\n"
           "      --json              a JSON summary of the points on standard output\n"
           "  export REPO ID|latest DIR  write the snapshot into DIR (new or empty) as the\n"
           "                      directory of a full backup; it starts no chain\n"
           "      --vm NAME           the VM, where the repository holds several\n"
           "      -z, --compress[=N]  lz4-compress the data files (level N, default 2)\n"
           "  stats REPO          logical and stored bytes per VM and in total, the\n"
           "                      deduplication and compression ratios, the chunks only\n"
           "                      one VM uses (what forgetting it would free)\n"
           "      --json              a JSON object (vms, total)\n"
           "  gc REPO             move the chunks and indexes no snapshot uses to a trash;\n"
           "                      empty earlier trashes once the sessions alive during\n"
           "                      their move have ended (space freed, sessions waited for)\n"
           "      --json              a JSON object\n"
           "      --dry-run           say what would be moved and emptied, change nothing\n"
           "\n"
           "  --key FILE          the key of an encrypted repository (or VIRTBACKUP_KEY_FILE);\n"
           "                      also accepted after the command\n"
           "  -v, --verbose       debug messages\n"
           "  -q, --quiet         errors only (no progress)\n"
           "  -V, --version       print the version\n"
           "  -h, --help          this help\n"
           "\n"
           "Exit status: 0 success; 1 an error, or damage found by check or verify (the\n"
           "damaged snapshots and chunks are named on standard output).\n");
}

/* --key FILE (or --key=FILE) after the command, wherever it is, is the global option: every
 * command takes it without knowing it. Removed from argv. -1 when FILE is missing. */
static int take_key_option(struct virtrepo_global *g, int *argc, char **argv)
{
    int out = 0;
    for (int i = 0; i < *argc; i++) {
        if (strcmp(argv[i], "--") == 0) {
            while (i < *argc)
                argv[out++] = argv[i++];
            break;
        }
        if (strcmp(argv[i], "--key") == 0) {
            if (i + 1 >= *argc)
                return -1;
            g->key_file = argv[++i];
        } else if (strncmp(argv[i], "--key=", 6) == 0) {
            g->key_file = argv[i] + 6;
        } else {
            argv[out++] = argv[i];
        }
    }
    *argc = out;
    argv[out] = NULL;
    return 0;
}

int main(int argc, char **argv)
{
    struct virtrepo_global g = {.prog = "virtrepo"};
#ifndef NDEBUG
    g.debug_stall = getenv("VIRTBACKUP_DEBUG_STALL");
#endif
    g.key_file = getenv("VIRTBACKUP_KEY_FILE");
    g.key_passphrase = getenv("VIRTBACKUP_KEY_PASSPHRASE");
    g.new_key_passphrase = getenv("VIRTBACKUP_NEW_KEY_PASSPHRASE");
    /* global options stop at the command: the command parses the rest */
    static const struct option global_opts[] = {
        {"key", required_argument, NULL, 'k'}, {"verbose", no_argument, NULL, 'v'},
        {"quiet", no_argument, NULL, 'q'},     {"version", no_argument, NULL, 'V'},
        {"help", no_argument, NULL, 'h'},      {0},
    };
    int c;
    opterr = 0;
    while ((c = getopt_long(argc, argv, "+k:vqVh", global_opts, NULL)) != -1) {
        switch (c) {
        case 'k':
            g.key_file = optarg;
            break;
        case 'v':
            g.verbose = true;
            break;
        case 'q':
            g.quiet = true;
            break;
        case 'V':
            printf("virtrepo %s\n", VB_VERSION);
            return 0;
        case 'h':
            help();
            return 0;
        default:
            return vb_opt_usage_error(g.prog, USAGE, "unknown option '%s'", argv[optind - 1]);
        }
    }
    if (optind >= argc)
        return vb_opt_usage_error(g.prog, USAGE, "a command is needed");
    const char *name = argv[optind];
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++) {
        if (strcmp(commands[i].name, name) != 0)
            continue;
        vb_log_init(g.prog, g.verbose, g.quiet);
        g.usage = USAGE;
        /* the command sees its name as argv[0] */
        int cargc = argc - optind;
        char **cargv = argv + optind;
        if (take_key_option(&g, &cargc, cargv) < 0)
            return vb_opt_usage_error(g.prog, USAGE, "--key needs a FILE");
        optind = 0; /* a full reset of getopt for the command's own options */
        int rc = commands[i].run(&g, cargc, cargv);
        vb_log_close();
        return rc;
    }
    return vb_opt_usage_error(g.prog, USAGE, "unknown command '%s'", name);
}
