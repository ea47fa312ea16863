/* HMAC, HKDF, AES-256-GCM, scrypt and random bytes through libcrypto's EVP interface, and the
 * derivation of a repository key's subkeys and fingerprint (crypto.h). */
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>
#include <stddef.h>
#include <string.h>

#include "crypto.h"

/* libcrypto's reason for the last failure, or a default */
static const char *ssl_reason(void)
{
    unsigned long e = ERR_get_error();
    const char *r = e ? ERR_reason_error_string(e) : NULL;
    ERR_clear_error();
    return r ? r : "libcrypto failure";
}

int repo_hmac_sha256(const void *key, size_t key_len, const void *data, size_t len,
                     unsigned char out[32], struct vb_error *err)
{
    unsigned int n = 0;
    static const unsigned char none;
    if (!HMAC(EVP_sha256(), key, (int)key_len, len ? data : &none, len, out, &n) || n != 32)
        return vb_error_set(err, "HMAC-SHA-256: %s", ssl_reason());
    return 0;
}

int repo_hkdf_sha256(const void *ikm, size_t ikm_len, const void *salt, size_t salt_len,
                     const void *info, size_t info_len, void *out, size_t out_len,
                     struct vb_error *err)
{
    static const unsigned char zero_salt[32];
    unsigned char prk[32], t[32 + 255 + 1];
    if (out_len > 255 * 32 || info_len > 255)
        return vb_error_set(err, "HKDF: %zu bytes of output or %zu of info is too much", out_len,
                            info_len);
    /* extract: an empty salt is a string of hash-length zeros (RFC 5869, 2.2) */
    if (repo_hmac_sha256(salt_len ? salt : zero_salt, salt_len ? salt_len : sizeof zero_salt, ikm,
                         ikm_len, prk, err) < 0)
        return -1;
    /* expand: T(i) = HMAC(PRK, T(i-1) | info | i) */
    unsigned char *o = out;
    size_t prev = 0, done = 0;
    for (unsigned i = 1; done < out_len; i++) {
        unsigned char block[32];
        if (info_len)
            memcpy(t + prev, info, info_len);
        t[prev + info_len] = (unsigned char)i;
        if (repo_hmac_sha256(prk, sizeof prk, t, prev + info_len + 1, block, err) < 0) {
            OPENSSL_cleanse(prk, sizeof prk);
            return -1;
        }
        size_t n = out_len - done < 32 ? out_len - done : 32;
        memcpy(o + done, block, n);
        memcpy(t, block, 32);
        prev = 32;
        done += n;
        OPENSSL_cleanse(block, sizeof block);
    }
    OPENSSL_cleanse(prk, sizeof prk);
    OPENSSL_cleanse(t, sizeof t);
    return 0;
}

static int gcm(int enc, const unsigned char *key, const unsigned char *nonce, const void *aad,
               size_t aad_len, const void *in, size_t len, void *out, struct vb_error *err)
{
    EVP_CIPHER_CTX *c = EVP_CIPHER_CTX_new();
    int n = 0,
        ok = c && EVP_CipherInit_ex(c, EVP_aes_256_gcm(), NULL, NULL, NULL, enc) == 1 &&
             EVP_CIPHER_CTX_ctrl(c, EVP_CTRL_GCM_SET_IVLEN, REPO_GCM_NONCE_SIZE, NULL) == 1 &&
             EVP_CipherInit_ex(c, NULL, NULL, key, nonce, enc) == 1 &&
             (aad_len == 0 || EVP_CipherUpdate(c, NULL, &n, aad, (int)aad_len) == 1);
    unsigned char *o = out;
    const unsigned char *i = in;
    /* EVP lengths are ints: feed at most 1 GiB at a time */
    for (size_t done = 0; ok && done < len;) {
        size_t step = len - done > (1u << 30) ? (1u << 30) : len - done;
        ok = EVP_CipherUpdate(c, o + done, &n, i + done, (int)step) == 1 && (size_t)n == step;
        done += step;
    }
    if (ok && !enc)
        ok =
            EVP_CIPHER_CTX_ctrl(c, EVP_CTRL_GCM_SET_TAG, REPO_GCM_TAG_SIZE, (void *)(i + len)) == 1;
    unsigned char tail[16];
    int fin = ok ? EVP_CipherFinal_ex(c, tail, &n) : 0;
    if (ok && enc && fin == 1)
        ok = EVP_CIPHER_CTX_ctrl(c, EVP_CTRL_GCM_GET_TAG, REPO_GCM_TAG_SIZE, o + len) == 1;
    EVP_CIPHER_CTX_free(c);
    if (!ok)
        return vb_error_set(err, "AES-256-GCM: %s", ssl_reason());
    if (fin != 1) {
        ERR_clear_error();
        return vb_error_set(err, "AES-256-GCM: authentication failed (wrong key, or the bytes "
                                 "were damaged or altered)");
    }
    return 0;
}

