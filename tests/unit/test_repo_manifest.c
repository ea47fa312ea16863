/* src/repo: the snapshot manifest and the repository config of virtbackup-repository(5):
 * round trips, and the strict parse: every wrong type, missing field, bad value, too many
 * disks refused with a message naming the field; unknown fields ignored. */
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "manifest.h"
#include "repo_config.h"
#include "testutil.h"

static const char *UUID = "6c1b9c4e-0e0b-4a5e-9f8a-1d2c3b4a5e6f";

static void sample(struct repo_manifest *m)
{
    memset(m, 0, sizeof(*m));
    strcpy(m->id, "20261207T180000Z-0badcafe");
    m->vm = strdup("vm1 \"quoted\" \xc3\xa9");
    strcpy(m->uuid, UUID);
    strcpy(m->time, "2026-12-07T19:00:00+01:00");
    m->level = REPO_LEVEL_FULL;
    m->has_checkpoint = true;
    m->checkpoint.name = strdup("virtnbdbackup.0123456789abcdef0123456789abcdef.0");
    m->checkpoint.creation_time = 1796666400;
    m->checkpoint.xml = strdup("<domaincheckpoint><name>x</name></domaincheckpoint>");
    m->domain_xml = strdup("<domain type='kvm'><name>vm1</name></domain>");
    m->n_disks = 2;
    m->disks = calloc(2, sizeof(*m->disks));
    for (int i = 0; i < 2; i++) {
        struct repo_manifest_disk *d = &m->disks[i];
        d->target = strdup(i ? "vdb" : "vda");
        d->virtual_size = (1ull << 40) + 12345 * i;
        d->chunk_size = 4 << 20;
        test_fill(d->index.b, 32, (uint64_t)i + 1);
        d->format = strdup(i ? "raw" : "qcow2");
        d->qcow_json = i ? NULL : strdup("{\"virtual-size\": 1099511627776}");
        d->bytes_read = 1000 + i;
        d->bytes_new = 500 + i;
        d->bytes_stored = 250 + i;
    }
    m->n_blobs = 1;
    m->blobs = calloc(1, sizeof(*m->blobs));
    m->blobs[0].kind = REPO_BLOB_NVRAM;
    m->blobs[0].path = strdup("/var/lib/libvirt/qemu/nvram/vm1_VARS.fd");
    m->blobs[0].size = 540672;
    test_fill(m->blobs[0].index.b, 32, 9);
}

