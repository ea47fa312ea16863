/* Frame headers and META JSON: exact bytes as the reference writes them. */
#include <stdlib.h>
#include <string.h>

#include "frame.h"
#include "meta.h"
#include "testutil.h"

static void test_headers(void)
{
    char buf[STREAM_FRAME_LEN];
    stream_frame_format(buf, STREAM_FRAME_DATA, 0x100000, 0x4000000);
    CHECK(memcmp(buf, "data 0000000000100000 0000000004000000\r\n", 40) == 0);
    stream_frame_format(buf, STREAM_FRAME_STOP, 0, 0);
    CHECK(memcmp(buf, "stop 0000000000000000 0000000000000000\r\n", 40) == 0);

    struct stream_frame f;
    struct vb_error err = {0};
    CHECK(stream_frame_parse("zero 0000000000010000 00000000000f0000\r\n", &f, &err) == 0);
    CHECK(f.kind == STREAM_FRAME_ZERO && f.start == 0x10000 && f.length == 0xf0000);
    CHECK(stream_frame_parse("comp 0000000000000000 0000000000000028\r\n", &f, &err) == 0);
    CHECK(f.kind == STREAM_FRAME_COMP && f.length == 0x28);
    /* hostile headers */
    CHECK(stream_frame_parse("junk 0000000000000000 0000000000000000\r\n", &f, &err) < 0);
    CHECK(strstr(err.msg, "unknown frame kind") != NULL);
    char binary[STREAM_FRAME_LEN];
    for (size_t i = 0; i < sizeof binary; i++)
        binary[i] = (char)(0xf0 + i % 16);
    CHECK(stream_frame_parse(binary, &f, &err) < 0);
    CHECK(strstr(err.msg, "no frame header here, binary data instead (f0 f1 f2 f3 ...)") != NULL);
    CHECK(strstr(err.msg, "\\x") == NULL);
    CHECK(stream_frame_parse("data 000000000000000g 0000000000000000\r\n", &f, &err) < 0);
    CHECK(stream_frame_parse("data 0000000000000000 0000000000000000\n\n", &f, &err) < 0);
    CHECK(stream_frame_parse("data  000000000000000 0000000000000000\r\n", &f, &err) < 0);
    CHECK(stream_frame_parse("DATA 0000000000000000 0000000000000000\r\n", &f, &err) < 0);
}

static const char reference_meta[] =
    "{\n    \"virtualSize\": 209715200,\n    \"dataSize\": 67305472,\n"
    "    \"date\": \"2026-11-21T23:29:15.448890\",\n    \"diskName\": \"sda\",\n"
    "    \"diskFormat\": \"qcow2\",\n    \"checkpointName\": \"virtnbdbackup.0\",\n"
    "    \"compressed\": false,\n    \"compressionMethod\": \"lz4\",\n"
    "    \"parentCheckpoint\": \"\",\n    \"incremental\": false,\n    \"streamVersion\": 2\n}";

static void test_meta_bytes(void)
{
    struct stream_meta m;
    struct vb_error err = {0};
    CHECK(stream_meta_parse(reference_meta, strlen(reference_meta), &m, &err) == 0);
    CHECK(m.virtual_size == 209715200 && m.data_size == 67305472);
    CHECK(strcmp(m.disk_name, "sda") == 0 && !m.incremental && m.stream_version == 2);
    CHECK(m.compressed == STREAM_META_COMPRESSED_FALSE);
    size_t len;
    char *json = stream_meta_to_json(&m, &len, &err);
    CHECK(json && len == 0x146 && len == strlen(reference_meta));
    CHECK(json && memcmp(json, reference_meta, len) == 0);
    free(json);

    /* compressed level 2: the same, with "compressed": 2 (length 0x142) */
    m.compressed = 2;
    json = stream_meta_to_json(&m, &len, &err);
    CHECK(json && len == 0x142 && strstr(json, "\"compressed\": 2,\n") != NULL);
    struct stream_meta back;
    CHECK(json && stream_meta_parse(json, len, &back, &err) == 0 && back.compressed == 2);
    CHECK(stream_meta_is_compressed(&back));
    free(json);
}

static void test_meta_versions(void)
{
    struct stream_meta m;
    struct vb_error err = {0};
    const char *v1 = "{\"virtualSize\": 1048576, \"dataSize\": 0, \"date\": \"x\", \"diskName\": "
                     "\"vda\", \"diskFormat\": \"qcow2\", \"checkpointName\": \"virtnbdbackup.1\", "
                     "\"parentCheckpoint\": false, \"incremental\": true, \"stream-version\": 1}";
    CHECK(stream_meta_parse(v1, strlen(v1), &m, &err) == 0);
    CHECK(m.stream_version == 1 && m.legacy_version_key && m.parent_is_false);
    CHECK(!stream_meta_is_compressed(&m) && m.incremental);

    const char *bad[] = {
        "[]",
        "{\"virtualSize\": -1, \"dataSize\": 0, \"diskName\": \"a\", \"checkpointName\": \"c\", "
        "\"parentCheckpoint\": \"\", \"incremental\": false, \"streamVersion\": 2}",
        "{\"virtualSize\": 1, \"dataSize\": 0, \"diskName\": \"a\", \"checkpointName\": \"c\", "
        "\"parentCheckpoint\": \"\", \"incremental\": false, \"streamVersion\": 3}",
        "{\"virtualSize\": 1, \"dataSize\": 0, \"diskName\": \"a\", \"checkpointName\": \"c\", "
        "\"parentCheckpoint\": \"\", \"incremental\": \"no\", \"streamVersion\": 2}",
        "{\"virtualSize\": 1, \"dataSize\": 0, \"diskName\": \"a\", \"checkpointName\": \"c\", "
        "\"parentCheckpoint\": \"\", \"incremental\": false, \"streamVersion\": 2, "
        "\"compressed\": true}",
        "{\"virtualSize\": 1, \"dataSize\": 0, \"diskName\": \"a\", \"checkpointName\": \"c\", "
        "\"parentCheckpoint\": \"\", \"incremental\": false, \"streamVersion\": 2, "
        "\"compressed\": 2, \"compressionMethod\": \"zstd\"}",
        "{\"virtualSize\": 1, \"virtualSize\": 2}",
        "{\"virtualSize\": 1",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        CHECK_MSG(stream_meta_parse(bad[i], strlen(bad[i]), &m, &err) < 0, "case %zu", i);
}

static void test_json_quote(void)
{
    char buf[128];
    /* Python json.dumps(ensure_ascii=True): lower-case \u escapes, surrogate pairs */
    CHECK(stream_json_quote("a\"b\\c\n\x01\x7f", buf, sizeof buf) > 0);
    CHECK(strcmp(buf, "\"a\\\"b\\\\c\\n\\u0001\\u007f\"") == 0);
    CHECK(stream_json_quote("d\xc3\xa9sk \xf0\x9f\x98\x80", buf, sizeof buf) > 0);
    CHECK(strcmp(buf, "\"d\\u00e9sk \\ud83d\\ude00\"") == 0);
    CHECK(stream_json_quote("bad\xff", buf, sizeof buf) < 0);
}

int main(void)
{
    test_headers();
    test_meta_bytes();
    test_meta_versions();
    test_json_quote();
    return test_finish("test_frame");
}
