/* virtrepo key create|passwd|fingerprint|export|import: the key files of encrypted
 * repositories (virtrepo(1), KEYS; the file format: virtbackup-repository(5), ENCRYPTION).
 * Passphrases come from the global options (VIRTBACKUP_KEY_PASSPHRASE and
 * VIRTBACKUP_NEW_KEY_PASSPHRASE, read in main) or from the terminal; keys are never printed
 * but by export --paper. */
#include <getopt.h>
#include <openssl/crypto.h>
#include <stdio.h>
#include <string.h>

#include "keyfile.h"
#include "log.h"
#include "options.h"
#include "virtrepo.h"

/* The passphrase for a new wrapping: given, or asked twice on the terminal. */
static int new_passphrase(const char *given, char *buf, size_t cap, struct vb_error *err)
{
    if (given) {
        if (!given[0])
            return vb_error_set(err, "an empty passphrase protects nothing");
        if (strlen(given) >= cap)
            return vb_error_set(err, "passphrase longer than %zu bytes", cap - 1);
        memcpy(buf, given, strlen(given) + 1);
        return 0;
    }
    return repo_passphrase_ask("New passphrase: ", true, buf, cap, err);
}

static int key_create(const struct virtrepo_global *g, const char *file, bool passphrase,
                      struct vb_error *err)
{
    unsigned char master[REPO_KEY_SIZE];
    char pass[REPO_PASSPHRASE_MAX];
    struct repo_key k;
    int rc = -1;
    if (passphrase &&
        new_passphrase(g->new_key_passphrase ? g->new_key_passphrase : g->key_passphrase, pass,
                       sizeof pass, err) < 0)
        goto out;
    if (repo_random_bytes(master, sizeof master, err) < 0 || repo_key_derive(master, &k, err) < 0 ||
        repo_keyfile_write(file, master, passphrase ? pass : NULL, false, err) < 0)
        goto out;
    vb_info("key %s made: fingerprint %s%s", file, k.fingerprint,
            passphrase ? ", protected by a passphrase" : " (no passphrase: the file is the key)");
    repo_key_wipe(&k);
    rc = 0;
out:
    OPENSSL_cleanse(master, sizeof master);
    OPENSSL_cleanse(pass, sizeof pass);
    return rc;
}

static int key_passwd(const struct virtrepo_global *g, const char *file, bool remove,
                      struct vb_error *err)
{
    char pass[REPO_PASSPHRASE_MAX];
    struct repo_key *k = repo_key_load(file, g->key_passphrase, err);
    if (!k)
        return -1;
    int rc = -1;
    if (!remove && new_passphrase(g->new_key_passphrase, pass, sizeof pass, err) < 0)
        goto out;
    if (repo_keyfile_write(file, k->master, remove ? NULL : pass, true, err) < 0)
        goto out;
    vb_info("key %s (fingerprint %s) %s", file, k->fingerprint,
            remove ? "no longer has a passphrase" : "now has the new passphrase");
    rc = 0;
out:
    repo_key_free(k);
    OPENSSL_cleanse(pass, sizeof pass);
    return rc;
}

static int key_import_paper(const struct virtrepo_global *g, const char *file, bool passphrase,
                            struct vb_error *err)
{
    struct repo_key k;
    char pass[REPO_PASSPHRASE_MAX];
    int rc = -1;
    if (repo_key_paper_read(stdin, &k, err) < 0)
        return -1;
    if (passphrase &&
        new_passphrase(g->new_key_passphrase ? g->new_key_passphrase : g->key_passphrase, pass,
                       sizeof pass, err) < 0)
        goto out;
    if (repo_keyfile_write(file, k.master, passphrase ? pass : NULL, false, err) < 0)
        goto out;
    vb_info("key %s made from the paper key: fingerprint %s", file, k.fingerprint);
    rc = 0;
out:
    repo_key_wipe(&k);
    OPENSSL_cleanse(pass, sizeof pass);
    return rc;
}

int cmd_key(const struct virtrepo_global *g, int argc, char **argv)
{
    static const struct option opts[] = {
        {"passphrase", no_argument, NULL, 'p'},
        {"paper", no_argument, NULL, 'P'},
        {"remove", no_argument, NULL, 'r'},
        {0},
    };
    bool passphrase = false, paper = false, remove = false;
    int c;
    if (argc < 2)
        return vb_opt_usage_error(g->prog, g->usage,
                                  "key: create, passwd, fingerprint, export or import is needed");
    const char *sub = argv[1];
    argc--;
    argv++;
    while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (c) {
        case 'p':
            passphrase = true;
            break;
        case 'P':
            paper = true;
            break;
        case 'r':
            remove = true;
            break;
        default:
            return vb_opt_usage_error(g->prog, g->usage, "key %s: unknown option '%s'", sub,
                                      argv[optind - 1]);
        }
    }
    if (optind != argc - 1)
        return vb_opt_usage_error(g->prog, g->usage, "key %s: one FILE is needed", sub);
    const char *file = argv[optind];
    bool create = strcmp(sub, "create") == 0, passwd = strcmp(sub, "passwd") == 0;
    bool fpr = strcmp(sub, "fingerprint") == 0, exp = strcmp(sub, "export") == 0,
         imp = strcmp(sub, "import") == 0;
    if (!create && !passwd && !fpr && !exp && !imp)
        return vb_opt_usage_error(g->prog, g->usage, "key: unknown command '%s'", sub);
    if ((passphrase && !create && !imp) || (remove && !passwd) || (paper && !exp && !imp))
        return vb_opt_usage_error(g->prog, g->usage, "key %s: option not valid here", sub);
    if ((exp || imp) && !paper)
        return vb_opt_usage_error(g->prog, g->usage, "key %s: only --paper is supported", sub);
    struct vb_error err = {0};
    int rc = 0;
    if (create) {
        rc = key_create(g, file, passphrase, &err);
    } else if (passwd) {
        rc = key_passwd(g, file, remove, &err);
    } else if (imp) {
        rc = key_import_paper(g, file, passphrase, &err);
    } else {
        struct repo_key *k = repo_key_load(file, g->key_passphrase, &err);
        if (!k)
            rc = -1;
        else if (fpr)
            printf("%s\n", k->fingerprint);
        else
            rc = repo_key_paper_write(stdout, k, &err);
        repo_key_free(k);
        if (rc == 0 && fflush(stdout) != 0)
            rc = vb_error_errno(&err, "standard output");
    }
    if (rc < 0) {
        vb_error_log("key %s: %s", sub, err.msg);
        return 1;
    }
    return 0;
}
