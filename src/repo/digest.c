/* SHA-256 through OpenSSL's EVP interface, hex form and parse (digest.h). */
#include <openssl/evp.h>
#include <stdlib.h>
#include <string.h>

#include "digest.h"

void repo_digest_of(const void *data, size_t len, repo_digest *out)
{
    unsigned int n = 0;
    /* EVP_Digest fails only when the library cannot allocate its context */
    if (EVP_Digest(data, len, out->b, &n, EVP_sha256(), NULL) != 1 || n != REPO_DIGEST_SIZE)
        abort();
}

bool repo_digest_is_zero(const repo_digest *d)
{
    unsigned char acc = 0;
    for (size_t i = 0; i < REPO_DIGEST_SIZE; i++)
        acc |= d->b[i];
    return acc == 0;
}

bool repo_digest_equal(const repo_digest *a, const repo_digest *b)
{
    return memcmp(a->b, b->b, REPO_DIGEST_SIZE) == 0;
}

void repo_digest_hex(const repo_digest *d, char hex[REPO_DIGEST_HEX + 1])
{
    static const char digits[] = "0123456789abcdef";
    for (size_t i = 0; i < REPO_DIGEST_SIZE; i++) {
        hex[2 * i] = digits[d->b[i] >> 4];
        hex[2 * i + 1] = digits[d->b[i] & 15];
    }
    hex[REPO_DIGEST_HEX] = '\0';
}

static int hex_value(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

int repo_digest_parse(const char *hex, repo_digest *out)
{
    repo_digest d;
    for (size_t i = 0; i < REPO_DIGEST_SIZE; i++) {
        int hi = hex_value(hex[2 * i]);
        int lo = hi < 0 ? -1 : hex_value(hex[2 * i + 1]);
        if (hi < 0 || lo < 0)
            return -1;
        d.b[i] = (unsigned char)(hi << 4 | lo);
    }
    if (hex[REPO_DIGEST_HEX] != '\0')
        return -1;
    *out = d;
    return 0;
}

struct repo_digest_ctx {
    EVP_MD_CTX *md;
};

struct repo_digest_ctx *repo_digest_begin(struct vb_error *err)
{
    struct repo_digest_ctx *c = malloc(sizeof(*c));
    if (!c) {
        vb_error_errno(err, "SHA-256");
        return NULL;
    }
    c->md = EVP_MD_CTX_new();
    if (!c->md || EVP_DigestInit_ex(c->md, EVP_sha256(), NULL) != 1) {
        EVP_MD_CTX_free(c->md);
        free(c);
        vb_error_set(err, "SHA-256: libcrypto cannot set up a digest");
        return NULL;
    }
    return c;
}

void repo_digest_update(struct repo_digest_ctx *c, const void *data, size_t len)
{
    if (EVP_DigestUpdate(c->md, data, len) != 1)
        abort(); /* SHA-256's update has no failure but a programming error */
}

void repo_digest_end(struct repo_digest_ctx *c, repo_digest *out)
{
    unsigned int n = 0;
    if (EVP_DigestFinal_ex(c->md, out->b, &n) != 1 || n != REPO_DIGEST_SIZE)
        abort();
    EVP_MD_CTX_free(c->md);
    free(c);
}