static void test_round_trip(void)
{
    struct repo_manifest m, back;
    struct vb_error err = {0};
    sample(&m);
    char *text = repo_manifest_to_json(&m, &err);
    CHECK_MSG(text != NULL, "%s", err.msg);
    if (!text)
        return;
    CHECK_MSG(repo_manifest_parse(text, strlen(text), &back, &err) == 0, "%s", err.msg);
    CHECK(strcmp(back.id, m.id) == 0 && strcmp(back.vm, m.vm) == 0);
    CHECK(strcmp(back.uuid, UUID) == 0 && strcmp(back.time, m.time) == 0);
    CHECK(back.level == REPO_LEVEL_FULL && back.parent[0] == '\0');
    CHECK(back.has_checkpoint && strcmp(back.checkpoint.name, m.checkpoint.name) == 0 &&
          back.checkpoint.creation_time == 1796666400 &&
          strcmp(back.checkpoint.xml, m.checkpoint.xml) == 0);
    CHECK(strcmp(back.domain_xml, m.domain_xml) == 0);
    CHECK(back.n_disks == 2 && back.n_blobs == 1);
    for (int i = 0; back.n_disks == 2 && i < 2; i++) {
        struct repo_manifest_disk *a = &m.disks[i], *b = &back.disks[i];
        CHECK(strcmp(a->target, b->target) == 0 && a->virtual_size == b->virtual_size &&
              a->chunk_size == b->chunk_size && repo_digest_equal(&a->index, &b->index) &&
              strcmp(a->format, b->format) == 0 && a->bytes_read == b->bytes_read &&
              a->bytes_new == b->bytes_new && a->bytes_stored == b->bytes_stored);
        CHECK(i ? b->qcow_json == NULL : strcmp(a->qcow_json, b->qcow_json) == 0);
    }
    CHECK(back.blobs[0].kind == REPO_BLOB_NVRAM && back.blobs[0].size == 540672 &&
          strcmp(back.blobs[0].path, m.blobs[0].path) == 0 &&
          repo_digest_equal(&back.blobs[0].index, &m.blobs[0].index));
    /* emitting what was read gives the same text */
    char *again = repo_manifest_to_json(&back, &err);
    CHECK(again && strcmp(again, text) == 0);
    free(again);
    repo_manifest_free(&back);

    /* an incremental with a parent and no checkpoint, no disks, no blobs */
    struct repo_manifest inc = {0};
    strcpy(inc.id, "20261208T000000Z-00000001");
    inc.vm = strdup("v");
    strcpy(inc.uuid, UUID);
    strcpy(inc.time, "2026-12-08T00:00:00Z");
    inc.level = REPO_LEVEL_INC;
    strcpy(inc.parent, m.id);
    inc.domain_xml = strdup("<domain/>");
    char *t2 = repo_manifest_to_json(&inc, &err);
    CHECK_MSG(t2 != NULL, "%s", err.msg);
    CHECK(t2 && repo_manifest_parse(t2, strlen(t2), &back, &err) == 0);
    CHECK(back.level == REPO_LEVEL_INC && strcmp(back.parent, m.id) == 0 && !back.has_checkpoint &&
          back.n_disks == 0 && back.n_blobs == 0 && back.source == NULL);
    CHECK(t2 && !strstr(t2, "\"source\""));
    repo_manifest_free(&back);
    free(t2);
    /* an imported snapshot names the stream chain point it came from */
    inc.source = strdup("virtnbdbackup.1@2026-12-08T00:00:00.123456");
    t2 = repo_manifest_to_json(&inc, &err);
    CHECK_MSG(t2 != NULL, "%s", err.msg);
    CHECK(t2 && repo_manifest_parse(t2, strlen(t2), &back, &err) == 0);
    CHECK(back.source && strcmp(back.source, inc.source) == 0);
    CHECK(back.full_time[0] == '\0' && t2 && !strstr(t2, "\"full_time\""));
    repo_manifest_free(&back);
    free(t2);
    /* an inc carries its chain's full read time */
    strcpy(inc.full_time, "2026-12-01T00:00:00+01:00");
    t2 = repo_manifest_to_json(&inc, &err);
    CHECK_MSG(t2 != NULL, "%s", err.msg);
    CHECK(t2 && repo_manifest_parse(t2, strlen(t2), &back, &err) == 0);
    CHECK(strcmp(back.full_time, inc.full_time) == 0);
    repo_manifest_free(&back);
    free(t2);

    /* sizes that JSON integers cannot hold, an invalid id: not emitted */
    m.disks[1].bytes_new = UINT64_MAX;
    CHECK(repo_manifest_to_json(&m, &err) == NULL);
    CHECK_MSG(strstr(err.msg, "disks[1].bytes_new") != NULL, "%s", err.msg);
    m.disks[1].bytes_new = 1;
    strcpy(m.id, "../x");
    CHECK(repo_manifest_to_json(&m, &err) == NULL);
    CHECK_MSG(strstr(err.msg, "id") != NULL, "%s", err.msg);
    repo_manifest_free(&inc);
    repo_manifest_free(&m);
    free(text);
}

/* the sample's JSON with one change: at (NULL: top level, or "checkpoint", "disks", "blobs"
 * for element 0), field set to the JSON value json (NULL: removed); parse must fail naming
 * want */
static void refuse(const char *at, const char *field, const char *json, const char *want)
{
    struct repo_manifest m;
    struct vb_error err = {0};
    sample(&m);
    char *text = repo_manifest_to_json(&m, &err);
    repo_manifest_free(&m);
    json_t *o = json_loads(text, 0, NULL);
    free(text);
    json_t *target = o;
    if (at) {
        target = json_object_get(o, at);
        if (json_is_array(target))
            target = json_array_get(target, 0);
    }
    if (json)
        json_object_set_new(target, field, json_loads(json, JSON_DECODE_ANY, NULL));
    else
        json_object_del(target, field);
    text = json_dumps(o, 0);
    json_decref(o);
    int rc = repo_manifest_parse(text, strlen(text), &m, &err);
    CHECK_MSG(rc == -1, "%s.%s = %s accepted", at ? at : "", field, json ? json : "(removed)");
    if (rc == -1)
        CHECK_MSG(strstr(err.msg, want) != NULL, "%s.%s = %s: \"%s\" lacks \"%s\"", at ? at : "",
                  field, json ? json : "(removed)", err.msg, want);
    repo_manifest_free(&m);
    free(text);
}

