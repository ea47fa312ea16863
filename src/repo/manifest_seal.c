/* Sealed manifests of encrypted repositories (manifest.h): the split into the public part,
 * readable without the key (what prune, gc and scrubbing need), and the secret part, sealed;
 * the mac over both. The layout is in virtbackup-repository(5), ENCRYPTION. */
#include <jansson.h>
#include <openssl/crypto.h>
#include <stdlib.h>
#include <string.h>

#include "crypto.h"
#include "manifest.h"
#include "manifest_json.h"

#define SEALED_PLACEHOLDER "(sealed)"

/* moves field name from from to to (when present) */
static int move_field(json_t *from, json_t *to, const char *name, const char *as)
{
    json_t *v = json_object_get(from, name);
    if (!v)
        return 0;
    if (json_object_set(to, as ? as : name, v) < 0)
        return -1;
    return json_object_del(from, name);
}

static const char *const disk_secrets[] = {"format", "qcow_json", "bytes_read", "bytes_new",
                                           "bytes_stored"};

/* the secret part taken out of o (the full manifest object) */
static json_t *split_secret(json_t *o)
{
    json_t *secret = json_object(), *disks = json_array(), *blobs = json_array();
    if (!secret || !disks || !blobs || json_object_set_new(secret, "disks", disks) < 0 ||
        json_object_set_new(secret, "blobs", blobs) < 0) {
        json_decref(secret);
        return NULL;
    }
    int bad =
        move_field(o, secret, "domain_xml", NULL) < 0 || move_field(o, secret, "source", NULL) < 0;
    json_t *cp = json_object_get(o, "checkpoint");
    if (json_is_object(cp))
        bad |= move_field(cp, secret, "xml", "checkpoint_xml") < 0;
    size_t i;
    json_t *d;
    json_array_foreach(json_object_get(o, "disks"), i, d)
    {
        json_t *s = json_object();
        bad |= !s || json_array_append_new(disks, s) < 0;
        for (size_t f = 0; s && f < sizeof disk_secrets / sizeof *disk_secrets; f++)
            bad |= move_field(d, s, disk_secrets[f], NULL) < 0;
    }
    json_array_foreach(json_object_get(o, "blobs"), i, d)
    {
        json_t *s = json_object();
        bad |= !s || json_array_append_new(blobs, s) < 0 || move_field(d, s, "path", NULL) < 0;
    }
    if (bad) {
        json_decref(secret);
        return NULL;
    }
    return secret;
}

/* the mac of o (without its "mac"): HMAC of the sorted compact JSON text */
static int mac_of(json_t *o, const struct repo_key *k, unsigned char mac[32], struct vb_error *err)
{
    char *text = json_dumps(o, JSON_SORT_KEYS | JSON_COMPACT);
    if (!text)
        return vb_error_set(err, "snapshot manifest: out of memory");
    int rc = repo_hmac_sha256(k->meta_mac, REPO_KEY_SIZE, text, strlen(text), mac, err);
    free(text);
    return rc;
}

