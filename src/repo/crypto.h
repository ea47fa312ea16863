/* The cryptography of an encrypted repository (virtbackup-repository(5), ENCRYPTION), all
 * through OpenSSL's libcrypto: HMAC-SHA-256, HKDF-SHA-256 (RFC 5869), AES-256-GCM, scrypt,
 * random bytes, and the repository key: the master key, the four subkeys derived from it and
 * its fingerprint. Key material never leaves these structures except into the key file. */
#ifndef VB_REPO_CRYPTO_H
#define VB_REPO_CRYPTO_H

#include <stddef.h>
#include <stdint.h>

#include "digest.h"
#include "error.h"

#define REPO_KEY_SIZE        32
#define REPO_GCM_NONCE_SIZE  12
#define REPO_GCM_TAG_SIZE    16
#define REPO_FINGERPRINT_HEX 32 /* 16 bytes */

/* A repository key: the master key, its subkeys and its fingerprint. */
struct repo_key {
    unsigned char master[REPO_KEY_SIZE];
    unsigned char chunk_id[REPO_KEY_SIZE];  /* names chunks and indexes (HMAC) */
    unsigned char chunk_enc[REPO_KEY_SIZE]; /* seals chunk payloads */
    unsigned char meta_mac[REPO_KEY_SIZE];  /* authenticates manifests */
    unsigned char meta_enc[REPO_KEY_SIZE];  /* seals the secret part of manifests */
    char fingerprint[REPO_FINGERPRINT_HEX + 1];
};

/* Fills k from the master key: the subkeys (HKDF-SHA-256, empty salt, info "virtbackup
 * <name> v1") and the fingerprint (the first 16 bytes of HMAC-SHA-256(master, "virtbackup
 * fingerprint v1"), hex). 0, or -1. */
int repo_key_derive(const unsigned char master[REPO_KEY_SIZE], struct repo_key *k,
                    struct vb_error *err);

/* Overwrites the key material (also before free). */
void repo_key_wipe(struct repo_key *k);

/* HMAC-SHA-256 of data under key. 0, or -1. */
int repo_hmac_sha256(const void *key, size_t key_len, const void *data, size_t len,
                     unsigned char out[32], struct vb_error *err);

/* HKDF-SHA-256 (RFC 5869) of ikm: out_len bytes (at most 255 * 32). 0, or -1. */
int repo_hkdf_sha256(const void *ikm, size_t ikm_len, const void *salt, size_t salt_len,
                     const void *info, size_t info_len, void *out, size_t out_len,
                     struct vb_error *err);

/* AES-256-GCM: out gets len bytes of ciphertext followed by the 16-byte tag. 0, or -1. */
int repo_gcm_seal(const unsigned char key[REPO_KEY_SIZE],
                  const unsigned char nonce[REPO_GCM_NONCE_SIZE], const void *aad, size_t aad_len,
                  const void *in, size_t len, void *out, struct vb_error *err);

/* The inverse: in holds len bytes of ciphertext and the tag (len + 16 bytes); out gets len
 * bytes. A tag that does not match (wrong key, damaged or altered bytes) is an error. */
int repo_gcm_open(const unsigned char key[REPO_KEY_SIZE],
                  const unsigned char nonce[REPO_GCM_NONCE_SIZE], const void *aad, size_t aad_len,
                  const void *in, size_t len, void *out, struct vb_error *err);

/* len bytes from the operating system's random generator (RAND_bytes). 0, or -1. */
int repo_random_bytes(void *buf, size_t len, struct vb_error *err);

/* scrypt(passphrase, salt, N, r, p) into out_len bytes. 0, or -1. */
int repo_scrypt(const char *passphrase, const unsigned char *salt, size_t salt_len, uint64_t n,
                uint64_t r, uint64_t p, void *out, size_t out_len, struct vb_error *err);

/* Lower-case hex of len bytes into hex (2 * len + 1 bytes). */
void repo_hex_encode(const void *data, size_t len, char *hex);

/* Exactly 2 * len hex digits into out. 0, or -1. */
int repo_hex_decode(const char *hex, void *out, size_t len);

/* Constant-time comparison of len bytes: 0 when equal. */
int repo_memcmp_ct(const void *a, const void *b, size_t len);

#endif
