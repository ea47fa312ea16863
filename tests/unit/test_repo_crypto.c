/* src/repo: the cryptography of an encrypted repository (virtbackup-repository(5),
 * ENCRYPTION): HMAC-SHA-256 (RFC 4231) and HKDF-SHA-256 (RFC 5869) known answers, AES-256-GCM
 * known answers, round trip and refusal of every altered byte, key derivation, and key files:
 * round trip with and without a passphrase, a wrong or missing passphrase refused, rewrap,
 * mode 0600, the paper form read back and a mistyped digit caught. */
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include "crypto.h"
#include "keyfile.h"
#include "object.h"
#include "repo.h"
#include "testutil.h"

static void put32(unsigned char *p, uint32_t v)
{
    for (int i = 0; i < 4; i++)
        p[i] = (unsigned char)(v >> (8 * i));
}

static void check_bytes(const unsigned char *got, const char *want_hex, const char *what)
{
    size_t len = strlen(want_hex) / 2;
    char hex[600];
    repo_hex_encode(got, len, hex);
    CHECK_MSG(strcmp(hex, want_hex) == 0, "%s: %s, want %s", what, hex, want_hex);
}

static void test_hmac(void)
{
    struct vb_error err = {0};
    unsigned char key[20], out[32];
    memset(key, 0x0b, sizeof key);
    CHECK(repo_hmac_sha256(key, 20, "Hi There", 8, out, &err) == 0);
    check_bytes(out, "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7",
                "RFC 4231 case 1");
    const char *d2 = "what do ya want for nothing?";
    CHECK(repo_hmac_sha256("Jefe", 4, d2, strlen(d2), out, &err) == 0);
    check_bytes(out, "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843",
                "RFC 4231 case 2");
    /* case 6: a key longer than the block */
    unsigned char big[131];
    memset(big, 0xaa, sizeof big);
    const char *d6 = "Test Using Larger Than Block-Size Key - Hash Key First";
    CHECK(repo_hmac_sha256(big, sizeof big, d6, strlen(d6), out, &err) == 0);
    check_bytes(out, "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54",
                "RFC 4231 case 6");
}

static void test_hkdf(void)
{
    struct vb_error err = {0};
    unsigned char ikm[22], salt[13], info[10], okm[82];
    memset(ikm, 0x0b, sizeof ikm);
    for (unsigned i = 0; i < sizeof salt; i++)
        salt[i] = (unsigned char)i;
    for (unsigned i = 0; i < sizeof info; i++)
        info[i] = (unsigned char)(0xf0 + i);
    CHECK(repo_hkdf_sha256(ikm, 22, salt, 13, info, 10, okm, 42, &err) == 0);
    check_bytes(okm,
                "3cb25f25faacd57a90434f64d0362f2a2d2d0a90cf1a5a4c5db02d56ecc4c5bf34007208d5b88718"
                "5865",
                "RFC 5869 case 1");
    /* case 3: empty salt and info */
    CHECK(repo_hkdf_sha256(ikm, 22, NULL, 0, NULL, 0, okm, 42, &err) == 0);
    check_bytes(okm,
                "8da4e775a563c18f715f802a063c5a31b8a11f5c5ee1879ec3454e5f3c738d2d9d201395faa4b61a"
                "96c8",
                "RFC 5869 case 3");
    /* case 2: long inputs, 82 bytes (three blocks) */
    unsigned char ikm2[80], salt2[80], info2[80];
    for (unsigned i = 0; i < 80; i++) {
        ikm2[i] = (unsigned char)i;
        salt2[i] = (unsigned char)(0x60 + i);
        info2[i] = (unsigned char)(0xb0 + i);
    }
    CHECK(repo_hkdf_sha256(ikm2, 80, salt2, 80, info2, 80, okm, 82, &err) == 0);
    check_bytes(okm,
                "b11e398dc80327a1c8e7f78c596a49344f012eda2d4efad8a050cc4c19afa97c59045a99cac78272"
                "71cb41c65e590e09da3275600c2f09b8367793a9aca3db71cc30c58179ec3e87c14c01d5c1f3434f"
                "1d87",
                "RFC 5869 case 2");
}

