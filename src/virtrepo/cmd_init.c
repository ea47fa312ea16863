/* virtrepo init PATH [--chunk-size SIZE] [--compression zstd[:LEVEL]|lz4|none]
 * [--encrypt KEYFILE] [--session-stale SECONDS] [--heartbeat SECONDS]: puts the config of a
 * new repository (virtrepo(1), INIT); an encrypted one records only the key's fingerprint. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "index.h"
#include "keyfile.h"
#include "log.h"
#include "options.h"
#include "repo_config.h"
#include "virtrepo.h"

/* "4M", "64K", "65536": bytes. false for anything else. */
static bool parse_size(const char *s, uint64_t *out)
{
    char *end;
    if (*s < '0' || *s > '9')
        return false;
    unsigned long long v = strtoull(s, &end, 10);
    unsigned shift = 0;
    switch (*end) {
    case 'K':
    case 'k':
        shift = 10;
        end++;
        break;
    case 'M':
    case 'm':
        shift = 20;
        end++;
        break;
    case '\0':
        break;
    default:
        return false;
    }
    if (*end || v > (1ull << 40))
        return false;
    *out = (uint64_t)v << shift;
    return true;
}

int cmd_init(const struct virtrepo_global *g, int argc, char **argv)
{
    static const struct option opts[] = {
        {"chunk-size", required_argument, NULL, 'c'},
        {"compression", required_argument, NULL, 'z'},
        {"encrypt", required_argument, NULL, 'e'},
        {"session-stale", required_argument, NULL, 's'},
        {"heartbeat", required_argument, NULL, 'b'},
        {0},
    };
    struct repo_config cfg;
    struct vb_error err = {0};
    repo_config_default(&cfg);
    const char *key_file = NULL;
    bool heartbeat_given = false;
    int c;
    while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        uint64_t size;
        switch (c) {
        case 'c':
            if (!parse_size(optarg, &size) || !repo_chunk_size_valid(size))
                return vb_opt_usage_error(g->prog, g->usage,
                                          "bad --chunk-size '%s' (a power of two from 64K to 64M)",
                                          optarg);
            cfg.chunk_size = (uint32_t)size;
            break;
        case 'z':
            if (repo_compression_parse(optarg, &cfg.compression, &cfg.compression_level, &err) < 0)
                return vb_opt_usage_error(g->prog, g->usage, "bad --compression: %s", err.msg);
            break;
        case 'e':
            key_file = optarg;
            break;
        case 's':
        case 'b': {
            char *end;
            unsigned long v = strtoul(optarg, &end, 10);
            if (optarg[0] < '0' || optarg[0] > '9' || *end || v < 1 || v > 86400 * 7)
                return vb_opt_usage_error(g->prog, g->usage, "bad --%s '%s' (seconds, 1 to 604800)",
                                          c == 's' ? "session-stale" : "heartbeat", optarg);
            *(c == 's' ? &cfg.session_stale_seconds : &cfg.heartbeat_seconds) = (uint32_t)v;
            heartbeat_given |= c == 'b';
            break;
        }
        default:
            return vb_opt_usage_error(g->prog, g->usage, "init: unknown option '%s'",
                                      argv[optind - 1]);
        }
    }
    if (optind != argc - 1)
        return vb_opt_usage_error(g->prog, g->usage, "init: one PATH is needed");
    const char *path = argv[optind];
    if (key_file) {
        struct repo_key *k = repo_key_load(key_file, g->key_passphrase, &err);
        if (!k) {
            vb_error_log("%s", err.msg);
            return 1;
        }
        cfg.encrypted = true;
        memcpy(cfg.key_fingerprint, k->fingerprint, sizeof cfg.key_fingerprint);
        repo_key_free(k);
    }
    /* a short stale interval alone brings the heartbeat down with it (virtrepo(1)) */
    if (!heartbeat_given && cfg.heartbeat_seconds >= cfg.session_stale_seconds)
        cfg.heartbeat_seconds = cfg.session_stale_seconds > 3 ? cfg.session_stale_seconds / 3 : 1;
    if (cfg.heartbeat_seconds >= cfg.session_stale_seconds)
        return vb_opt_usage_error(g->prog, g->usage,
                                  "--heartbeat must be below --session-stale (%u)",
                                  cfg.session_stale_seconds);
    if (repo_init(path, &cfg, &err) < 0) {
        vb_error_log("%s", err.msg);
        return 1;
    }
    char level[16] = "";
    if (cfg.compression == REPO_COMP_ZSTD)
        snprintf(level, sizeof level, ":%d", cfg.compression_level);
    vb_info("repository %s made: id %s, chunk size %u, compression %s%s%s%s", path, cfg.id,
            cfg.chunk_size, repo_compression_name(cfg.compression), level,
            cfg.encrypted ? ", encrypted with the key of fingerprint " : "",
            cfg.encrypted ? cfg.key_fingerprint : "");
    return 0;
}