char *repo_manifest_to_sealed_json(const struct repo_manifest *m, const struct repo_key *k,
                                   struct vb_error *err)
{
    /* what is sealed must be a valid manifest first */
    char *plain = repo_manifest_to_json(m, err);
    if (!plain)
        return NULL;
    OPENSSL_cleanse(plain, strlen(plain));
    free(plain);
    json_t *o = repo_manifest_build_json(m, err);
    if (!o)
        return NULL;
    json_t *secret = split_secret(o);
    char *text = secret ? json_dumps(secret, JSON_SORT_KEYS | JSON_COMPACT) : NULL;
    json_decref(secret);
    char *out = NULL, *hex = NULL;
    unsigned char *sealed = NULL;
    if (!text) {
        vb_error_set(err, "snapshot manifest: out of memory");
        goto done;
    }
    size_t len = strlen(text), total = REPO_GCM_NONCE_SIZE + len + REPO_GCM_TAG_SIZE;
    sealed = malloc(total);
    hex = malloc(2 * total + 1);
    if (!sealed || !hex) {
        vb_error_set(err, "snapshot manifest: out of memory");
        goto done;
    }
    /* a random nonce: virtbackup-repository(5) states the limit of sealed objects per key */
    if (repo_random_bytes(sealed, REPO_GCM_NONCE_SIZE, err) < 0 ||
        repo_gcm_seal(k->meta_enc, sealed, NULL, 0, text, len, sealed + REPO_GCM_NONCE_SIZE, err) <
            0)
        goto done;
    repo_hex_encode(sealed, total, hex);
    unsigned char mac[32];
    char mac_hex[65];
    if (json_object_set_new(o, "sealed", json_string(hex)) < 0) {
        vb_error_set(err, "snapshot manifest: out of memory");
        goto done;
    }
    if (mac_of(o, k, mac, err) < 0)
        goto done;
    repo_hex_encode(mac, sizeof mac, mac_hex);
    if (json_object_set_new(o, "mac", json_string(mac_hex)) < 0 ||
        !(out = json_dumps(o, JSON_INDENT(2))))
        vb_error_set(err, "snapshot manifest: out of memory");
done:
    if (text) {
        OPENSSL_cleanse(text, strlen(text));
        free(text);
    }
    free(sealed);
    free(hex);
    json_decref(o);
    return out;
}

/* puts the fields of secret back into o */
static int merge_secret(json_t *o, json_t *secret, struct vb_error *err)
{
    json_t *sd = json_object_get(secret, "disks"), *sb = json_object_get(secret, "blobs");
    json_t *od = json_object_get(o, "disks"), *ob = json_object_get(o, "blobs");
    if (!json_is_object(secret) || !json_is_array(sd) || !json_is_array(sb) || !json_is_array(od) ||
        !json_is_array(ob) || json_array_size(sd) != json_array_size(od) ||
        json_array_size(sb) != json_array_size(ob))
        return vb_error_set(err, "snapshot manifest: the sealed part does not match the public "
                                 "part's disks and blobs");
    int bad =
        move_field(secret, o, "domain_xml", NULL) < 0 || move_field(secret, o, "source", NULL) < 0;
    json_t *cp = json_object_get(o, "checkpoint");
    if (json_is_object(cp))
        bad |= move_field(secret, cp, "checkpoint_xml", "xml") < 0;
    for (size_t i = 0; i < json_array_size(od); i++)
        bad |= json_object_update(json_array_get(od, i), json_array_get(sd, i)) < 0;
    for (size_t i = 0; i < json_array_size(ob); i++)
        bad |= json_object_update(json_array_get(ob, i), json_array_get(sb, i)) < 0;
    if (bad)
        return vb_error_set(err, "snapshot manifest: the sealed part is not valid");
    return 0;
}

/* placeholders for the secret fields, so that the strict parse reads the public part */
static int fill_placeholders(json_t *o)
{
    int bad = json_object_set_new(o, "domain_xml", json_string(SEALED_PLACEHOLDER)) < 0;
    json_t *cp = json_object_get(o, "checkpoint");
    if (json_is_object(cp))
        bad |= json_object_set_new(cp, "xml", json_string(SEALED_PLACEHOLDER)) < 0;
    size_t i;
    json_t *d;
    json_array_foreach(json_object_get(o, "disks"), i, d)
    {
        if (!json_is_object(d))
            continue;
        bad |= json_object_set_new(d, "format", json_string(SEALED_PLACEHOLDER)) < 0 ||
               json_object_set_new(d, "qcow_json", json_null()) < 0;
        for (size_t f = 2; f < sizeof disk_secrets / sizeof *disk_secrets; f++)
            bad |= json_object_set_new(d, disk_secrets[f], json_integer(0)) < 0;
    }
    json_array_foreach(json_object_get(o, "blobs"), i, d)
    {
        if (json_is_object(d))
            bad |= json_object_set_new(d, "path", json_string(SEALED_PLACEHOLDER)) < 0;
    }
    return bad ? -1 : 0;
}