int repo_gcm_seal(const unsigned char key[REPO_KEY_SIZE],
                  const unsigned char nonce[REPO_GCM_NONCE_SIZE], const void *aad, size_t aad_len,
                  const void *in, size_t len, void *out, struct vb_error *err)
{
    return gcm(1, key, nonce, aad, aad_len, in, len, out, err);
}

int repo_gcm_open(const unsigned char key[REPO_KEY_SIZE],
                  const unsigned char nonce[REPO_GCM_NONCE_SIZE], const void *aad, size_t aad_len,
                  const void *in, size_t len, void *out, struct vb_error *err)
{
    return gcm(0, key, nonce, aad, aad_len, in, len, out, err);
}

int repo_random_bytes(void *buf, size_t len, struct vb_error *err)
{
    if (RAND_bytes(buf, (int)len) != 1)
        return vb_error_set(err, "random bytes: %s", ssl_reason());
    return 0;
}

int repo_scrypt(const char *passphrase, const unsigned char *salt, size_t salt_len, uint64_t n,
                uint64_t r, uint64_t p, void *out, size_t out_len, struct vb_error *err)
{
    /* N=32768, r=8 needs 32 MiB: allow up to 1 GiB for stronger parameters */
    if (EVP_PBE_scrypt(passphrase, strlen(passphrase), salt, salt_len, n, r, p, 1ull << 30, out,
                       out_len) != 1)
        return vb_error_set(err, "scrypt: %s", ssl_reason());
    return 0;
}

void repo_hex_encode(const void *data, size_t len, char *hex)
{
    static const char digits[] = "0123456789abcdef";
    const unsigned char *d = data;
    for (size_t i = 0; i < len; i++) {
        hex[2 * i] = digits[d[i] >> 4];
        hex[2 * i + 1] = digits[d[i] & 15];
    }
    hex[2 * len] = '\0';
}

static int nibble(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

int repo_hex_decode(const char *hex, void *out, size_t len)
{
    unsigned char *o = out;
    if (strlen(hex) != 2 * len)
        return -1;
    for (size_t i = 0; i < len; i++) {
        int hi = nibble(hex[2 * i]), lo = nibble(hex[2 * i + 1]);
        if (hi < 0 || lo < 0)
            return -1;
        o[i] = (unsigned char)(hi << 4 | lo);
    }
    return 0;
}

int repo_memcmp_ct(const void *a, const void *b, size_t len)
{
    return CRYPTO_memcmp(a, b, len) != 0;
}

int repo_key_derive(const unsigned char master[REPO_KEY_SIZE], struct repo_key *k,
                    struct vb_error *err)
{
    static const struct {
        const char *info;
        size_t off;
    } sub[] = {
        {"virtbackup chunk-id v1", offsetof(struct repo_key, chunk_id)},
        {"virtbackup chunk-enc v1", offsetof(struct repo_key, chunk_enc)},
        {"virtbackup meta-mac v1", offsetof(struct repo_key, meta_mac)},
        {"virtbackup meta-enc v1", offsetof(struct repo_key, meta_enc)},
    };
    static const char fp_label[] = "virtbackup fingerprint v1";
    memcpy(k->master, master, REPO_KEY_SIZE);
    for (size_t i = 0; i < sizeof sub / sizeof *sub; i++)
        if (repo_hkdf_sha256(master, REPO_KEY_SIZE, NULL, 0, sub[i].info, strlen(sub[i].info),
                             (unsigned char *)k + sub[i].off, REPO_KEY_SIZE, err) < 0) {
            repo_key_wipe(k);
            return -1;
        }
    unsigned char fp[32];
    if (repo_hmac_sha256(master, REPO_KEY_SIZE, fp_label, strlen(fp_label), fp, err) < 0) {
        repo_key_wipe(k);
        return -1;
    }
    repo_hex_encode(fp, REPO_FINGERPRINT_HEX / 2, k->fingerprint);
    return 0;
}

void repo_key_wipe(struct repo_key *k)
{
    OPENSSL_cleanse(k, sizeof *k);
}