static void test_refusals(void)
{
    const char *top[] = {"format", "version", "id",         "vm",         "uuid",  "time",
                         "level",  "parent",  "checkpoint", "domain_xml", "disks", "blobs"};
    for (size_t i = 0; i < sizeof(top) / sizeof(top[0]); i++) {
        char want[64];
        snprintf(want, sizeof(want), "manifest: %s: missing", top[i]);
        refuse(NULL, top[i], NULL, want);
    }
    refuse(NULL, "source", "5", "source: ");
    refuse(NULL, "source", "\"\"", "source: ");
    refuse(NULL, "full_time", "5", "full_time: ");
    refuse(NULL, "full_time", "\"yesterday\"", "full_time: \"yesterday\" is not an ISO 8601");
    refuse(NULL, "format", "\"virtbackup-repository\"", "format: \"virtbackup-repository\"");
    refuse(NULL, "version", "2", "version: 2, this program reads up to version 1");
    refuse(NULL, "version", "0", "version: 0");
    refuse(NULL, "version", "\"1\"", "version: not an integer");
    refuse(NULL, "id", "\"20261207T180000Z-0BADCAFE\"", "id: ");
    refuse(NULL, "id", "7", "id: not a string");
    refuse(NULL, "vm", "\"\"", "vm: empty");
    refuse(NULL, "vm", "null", "vm: null");
    refuse(NULL, "uuid", "\"not-a-uuid\"", "uuid: ");
    refuse(NULL, "time", "\"2026-12-07T18:00:00\"", "time: ");
    refuse(NULL, "time", "1796666400", "time: not a string");
    refuse(NULL, "level", "\"diff\"", "level: \"diff\"");
    refuse(NULL, "parent", "\"yesterday\"", "parent: ");
    refuse(NULL, "parent", "false", "parent: not a string");
    refuse(NULL, "checkpoint", "\"virtnbdbackup.0\"", "checkpoint: neither null nor an object");
    refuse(NULL, "domain_xml", "[]", "domain_xml: not a string");
    refuse(NULL, "disks", "{}", "disks: not an array");
    refuse(NULL, "blobs", "null", "blobs: null");
    refuse("checkpoint", "name", NULL, "checkpoint.name: missing");
    refuse("checkpoint", "creation_time", "-1", "checkpoint.creation_time: -1 is out of range");
    refuse("checkpoint", "creation_time", "1.5", "checkpoint.creation_time: not an integer");
    refuse("checkpoint", "xml", NULL, "checkpoint.xml: missing");
    const char *disk[] = {"target",    "virtual_size", "chunk_size", "index",       "format",
                          "qcow_json", "bytes_read",   "bytes_new",  "bytes_stored"};
    for (size_t i = 0; i < sizeof(disk) / sizeof(disk[0]); i++) {
        char want[64];
        snprintf(want, sizeof(want), "disks[0].%s: missing", disk[i]);
        refuse("disks", disk[i], NULL, want);
    }
    refuse("disks", "target", "\"vdb\"", "disks[1].target: \"vdb\" again");
    refuse("disks", "virtual_size", "-5", "disks[0].virtual_size: -5 is out of range");
    refuse("disks", "virtual_size", "1e3", "disks[0].virtual_size: not an integer");
    refuse("disks", "virtual_size", "9223372036854775807", "disks[0].virtual_size: ");
    refuse("disks", "chunk_size", "3000000", "disks[0].chunk_size: 3000000 is not a power");
    refuse("disks", "chunk_size", "32768", "disks[0].chunk_size: 32768");
    refuse("disks", "chunk_size", "4294967296", "disks[0].chunk_size: 4294967296 is out of");
    refuse("disks", "index", "\"abc\"", "disks[0].index: not a SHA-256 digest");
    refuse("disks", "index", "\"zz00000000000000000000000000000000000000000000000000000000000000\"",
           "disks[0].index: not a SHA-256");
    refuse("disks", "qcow_json", "{}", "disks[0].qcow_json: not a string");
    refuse("disks", "bytes_stored", "true", "disks[0].bytes_stored: not an integer");
    refuse("blobs", "kind", "\"bios\"", "blobs[0].kind: \"bios\"");
    refuse("blobs", "path", NULL, "blobs[0].path: missing");
    refuse("blobs", "size", "\"1\"", "blobs[0].size: not an integer");
    refuse("blobs", "index", "null", "blobs[0].index: null");

    /* not JSON, not an object, duplicate keys, more than 64 disks */
    struct repo_manifest m;
    struct vb_error err = {0};
    CHECK(repo_manifest_parse("{\"format\":", 10, &m, &err) == -1);
    CHECK_MSG(strstr(err.msg, "snapshot manifest: not JSON") != NULL, "%s", err.msg);
    repo_manifest_free(&m);
    CHECK(repo_manifest_parse("[]", 2, &m, &err) == -1);
    CHECK_MSG(strstr(err.msg, "not a JSON object") != NULL, "%s", err.msg);
    repo_manifest_free(&m);
    CHECK(repo_manifest_parse("{\"vm\":\"a\",\"vm\":\"b\"}", 19, &m, &err) == -1);
    repo_manifest_free(&m);

    sample(&m);
    char *text = repo_manifest_to_json(&m, &err);
    repo_manifest_free(&m);
    json_t *o = json_loads(text, 0, NULL);
    free(text);
    json_t *disks = json_object_get(o, "disks");
    json_t *d0 = json_incref(json_array_get(disks, 0));
    json_array_clear(disks);
    for (int i = 0; i < 65; i++) {
        json_t *d = json_deep_copy(d0);
        char name[16];
        snprintf(name, sizeof(name), "vd%d", i);
        json_object_set_new(d, "target", json_string(name));
        json_array_append_new(disks, d);
    }
    text = json_dumps(o, 0);
    CHECK(repo_manifest_parse(text, strlen(text), &m, &err) == -1);
    CHECK_MSG(strstr(err.msg, "disks: 65 entries, at most 64") != NULL, "%s", err.msg);
    repo_manifest_free(&m);
    free(text);
    /* 64 disks and an unknown field are fine */
    json_array_remove(disks, 64);
    json_object_set_new(o, "future_field", json_pack("{s:i}", "x", 1));
    text = json_dumps(o, 0);
    CHECK_MSG(repo_manifest_parse(text, strlen(text), &m, &err) == 0, "%s", err.msg);
    CHECK(m.n_disks == 64);
    repo_manifest_free(&m);
    free(text);
    json_decref(d0);
    json_decref(o);

    /* a NUL inside a string (JSON allows \u0000; C strings cannot carry it) */
    sample(&m);
    text = repo_manifest_to_json(&m, &err);
    repo_manifest_free(&m);
    char *vm = text ? strstr(text, "vm1 ") : NULL;
    CHECK(vm != NULL);
    if (vm) {
        memcpy(vm, "\\u0000", 6);
        CHECK(repo_manifest_parse(text, strlen(text), &m, &err) == -1);
        CHECK_MSG(strstr(err.msg, "snapshot manifest") != NULL, "%s", err.msg);
        repo_manifest_free(&m);
    }
    free(text);
}

