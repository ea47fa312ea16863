/* Key files and the paper form of a repository key (keyfile.h). */
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <openssl/crypto.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <termios.h>
#include <unistd.h>

#include "keyfile.h"
#include "repo.h"

#define SCRYPT_N    32768
#define SCRYPT_R    8
#define SCRYPT_P    1
#define SALT_SIZE   16
#define KEYFILE_MAX (64u << 10)

/* the key-encryption key: scrypt of the passphrase, or 32 zero bytes without one */
static int make_kek(const char *passphrase, const unsigned char *salt, uint64_t n, uint64_t r,
                    uint64_t p, unsigned char kek[REPO_KEY_SIZE], struct vb_error *err)
{
    memset(kek, 0, REPO_KEY_SIZE);
    if (!passphrase)
        return 0;
    return repo_scrypt(passphrase, salt, SALT_SIZE, n, r, p, kek, REPO_KEY_SIZE, err);
}

static int write_all(int fd, const char *buf, size_t len)
{
    while (len) {
        ssize_t n = write(fd, buf, len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return -1;
        buf += n;
        len -= (size_t)n;
    }
    return 0;
}

static int sync_dir_of(const char *path)
{
    char *copy = strdup(path);
    if (!copy)
        return -1;
    char *slash = strrchr(copy, '/');
    const char *dir = !slash ? "." : slash == copy ? "/" : (*slash = '\0', copy);
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    int rc = fd < 0 || fsync(fd) < 0 ? -1 : 0;
    if (fd >= 0)
        close(fd);
    free(copy);
    return rc;
}

int repo_keyfile_write(const char *path, const unsigned char master[REPO_KEY_SIZE],
                       const char *passphrase, bool replace, struct vb_error *err)
{
    unsigned char salt[SALT_SIZE], nonce[REPO_GCM_NONCE_SIZE], kek[REPO_KEY_SIZE];
    unsigned char wrapped[REPO_KEY_SIZE + REPO_GCM_TAG_SIZE];
    char salt_hex[2 * SALT_SIZE + 1], nonce_hex[2 * REPO_GCM_NONCE_SIZE + 1];
    char wrapped_hex[2 * sizeof wrapped + 1];
    if (repo_random_bytes(salt, sizeof salt, err) < 0 ||
        repo_random_bytes(nonce, sizeof nonce, err) < 0 ||
        make_kek(passphrase, salt, SCRYPT_N, SCRYPT_R, SCRYPT_P, kek, err) < 0)
        return vb_error_prefix(err, "%s", path);
    int rc = repo_gcm_seal(kek, nonce, NULL, 0, master, REPO_KEY_SIZE, wrapped, err);
    OPENSSL_cleanse(kek, sizeof kek);
    if (rc < 0)
        return vb_error_prefix(err, "%s", path);
    repo_hex_encode(salt, sizeof salt, salt_hex);
    repo_hex_encode(nonce, sizeof nonce, nonce_hex);
    repo_hex_encode(wrapped, sizeof wrapped, wrapped_hex);
    json_t *o = json_pack("{s:s, s:i, s:s, s:s, s:s}", "format", REPO_KEYFILE_FORMAT, "version",
                          REPO_KEYFILE_VERSION, "kdf", passphrase ? "scrypt" : "none", "nonce",
                          nonce_hex, "wrapped", wrapped_hex);
    if (o && passphrase)
        json_object_set_new(o, "scrypt",
                            json_pack("{s:i, s:i, s:i, s:s}", "N", SCRYPT_N, "r", SCRYPT_R, "p",
                                      SCRYPT_P, "salt", salt_hex));
    char *text = o ? json_dumps(o, JSON_INDENT(2)) : NULL;
    json_decref(o);
    if (!text)
        return vb_error_set(err, "%s: out of memory", path);
    size_t plen = strlen(path) + sizeof ".partial";
    char *partial = malloc(plen);
    if (!partial) {
        free(text);
        return vb_error_errno(err, "%s", path);
    }
    snprintf(partial, plen, "%s.partial", path);
    unlink(partial); /* left by an interrupted run */
    int fd = open(partial, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
    rc = -1;
    if (fd < 0) {
        vb_error_errno(err, "%s", partial);
    } else if (write_all(fd, text, strlen(text)) < 0 || write_all(fd, "\n", 1) < 0 ||
               fsync(fd) < 0) {
        vb_error_errno(err, "%s: writing", partial);
    } else if (replace ? rename(partial, path) < 0 : link(partial, path) < 0) {
        vb_error_errno(err, "%s", path);
    } else {
        rc = 0;
    }
    if (fd >= 0)
        close(fd);
    if (fd >= 0 && (rc < 0 || !replace))
        unlink(partial);
    if (rc == 0 && sync_dir_of(path) < 0)
        rc = vb_error_errno(err, "%s: syncing its directory", path);
    OPENSSL_cleanse(text, strlen(text));
    free(text);
    free(partial);
    return rc;
}

/* The parsed key file (o: to json_decref). */
static json_t *load_keyfile(const char *path, struct vb_error *err)
{
    FILE *f = fopen(path, "re");
    if (!f) {
        vb_error_errno(err, "%s", path);
        return NULL;
    }
    json_error_t je;
    json_t *o = json_loadf(f, JSON_REJECT_DUPLICATES, &je);
    fclose(f);
    if (!o) {
        vb_error_set(err, "%s: not a key file (not JSON: %s)", path, je.text);
        return NULL;
    }
    json_t *fmt = json_object_get(o, "format"), *ver = json_object_get(o, "version");
    if (!json_is_string(fmt) || strcmp(json_string_value(fmt), REPO_KEYFILE_FORMAT) != 0) {
        vb_error_set(err, "%s: not a key file (format is not \"%s\")", path, REPO_KEYFILE_FORMAT);
        json_decref(o);
        return NULL;
    }
    if (!json_is_integer(ver) || json_integer_value(ver) != REPO_KEYFILE_VERSION) {
        vb_error_set(err, "%s: key file version not %d", path, REPO_KEYFILE_VERSION);
        json_decref(o);
        return NULL;
    }
    return o;
}

static const char *kdf_of(json_t *o)
{
    json_t *k = json_object_get(o, "kdf");
    return json_is_string(k) ? json_string_value(k) : "";
}

int repo_keyfile_has_passphrase(const char *path, bool *has, struct vb_error *err)
{
    json_t *o = load_keyfile(path, err);
    if (!o)
        return -1;
    *has = strcmp(kdf_of(o), "scrypt") == 0;
    json_decref(o);
    return 0;
}

static int hex_field(json_t *o, const char *name, void *out, size_t len)
{
    json_t *v = json_object_get(o, name);
    return json_is_string(v) ? repo_hex_decode(json_string_value(v), out, len) : -1;
}

int repo_keyfile_read(const char *path, const char *passphrase, struct repo_key *k,
                      struct vb_error *err)
{
    json_t *o = load_keyfile(path, err);
    if (!o)
        return -1;
    unsigned char salt[SALT_SIZE] = {0}, nonce[REPO_GCM_NONCE_SIZE], kek[REPO_KEY_SIZE];
    unsigned char wrapped[REPO_KEY_SIZE + REPO_GCM_TAG_SIZE], master[REPO_KEY_SIZE];
    const char *kdf = kdf_of(o);
    bool scrypt = strcmp(kdf, "scrypt") == 0;
    int rc = -1;
    json_int_t n = 0, r = 0, p = 0;
    if (!scrypt && strcmp(kdf, "none") != 0) {
        vb_error_set(err, "%s: unknown kdf \"%.20s\"", path, kdf);
        goto out;
    }
    if (hex_field(o, "nonce", nonce, sizeof nonce) < 0 ||
        hex_field(o, "wrapped", wrapped, sizeof wrapped) < 0) {
        vb_error_set(err, "%s: damaged key file (nonce or wrapped key)", path);
        goto out;
    }
    if (scrypt) {
        json_t *s = json_object_get(o, "scrypt");
        if (json_unpack(s, "{s:I, s:I, s:I}", "N", &n, "r", &r, "p", &p) != 0 ||
            hex_field(s, "salt", salt, sizeof salt) < 0 || n < 2 || (n & (n - 1)) || r < 1 ||
            p < 1 || r > 64 || p > 64) {
            vb_error_set(err, "%s: damaged key file (scrypt parameters)", path);
            goto out;
        }
        if (!passphrase) {
            vb_error_set(err, "%s: the key file is protected by a passphrase: none was given",
                         path);
            goto out;
        }
    }
    if (make_kek(scrypt ? passphrase : NULL, salt, (uint64_t)n, (uint64_t)r, (uint64_t)p, kek,
                 err) < 0) {
        vb_error_prefix(err, "%s", path);
        goto out;
    }
    if (repo_gcm_open(kek, nonce, NULL, 0, wrapped, REPO_KEY_SIZE, master, err) < 0) {
        vb_error_set(err, "%s: %s", path,
                     scrypt ? "wrong passphrase (or the key file is damaged)"
                            : "damaged key file (the wrapped key does not authenticate)");
        goto out;
    }
    rc = repo_key_derive(master, k, err);
out:
    OPENSSL_cleanse(kek, sizeof kek);
    OPENSSL_cleanse(master, sizeof master);
    json_decref(o);
    return rc;
}

struct repo_key *repo_key_load(const char *file, const char *passphrase, struct vb_error *err)
{
    if (!file)
        return NULL;
    bool has = false;
    if (repo_keyfile_has_passphrase(file, &has, err) < 0)
        return NULL;
    char asked[REPO_PASSPHRASE_MAX];
    if (has && !passphrase) {
        char prompt[300];
        snprintf(prompt, sizeof prompt, "Passphrase of %s: ", file);
        if (repo_passphrase_ask(prompt, false, asked, sizeof asked, err) < 0) {
            vb_error_prefix(err,
                            "%s: the key file is protected by a passphrase "
                            "(VIRTBACKUP_KEY_PASSPHRASE or a terminal)",
                            file);
            return NULL;
        }
        passphrase = asked;
    }
    struct repo_key *k = malloc(sizeof *k);
    if (!k)
        vb_error_errno(err, "%s", file);
    else if (repo_keyfile_read(file, has ? passphrase : NULL, k, err) < 0) {
        repo_key_free(k);
        k = NULL;
    }
    OPENSSL_cleanse(asked, sizeof asked);
    return k;
}

struct repo *repo_open_key_file(const char *path, const char *file, const char *passphrase,
                                struct vb_error *err)
{
    struct repo *r = repo_open(path, NULL, err);
    if (!r || !r->config.encrypted || !file)
        return r;
    struct repo_key *k = repo_key_load(file, passphrase, err);
    int rc = k ? repo_use_key(r, k, err) : -1;
    repo_key_free(k);
    if (rc < 0) {
        repo_close(r);
        return NULL;
    }
    return r;
}

void repo_key_free(struct repo_key *k)
{
    if (!k)
        return;
    repo_key_wipe(k);
    free(k);
}

const char *repo_passphrase_keep(char *taken)
{
    static char kept[REPO_PASSPHRASE_MAX];
    if (!taken)
        return NULL;
    size_t len = strlen(taken);
    const char *out = NULL;
    if (len < sizeof kept) {
        memcpy(kept, taken, len + 1);
        out = kept;
    }
    OPENSSL_cleanse(taken, len);
    free(taken);
    return out;
}

/* one line from the terminal with echo off */
static int read_hidden(FILE *tty, const char *prompt, char *buf, size_t cap, struct vb_error *err)
{
    struct termios old, quiet;
    int fd = fileno(tty);
    bool restore = tcgetattr(fd, &old) == 0;
    if (restore) {
        quiet = old;
        quiet.c_lflag &= ~(tcflag_t)ECHO;
        tcsetattr(fd, TCSAFLUSH, &quiet);
    }
    fputs(prompt, tty);
    fflush(tty);
    char *got = fgets(buf, (int)cap, tty);
    if (restore)
        tcsetattr(fd, TCSAFLUSH, &old);
    fputs("\n", tty);
    if (!got)
        return vb_error_set(err, "no passphrase read");
    buf[strcspn(buf, "\n")] = '\0';
    if (!buf[0])
        return vb_error_set(err, "empty passphrase");
    return 0;
}

int repo_passphrase_ask(const char *prompt, bool confirm, char *buf, size_t cap,
                        struct vb_error *err)
{
    FILE *tty = fopen("/dev/tty", "r+e");
    if (!tty)
        return vb_error_errno(err, "no terminal to ask for the passphrase on");
    int rc = read_hidden(tty, prompt, buf, cap, err);
    if (rc == 0 && confirm) {
        char again[REPO_PASSPHRASE_MAX];
        rc = read_hidden(tty, "Again: ", again, sizeof again, err);
        if (rc == 0 && strcmp(again, buf) != 0)
            rc = vb_error_set(err, "the passphrases differ");
        OPENSSL_cleanse(again, sizeof again);
    }
    fclose(tty);
    return rc;
}

/* the check value of paper line i (1..4): the first 2 bytes of HMAC-SHA-256 keyed by the
 * line number over the line's 8 bytes, so a swapped or mistyped line is caught */
static int paper_check(unsigned i, const unsigned char *bytes, char out[5], struct vb_error *err)
{
    unsigned char label = (unsigned char)i, mac[32];
    if (repo_hmac_sha256(&label, 1, bytes, 8, mac, err) < 0)
        return -1;
    repo_hex_encode(mac, 2, out);
    return 0;
}

int repo_key_paper_write(FILE *f, const struct repo_key *k, struct vb_error *err)
{
    fprintf(f, "# virtbackup repository key (virtbackup-repository(5)); keep it secret.\n"
               "# Type it back with: virtrepo key import --paper FILE\n");
    for (unsigned i = 1; i <= 4; i++) {
        const unsigned char *b = k->master + 8 * (i - 1);
        char hex[17], check[5];
        repo_hex_encode(b, 8, hex);
        if (paper_check(i, b, check, err) < 0)
            return -1;
        fprintf(f, "%u: %.4s %.4s %.4s %.4s  %s\n", i, hex, hex + 4, hex + 8, hex + 12, check);
    }
    fprintf(f, "fingerprint: %s\n", k->fingerprint);
    return ferror(f) ? vb_error_errno(err, "writing the paper key") : 0;
}

int repo_key_paper_read(FILE *f, struct repo_key *k, struct vb_error *err)
{
    unsigned char master[REPO_KEY_SIZE];
    bool seen[5] = {false};
    char fp[REPO_FINGERPRINT_HEX + 1] = "";
    char line[512];
    int rc = -1;
    for (unsigned no = 1; fgets(line, sizeof line, f); no++) {
        line[strcspn(line, "#\n")] = '\0';
        char packed[sizeof line];
        size_t n = 0;
        for (const char *c = line; *c; c++)
            if (*c != ' ' && *c != '\t' && *c != '\r')
                packed[n++] = *c;
        packed[n] = '\0';
        if (n == 0)
            continue;
        if (strncmp(packed, "fingerprint:", 12) == 0) {
            size_t fl = strlen(packed + 12);
            memcpy(fp, packed + 12, fl < sizeof fp ? fl + 1 : sizeof fp - 1);
            fp[sizeof fp - 1] = '\0';
            continue;
        }
        unsigned i = (unsigned)(packed[0] - '0');
        unsigned char b[8];
        char check[5];
        if (n != 2 + 16 + 4 || i < 1 || i > 4 || packed[1] != ':') {
            vb_error_set(err, "paper key, line %u: not \"N: xxxx xxxx xxxx xxxx  cccc\"", no);
            goto out;
        }
        char hex[17];
        memcpy(hex, packed + 2, 16);
        hex[16] = '\0';
        if (repo_hex_decode(hex, b, 8) < 0 || paper_check(i, b, check, err) < 0) {
            vb_error_set(err, "paper key, line %u: not hex digits", no);
            goto out;
        }
        if (strncasecmp(check, packed + 18, 4) != 0) {
            vb_error_set(err,
                         "paper key, line %u: check value %.4s, expected %s: a mistyped "
                         "digit on this line",
                         no, packed + 18, check);
            goto out;
        }
        memcpy(master + 8 * (i - 1), b, 8);
        seen[i] = true;
    }
    for (unsigned i = 1; i <= 4; i++)
        if (!seen[i]) {
            vb_error_set(err, "paper key: line %u of the key is missing", i);
            goto out;
        }
    if (repo_key_derive(master, k, err) < 0)
        goto out;
    if (fp[0] && strcasecmp(fp, k->fingerprint) != 0) {
        repo_key_wipe(k);
        vb_error_set(err, "paper key: fingerprint %s, the key's is another", fp);
        goto out;
    }
    rc = 0;
out:
    OPENSSL_cleanse(master, sizeof master);
    OPENSSL_cleanse(line, sizeof line);
    return rc;
}