static void test_gcm(void)
{
    struct vb_error err = {0};
    unsigned char key[32] = {0}, nonce[12] = {0}, out[64], back[48];
    /* the GCM specification's test cases 13 and 14 (256-bit zero key, zero nonce) */
    CHECK(repo_gcm_seal(key, nonce, NULL, 0, NULL, 0, out, &err) == 0);
    check_bytes(out, "530f8afbc74536b9a963b4f1c4cb738b", "GCM case 13 tag");
    unsigned char zero16[16] = {0};
    CHECK(repo_gcm_seal(key, nonce, NULL, 0, zero16, 16, out, &err) == 0);
    check_bytes(out, "cea7403d4d606b6e074ec5d3baf39d18d0d1c8a799996bf0265b98b5d48ab919",
                "GCM case 14");

    /* round trip with AAD; every flipped bit of ciphertext, tag, AAD or nonce refused */
    test_fill(key, sizeof key, 1);
    test_fill(nonce, sizeof nonce, 2);
    unsigned char pt[48], aad[12];
    test_fill(pt, sizeof pt, 3);
    test_fill(aad, sizeof aad, 4);
    CHECK(repo_gcm_seal(key, nonce, aad, 12, pt, 48, out, &err) == 0);
    CHECK(memcmp(out, pt, 48) != 0);
    CHECK_MSG(repo_gcm_open(key, nonce, aad, 12, out, 48, back, &err) == 0, "%s", err.msg);
    CHECK(memcmp(back, pt, 48) == 0);
    for (size_t i = 0; i < 64; i += 7) {
        out[i] ^= 0x10;
        err.msg[0] = '\0';
        CHECK_MSG(repo_gcm_open(key, nonce, aad, 12, out, 48, back, &err) < 0,
                  "byte %zu altered, accepted", i);
        CHECK(strstr(err.msg, "authentication failed") != NULL);
        out[i] ^= 0x10;
    }
    aad[3] ^= 1;
    CHECK(repo_gcm_open(key, nonce, aad, 12, out, 48, back, &err) < 0);
    aad[3] ^= 1;
    nonce[11] ^= 1;
    CHECK(repo_gcm_open(key, nonce, aad, 12, out, 48, back, &err) < 0);
    nonce[11] ^= 1;
    key[0] ^= 1;
    CHECK(repo_gcm_open(key, nonce, aad, 12, out, 48, back, &err) < 0);
}

static void test_derive(void)
{
    struct vb_error err = {0};
    unsigned char master[32];
    test_fill(master, sizeof master, 9);
    struct repo_key k, again;
    CHECK(repo_key_derive(master, &k, &err) == 0);
    CHECK(repo_key_derive(master, &again, &err) == 0);
    CHECK(memcmp(&k, &again, sizeof k) == 0); /* deterministic */
    CHECK(strlen(k.fingerprint) == 32);
    /* four different subkeys, none the master */
    const unsigned char *sub[] = {k.chunk_id, k.chunk_enc, k.meta_mac, k.meta_enc, k.master};
    for (int i = 0; i < 5; i++)
        for (int j = i + 1; j < 5; j++)
            CHECK(memcmp(sub[i], sub[j], 32) != 0);
    /* the fingerprint is the first 16 bytes of HMAC(master, label), as the format says */
    unsigned char mac[32];
    char hex[33];
    CHECK(repo_hmac_sha256(master, 32, "virtbackup fingerprint v1", 25, mac, &err) == 0);
    repo_hex_encode(mac, 16, hex);
    CHECK(strcmp(hex, k.fingerprint) == 0);
    /* and the chunk-id subkey HKDF(master, "", "virtbackup chunk-id v1") */
    unsigned char id[32];
    CHECK(repo_hkdf_sha256(master, 32, NULL, 0, "virtbackup chunk-id v1", 22, id, 32, &err) == 0);
    CHECK(memcmp(id, k.chunk_id, 32) == 0);
    repo_key_wipe(&k);
    unsigned char zero[sizeof k] = {0};
    CHECK(memcmp(&k, zero, sizeof k) == 0);
}