static void config_refused(const char *field, const char *json, const char *want)
{
    struct repo_config c;
    struct vb_error err = {0};
    repo_config_default(&c);
    char *text = repo_config_to_json(&c, &err);
    json_t *o = json_loads(text, 0, NULL);
    free(text);
    if (json)
        json_object_set_new(o, field, json_loads(json, JSON_DECODE_ANY, NULL));
    else
        json_object_del(o, field);
    text = json_dumps(o, 0);
    json_decref(o);
    CHECK_MSG(repo_config_parse(text, strlen(text), &c, &err) == -1, "%s = %s accepted", field,
              json ? json : "(removed)");
    CHECK_MSG(strstr(err.msg, want) != NULL, "%s = %s: \"%s\" lacks \"%s\"", field,
              json ? json : "(removed)", err.msg, want);
    free(text);
}

static void test_config(void)
{
    struct repo_config c, back;
    struct vb_error err = {0};
    repo_config_default(&c);
    CHECK(c.version == 1 && c.chunk_size == 4u << 20 && c.compression == REPO_COMP_ZSTD &&
          c.compression_level == 1 && strlen(c.id) == 32);
    CHECK_MSG(repo_config_validate(&c, &err) == 0, "%s", err.msg);
    struct repo_config c2;
    repo_config_default(&c2);
    CHECK(strcmp(c.id, c2.id) != 0); /* a random id */
    char *text = repo_config_to_json(&c, &err);
    CHECK(text && strstr(text, "\"format\": \"virtbackup-repository\"") &&
          strstr(text, "\"encryption\": \"none\""));
    CHECK(text && repo_config_parse(text, strlen(text), &back, &err) == 0);
    CHECK(memcmp(&back, &c, sizeof(c)) == 0);
    free(text);
    c.compression = REPO_COMP_LZ4;
    c.compression_level = 0;
    c.chunk_size = 64 << 10;
    text = repo_config_to_json(&c, &err);
    CHECK(text && repo_config_parse(text, strlen(text), &back, &err) == 0 &&
          back.compression == REPO_COMP_LZ4 && back.chunk_size == 64 << 10);
    free(text);

    const char *fields[] = {"format",      "version",           "id",      "chunk_size",
                            "compression", "compression_level", "created", "encryption"};
    for (size_t i = 0; i < sizeof(fields) / sizeof(fields[0]); i++) {
        char want[64];
        snprintf(want, sizeof(want), "repository config: %s: missing", fields[i]);
        config_refused(fields[i], NULL, want);
    }
    config_refused("format", "\"virtbackup-snapshot\"", "format: \"virtbackup-snapshot\"");
    config_refused("version", "2", "version: 2, this program reads up to version 1");
    config_refused("id", "\"0123\"", "id: not 32");
    config_refused("chunk_size", "3", "chunk_size: 3 is not a power of two");
    config_refused("chunk_size", "32768", "chunk_size: 32768");
    config_refused("chunk_size", "134217728", "chunk_size: 134217728");
    config_refused("chunk_size", "\"4M\"", "chunk_size: not an integer");
    config_refused("compression", "\"gzip\"", "compression: \"gzip\"");
    config_refused("compression_level", "0", "compression_level: 0, zstd takes 1 to 19");
    config_refused("compression_level", "20", "compression_level: 20");
    config_refused("created", "\"yesterday\"", "created: ");
    /* encrypted: the key's fingerprint is needed; other ciphers are refused */
    config_refused("encryption", "\"aes-256-gcm\"", "key_fingerprint: missing");
    config_refused("encryption", "\"chacha20\"", "encryption: \"chacha20\"");
    c.encrypted = true;
    snprintf(c.key_fingerprint, sizeof c.key_fingerprint, "%s", "00112233445566778899aabbccddeeff");
    text = repo_config_to_json(&c, &err);
    CHECK(text && strstr(text, "\"encryption\": \"aes-256-gcm\"") &&
          strstr(text, "\"key_fingerprint\": \"00112233445566778899aabbccddeeff\""));
    CHECK(text && repo_config_parse(text, strlen(text), &back, &err) == 0 && back.encrypted &&
          strcmp(back.key_fingerprint, c.key_fingerprint) == 0);
    free(text);

    enum repo_compression comp;
    int level;
    CHECK(repo_compression_parse("zstd", &comp, &level, &err) == 0 && comp == REPO_COMP_ZSTD &&
          level == 1);
    CHECK(repo_compression_parse("zstd:19", &comp, &level, &err) == 0 && level == 19);
    CHECK(repo_compression_parse("lz4", &comp, &level, &err) == 0 && comp == REPO_COMP_LZ4);
    CHECK(repo_compression_parse("none", &comp, &level, &err) == 0 && comp == REPO_COMP_NONE);
    const char *bad[] = {"zstd:0", "zstd:20", "zstd:", "zstd:3x", "zstd:-1", "lz4:1", "gzip"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        CHECK_MSG(repo_compression_parse(bad[i], &comp, &level, &err) == -1, "%s", bad[i]);
}

int main(void)
{
    test_round_trip();
    test_refusals();
    test_config();
    return test_finish("test_repo_manifest");
}