static int open_sealed(json_t *o, const char *sealed_hex, const char *mac_hex,
                       const struct repo_key *k, struct vb_error *err)
{
    unsigned char mac[32], want[32];
    if (repo_hex_decode(mac_hex, want, sizeof want) < 0)
        return vb_error_set(err, "snapshot manifest: mac: not 64 hex digits");
    json_object_del(o, "mac");
    if (mac_of(o, k, mac, err) < 0)
        return -1;
    if (repo_memcmp_ct(mac, want, sizeof mac) != 0)
        return vb_error_set(err, "snapshot manifest: the mac does not match (not made with this "
                                 "key, or altered)");
    size_t hl = strlen(sealed_hex);
    if (hl % 2 || hl < 2 * (REPO_GCM_NONCE_SIZE + REPO_GCM_TAG_SIZE))
        return vb_error_set(err, "snapshot manifest: sealed: too short");
    size_t total = hl / 2, len = total - REPO_GCM_NONCE_SIZE - REPO_GCM_TAG_SIZE;
    unsigned char *bytes = malloc(total);
    char *text = malloc(len + 1);
    int rc = -1;
    if (!bytes || !text)
        vb_error_set(err, "snapshot manifest: out of memory");
    else if (repo_hex_decode(sealed_hex, bytes, total) < 0)
        vb_error_set(err, "snapshot manifest: sealed: not hex digits");
    else if (repo_gcm_open(k->meta_enc, bytes, NULL, 0, bytes + REPO_GCM_NONCE_SIZE, len, text,
                           err) < 0)
        vb_error_prefix(err, "snapshot manifest: sealed");
    else
        rc = 0;
    if (rc == 0) {
        json_error_t je;
        json_t *secret = json_loadb(text, len, JSON_REJECT_DUPLICATES, &je);
        rc = secret ? merge_secret(o, secret, err)
                    : vb_error_set(err, "snapshot manifest: sealed: not JSON: %s", je.text);
        json_decref(secret);
        OPENSSL_cleanse(text, len);
    }
    free(bytes);
    free(text);
    return rc;
}

int repo_manifest_parse_sealed(const char *json, size_t len, const struct repo_key *k,
                               struct repo_manifest *m, struct vb_error *err)
{
    memset(m, 0, sizeof(*m));
    json_error_t je;
    json_t *o = json_loadb(json, len, JSON_REJECT_DUPLICATES, &je);
    if (!o)
        return vb_error_set(err, "snapshot manifest: not JSON: %s (line %d)", je.text, je.line);
    json_t *sealed = json_object_get(o, "sealed"), *mac = json_object_get(o, "mac");
    int rc = -1;
    if (!json_is_string(sealed) || !json_is_string(mac)) {
        vb_error_set(err, "snapshot manifest: not sealed (no \"sealed\" and \"mac\"), which every "
                          "manifest of an encrypted repository is");
        goto out;
    }
    char *sealed_hex = strdup(json_string_value(sealed)), *mac_hex = strdup(json_string_value(mac));
    if (!sealed_hex || !mac_hex)
        rc = vb_error_set(err, "snapshot manifest: out of memory");
    else if (k)
        rc = open_sealed(o, sealed_hex, mac_hex, k, err);
    else
        rc = fill_placeholders(o) < 0 ? vb_error_set(err, "snapshot manifest: out of memory") : 0;
    free(sealed_hex);
    free(mac_hex);
    json_object_del(o, "sealed");
    json_object_del(o, "mac");
    if (rc == 0)
        rc = repo_manifest_parse_json(o, m, err);
    if (rc == 0)
        m->sealed = !k;
out:
    json_decref(o);
    return rc;
}