static void test_keyfile(void)
{
    struct vb_error err = {0};
    unsigned char master[32];
    test_fill(master, sizeof master, 11);
    struct repo_key want, got;
    CHECK(repo_key_derive(master, &want, &err) == 0);

    /* no passphrase */
    const char *plain = test_path("plain.key");
    CHECK_MSG(repo_keyfile_write(plain, master, NULL, false, &err) == 0, "%s", err.msg);
    struct stat st;
    CHECK(stat(plain, &st) == 0 && (st.st_mode & 0777) == 0600);
    bool has = true;
    CHECK(repo_keyfile_has_passphrase(plain, &has, &err) == 0 && !has);
    CHECK_MSG(repo_keyfile_read(plain, NULL, &got, &err) == 0, "%s", err.msg);
    CHECK(memcmp(&got, &want, sizeof got) == 0);
    /* an existing file is not replaced without replace */
    err.msg[0] = '\0';
    CHECK(repo_keyfile_write(plain, master, NULL, false, &err) < 0);
    CHECK(strstr(err.msg, "exists") != NULL);
    struct stat partial;
    CHECK(stat(test_path("plain.key.partial"), &partial) < 0);

    /* with a passphrase: right one, wrong one, none */
    const char *wrapped = test_path("wrapped.key");
    CHECK_MSG(repo_keyfile_write(wrapped, master, "correct horse", false, &err) == 0, "%s",
              err.msg);
    CHECK(repo_keyfile_has_passphrase(wrapped, &has, &err) == 0 && has);
    CHECK_MSG(repo_keyfile_read(wrapped, "correct horse", &got, &err) == 0, "%s", err.msg);
    CHECK(memcmp(&got, &want, sizeof got) == 0);
    err.msg[0] = '\0';
    CHECK(repo_keyfile_read(wrapped, "correct hors", &got, &err) < 0);
    CHECK_MSG(strstr(err.msg, "wrong passphrase") != NULL, "%s", err.msg);
    err.msg[0] = '\0';
    CHECK(repo_keyfile_read(wrapped, NULL, &got, &err) < 0);
    CHECK_MSG(strstr(err.msg, "passphrase") != NULL, "%s", err.msg);
    struct repo_key *loaded = repo_key_load(wrapped, "correct horse", &err);
    CHECK(loaded && memcmp(loaded, &want, sizeof want) == 0);
    repo_key_free(loaded);
    CHECK(repo_key_load(NULL, NULL, &err) == NULL);

    /* rewrap (key passwd): new passphrase works, the old one no longer, same key */
    CHECK_MSG(repo_keyfile_write(wrapped, master, "battery staple", true, &err) == 0, "%s",
              err.msg);
    CHECK(stat(wrapped, &st) == 0 && (st.st_mode & 0777) == 0600);
    CHECK(repo_keyfile_read(wrapped, "correct horse", &got, &err) < 0);
    CHECK(repo_keyfile_read(wrapped, "battery staple", &got, &err) == 0);
    CHECK(strcmp(got.fingerprint, want.fingerprint) == 0);

    /* not a key file */
    const char *junk = test_path("junk.key");
    test_write_file(junk, "{\"format\": \"other\"}", 19);
    err.msg[0] = '\0';
    CHECK(repo_keyfile_read(junk, NULL, &got, &err) < 0);
    CHECK(strstr(err.msg, "not a key file") != NULL);
}

static void test_paper(void)
{
    struct vb_error err = {0};
    unsigned char master[32];
    test_fill(master, sizeof master, 13);
    struct repo_key k, back;
    CHECK(repo_key_derive(master, &k, &err) == 0);
    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);
    CHECK(repo_key_paper_write(f, &k, &err) == 0);
    fclose(f);
    CHECK(strstr(text, k.fingerprint) != NULL);
    f = fmemopen(text, len, "r");
    CHECK_MSG(repo_key_paper_read(f, &back, &err) == 0, "%s", err.msg);
    fclose(f);
    CHECK(memcmp(&back, &k, sizeof k) == 0);

    /* one mistyped digit on line 3: caught by that line's check value */
    char *line3 = strstr(text, "\n3: ");
    CHECK(line3 != NULL);
    if (line3) {
        char *digit = line3 + 4;
        *digit = *digit == '0' ? '1' : '0';
        f = fmemopen(text, len, "r");
        err.msg[0] = '\0';
        CHECK(repo_key_paper_read(f, &back, &err) < 0);
        CHECK_MSG(strstr(err.msg, "check value") != NULL, "%s", err.msg);
        fclose(f);
    }
    free(text);
    /* a missing line */
    f = fmemopen("1: 0000 0000 0000 0000  0000\n", 29, "r");
    CHECK(repo_key_paper_read(f, &back, &err) < 0);
    fclose(f);
}

/* sealed chunks: round trip for every compression, the same content the same bytes (dedup),
 * no key, a wrong key, an altered payload or authenticated header byte refused */
static void test_sealed_objects(void)
{
    struct vb_error err = {0};
    unsigned char master[32];
    test_fill(master, sizeof master, 21);
    struct repo_key k;
    CHECK(repo_key_derive(master, &k, &err) == 0);
    struct repo_object_keys keys = {k.chunk_enc, k.chunk_id};
    unsigned char content[5000];
    for (size_t i = 0; i < sizeof content; i++)
        content[i] = (unsigned char)(i % 11 == 0 ? i : 'v');
    repo_digest name, sha;
    repo_object_name(&keys, content, sizeof content, &name);
    repo_digest_of(content, sizeof content, &sha);
    CHECK(!repo_digest_equal(&name, &sha)); /* names are HMACs, not SHA-256 */
    for (int c = REPO_COMP_NONE; c <= REPO_COMP_LZ4; c++) {
        void *obj = NULL, *again = NULL, *raw = NULL;
        size_t len = 0, len2 = 0, raw_len = 0;
        CHECK_MSG(repo_object_encode_keyed(REPO_KIND_CHUNK, content, sizeof content, c, 1, &keys,
                                           &name, &obj, &len, &err) == 0,
                  "%s", err.msg);
        unsigned char *o = obj;
        CHECK(o[7] == REPO_OBJECT_FLAG_ENCRYPTED);
        CHECK(memmem(obj, len, "vvvvvvvvvvvvvvvv", 16) == NULL); /* the content is not there */
        CHECK(repo_object_encode_keyed(REPO_KIND_CHUNK, content, sizeof content, c, 1, &keys, &name,
                                       &again, &len2, &err) == 0);
        CHECK(len == len2 && memcmp(obj, again, len) == 0);
        free(again);
        /* the header is valid for a reader without the key (scrubbing) */
        CHECK(repo_object_check_header(obj, len, len, REPO_KIND_CHUNK, NULL, NULL, &err) == 0);
        CHECK_MSG(repo_object_decode_keyed(REPO_KIND_CHUNK, obj, len, &keys, &name, &raw, &raw_len,
                                           &err) == 0,
                  "compression %d: %s", c, err.msg);
        CHECK(raw_len == sizeof content && raw && memcmp(raw, content, raw_len) == 0);
        free(raw);
        raw = NULL;
        err.msg[0] = '\0';
        CHECK(repo_object_decode(REPO_KIND_CHUNK, obj, len, &name, &raw, &raw_len, &err) < 0);
        CHECK_MSG(strstr(err.msg, "no key") != NULL, "%s", err.msg);
        struct repo_key other;
        unsigned char m2[32];
        test_fill(m2, sizeof m2, 22);
        CHECK(repo_key_derive(m2, &other, &err) == 0);
        struct repo_object_keys wrong = {other.chunk_enc, other.chunk_id};
        err.msg[0] = '\0';
        CHECK(repo_object_decode_keyed(REPO_KIND_CHUNK, obj, len, &wrong, &name, &raw, &raw_len,
                                       &err) < 0);
        CHECK_MSG(strstr(err.msg, "authentication failed") != NULL, "%s", err.msg);
        /* a flipped payload byte with its crc made to match: the tag refuses it */
        o[REPO_OBJECT_HEADER_SIZE + 3] ^= 1;
        put32(o + 16, (uint32_t)crc32(0, o + REPO_OBJECT_HEADER_SIZE,
                                      (uInt)(len - REPO_OBJECT_HEADER_SIZE)));
        put32(o + 20, (uint32_t)crc32(0, o, 20));
        err.msg[0] = '\0';
        CHECK(repo_object_decode_keyed(REPO_KIND_CHUNK, obj, len, &keys, &name, &raw, &raw_len,
                                       &err) < 0);
        CHECK_MSG(strstr(err.msg, "authentication failed") != NULL, "%s", err.msg);
        free(obj);
    }
    /* indexes and other unsealed objects under a key: named by HMAC, checked on decode */
    void *obj = NULL, *raw = NULL;
    size_t len = 0, raw_len = 0;
    struct repo_object_keys names = {NULL, k.chunk_id};
    CHECK(repo_object_encode_keyed(REPO_KIND_INDEX, content, sizeof content, REPO_COMP_ZSTD, 1,
                                   &names, NULL, &obj, &len, &err) == 0);
    CHECK(((unsigned char *)obj)[7] == 0);
    CHECK(repo_object_decode_keyed(REPO_KIND_INDEX, obj, len, &names, &name, &raw, &raw_len,
                                   &err) == 0);
    free(raw);
    CHECK(repo_object_decode_keyed(REPO_KIND_INDEX, obj, len, NULL, &name, &raw, &raw_len, &err) <
          0);
    free(obj);
}

#define UUID1 "0f9a6d1e-4c3b-4e8a-9d2f-1a2b3c4d5e6f"
#define ID1   "20261207T180000Z-0a1b2c3d"

static bool file_has(const char *path, const void *needle, size_t len)
{
    void *buf = NULL;
    size_t got = 0;
    if (test_read_file(path, &buf, &got) < 0)
        return false;
    bool found = memmem(buf, got, needle, len) != NULL;
    free(buf);
    return found;
}

/* an encrypted repository through the handle: without the key only what needs no content,
 * a wrong key refused at open, chunks and manifests sealed, the public part readable */
static void test_encrypted_repo(void)
{
    struct vb_error err = {0};
    unsigned char master[32], other_master[32];
    test_fill(master, sizeof master, 31);
    test_fill(other_master, sizeof other_master, 32);
    struct repo_key k, other;
    CHECK(repo_key_derive(master, &k, &err) == 0);
    CHECK(repo_key_derive(other_master, &other, &err) == 0);
    struct repo_config cfg;
    repo_config_default(&cfg);
    cfg.encrypted = true;
    memcpy(cfg.key_fingerprint, k.fingerprint, sizeof cfg.key_fingerprint);
    const char *path = test_path("enc");
    CHECK_MSG(repo_init(path, &cfg, &err) == 0, "%s", err.msg);

    err.msg[0] = '\0';
    CHECK(repo_open(path, &other, &err) == NULL);
    CHECK_MSG(strstr(err.msg, "wrong key") != NULL, "%s", err.msg);

    /* with the key: a chunk named by HMAC, sealed, read back */
    struct repo *r = repo_open(path, &k, &err);
    CHECK_MSG(r != NULL, "%s", err.msg);
    if (!r)
        return;
    static unsigned char chunk[65536];
    for (size_t i = 0; i < sizeof chunk; i++)
        chunk[i] = (unsigned char)("secret-pattern-"[i % 15]);
    repo_digest name, sha;
    repo_chunk_name(r, chunk, sizeof chunk, &name);
    repo_digest_of(chunk, sizeof chunk, &sha);
    CHECK(!repo_digest_equal(&name, &sha));
    bool was_new = false;
    CHECK_MSG(repo_put_chunk(r, &name, chunk, sizeof chunk, &was_new, NULL, &err) == 0, "%s",
              err.msg);
    CHECK(was_new);
    char key[80], file[300];
    repo_chunk_key(&name, key);
    snprintf(file, sizeof file, "%s/%s", path, key);
    CHECK(!file_has(file, "secret-pattern-secret", 21));
    void *raw = NULL;
    size_t len = 0;
    CHECK_MSG(repo_get_chunk(r, &name, &raw, &len, &err) == 0, "%s", err.msg);
    CHECK(len == sizeof chunk && raw && memcmp(raw, chunk, len) == 0);
    free(raw);
    /* an index named by HMAC of its bytes */
    struct repo_index idx = {.virtual_size = sizeof chunk, .chunk_size = sizeof chunk, .n = 1};
    idx.digests = &name;
    repo_digest idx_name;
    CHECK_MSG(repo_put_index(r, &idx, &idx_name, &err) == 0, "%s", err.msg);
    struct repo_index back = {0};
    CHECK_MSG(repo_get_index(r, &idx_name, &back, &err) == 0, "%s", err.msg);
    CHECK(back.n == 1 && repo_digest_equal(&back.digests[0], &name));
    repo_index_free(&back);

    /* a sealed manifest: its secrets not in the file, all of it read back with the key */
    struct repo_manifest m = {0}, got = {0};
    snprintf(m.id, sizeof m.id, "%s", ID1);
    m.vm = strdup("vm1");
    snprintf(m.uuid, sizeof m.uuid, "%s", UUID1);
    strcpy(m.time, "2026-12-07T18:00:00+00:00");
    m.level = REPO_LEVEL_FULL;
    m.has_checkpoint = true;
    m.checkpoint.name = strdup("virtnbdbackup.0");
    m.checkpoint.creation_time = 1733594400;
    m.checkpoint.xml = strdup("<domaincheckpoint>cp-secret</domaincheckpoint>");
    m.domain_xml = strdup("<domain><name>vm1</name><secret>dom-secret</secret></domain>");
    m.n_disks = 1;
    m.disks = calloc(1, sizeof *m.disks);
    m.disks[0].target = strdup("vda");
    m.disks[0].virtual_size = sizeof chunk;
    m.disks[0].chunk_size = 4 << 20;
    m.disks[0].index = idx_name;
    m.disks[0].format = strdup("qcow2");
    m.disks[0].qcow_json = strdup("{\"qcow-secret\": 1}");
    m.disks[0].bytes_read = 12345;
    m.n_blobs = 1;
    m.blobs = calloc(1, sizeof *m.blobs);
    m.blobs[0].kind = REPO_BLOB_NVRAM;
    m.blobs[0].path = strdup("/var/lib/libvirt/qemu/nvram/path-secret.fd");
    m.blobs[0].size = 5;
    m.blobs[0].index = idx_name;
    CHECK_MSG(repo_put_manifest(r, &m, &err) == 0, "%s", err.msg);
    char mkey[REPO_KEY_MAX];
    CHECK(repo_snapshot_key(UUID1, ID1, mkey) == 0);
    snprintf(file, sizeof file, "%s/%s", path, mkey);
    const char *secrets[] = {"dom-secret", "cp-secret", "qcow-secret", "path-secret", "12345"};
    for (size_t i = 0; i < 5; i++)
        CHECK_MSG(!file_has(file, secrets[i], strlen(secrets[i])), "%s in the manifest",
                  secrets[i]);
    CHECK(file_has(file, UUID1, strlen(UUID1)) && file_has(file, "\"sealed\"", 8));
    CHECK_MSG(repo_get_manifest(r, UUID1, ID1, &got, &err) == 0, "%s", err.msg);
    CHECK(!got.sealed && got.domain_xml && strcmp(got.domain_xml, m.domain_xml) == 0);
    CHECK(got.checkpoint.xml && strcmp(got.checkpoint.xml, m.checkpoint.xml) == 0);
    CHECK(got.n_disks == 1 && got.disks[0].qcow_json &&
          strcmp(got.disks[0].qcow_json, m.disks[0].qcow_json) == 0 &&
          got.disks[0].bytes_read == 12345 && strcmp(got.disks[0].format, "qcow2") == 0);
    CHECK(got.n_blobs == 1 && strcmp(got.blobs[0].path, m.blobs[0].path) == 0);
    repo_manifest_free(&got);
    repo_close(r);

    /* without the key: listing and the public part; content refused with the message */
    r = repo_open(path, NULL, &err);
    CHECK_MSG(r != NULL, "%s", err.msg);
    if (!r)
        return;
    err.msg[0] = '\0';
    CHECK(repo_need_key(r, &err) < 0);
    CHECK_MSG(strstr(err.msg, "is encrypted: give --key FILE (or VIRTBACKUP_KEY_FILE)"), "%s",
              err.msg);
    CHECK(repo_get_chunk(r, &name, &raw, &len, &err) < 0 && strstr(err.msg, "is encrypted"));
    CHECK(repo_put_chunk(r, &name, chunk, sizeof chunk, NULL, NULL, &err) < 0);
    CHECK(repo_put_manifest(r, &m, &err) < 0);
    uint32_t raw_size = 0;
    CHECK(repo_chunk_check(r, &name, &raw_size, &err) == 0 && raw_size == sizeof chunk);
    raw_size = 0;
    CHECK_MSG(repo_chunk_check_stored(r, &name, &raw_size, &err) == 0, "%s", err.msg);
    CHECK(raw_size == sizeof chunk);
    CHECK_MSG(repo_get_index(r, &idx_name, &back, &err) == 0, "%s", err.msg);
    repo_index_free(&back);
    CHECK_MSG(repo_get_manifest(r, UUID1, ID1, &got, &err) == 0, "%s", err.msg);
    CHECK(got.sealed && strcmp(got.vm, "vm1") == 0 && got.level == REPO_LEVEL_FULL &&
          got.has_checkpoint && strcmp(got.checkpoint.name, "virtnbdbackup.0") == 0 &&
          repo_digest_equal(&got.disks[0].index, &idx_name));
    CHECK(got.domain_xml && !strstr(got.domain_xml, "dom-secret"));
    repo_manifest_free(&got);
    repo_close(r);

    /* a damaged chunk: found without the key by its payload checksum */
    repo_chunk_key(&name, key);
    snprintf(file, sizeof file, "%s/%s", path, key);
    void *obj = NULL;
    size_t olen = 0;
    CHECK(test_read_file(file, &obj, &olen) == 0 && olen > 30);
    if (obj && olen > 30) {
        ((unsigned char *)obj)[30] ^= 1;
        unlink(file);
        CHECK(test_write_file(file, obj, olen) == 0);
        r = repo_open(path, NULL, &err);
        err.msg[0] = '\0';
        CHECK(r && repo_chunk_check_stored(r, &name, &raw_size, &err) < 0);
        CHECK_MSG(strstr(err.msg, "payload checksum mismatch"), "%s", err.msg);
        repo_close(r);
    }
    free(obj);
    snprintf(file, sizeof file, "%s/%s", path, mkey);

    /* an altered public field: the mac refuses the manifest */
    void *text = NULL;
    size_t tlen = 0;
    CHECK(test_read_file(file, &text, &tlen) == 0);
    char *at = text ? memmem(text, tlen, "\"full\"", 6) : NULL;
    CHECK(at != NULL);
    if (at) {
        memcpy(at, "\"copy\"", 6);
        unlink(file);
        CHECK(test_write_file(file, text, tlen) == 0);
        r = repo_open(path, &k, &err);
        err.msg[0] = '\0';
        CHECK(r && repo_get_manifest(r, UUID1, ID1, &got, &err) < 0);
        CHECK_MSG(strstr(err.msg, "mac does not match"), "%s", err.msg);
        repo_manifest_free(&got);
        repo_close(r);
    }
    free(text);
    repo_manifest_free(&m);
}

int main(void)
{
    test_encrypted_repo();
    test_sealed_objects();
    test_hmac();
    test_hkdf();
    test_gcm();
    test_derive();
    test_keyfile();
    test_paper();
    test_cleanup();
    return test_finish("test_repo_crypto");
}
