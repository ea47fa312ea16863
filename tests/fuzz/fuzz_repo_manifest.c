/* libFuzzer harness for the JSON readers of the repository (virtbackup-repository(5)): the
 * snapshot manifest, the sealed manifest of an encrypted repository (a fixed key, and no key)
 * and the config. The first input byte picks the parser; what parses must emit and parse
 * again. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "crypto.h"
#include "manifest.h"
#include "repo_config.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    const char *json = (const char *)data + 1;
    size_t len = size - 1;
    struct vb_error err;
    if (data[0] & 1) {
        struct repo_config c, back;
        if (repo_config_parse(json, len, &c, &err) != 0)
            return 0;
        char *text = repo_config_to_json(&c, &err);
        if (!text || repo_config_parse(text, strlen(text), &back, &err) != 0 ||
            memcmp(&c, &back, sizeof(c)) != 0)
            abort();
        free(text);
        return 0;
    }
    struct repo_manifest m, back;
    if (data[0] & 2) {
        static struct repo_key k;
        static int derived;
        if (!derived) {
            unsigned char master[REPO_KEY_SIZE];
            memset(master, 0x42, sizeof master);
            if (repo_key_derive(master, &k, &err) != 0)
                abort();
            derived = 1;
        }
        /* without the key: the public part only, marked so */
        if (repo_manifest_parse_sealed(json, len, NULL, &m, &err) == 0 && !m.sealed)
            abort();
        repo_manifest_free(&m);
        if (repo_manifest_parse_sealed(json, len, &k, &m, &err) == 0) {
            char *text = repo_manifest_to_sealed_json(&m, &k, &err);
            if (!text || repo_manifest_parse_sealed(text, strlen(text), &k, &back, &err) != 0 ||
                back.n_disks != m.n_disks || back.n_blobs != m.n_blobs || back.sealed)
                abort();
            repo_manifest_free(&back);
            free(text);
        }
        repo_manifest_free(&m);
        return 0;
    }
    if (repo_manifest_parse(json, len, &m, &err) == 0) {
        char *text = repo_manifest_to_json(&m, &err);
        if (!text || repo_manifest_parse(text, strlen(text), &back, &err) != 0 ||
            back.n_disks != m.n_disks || back.n_blobs != m.n_blobs)
            abort();
        repo_manifest_free(&back);
        free(text);
    }
    repo_manifest_free(&m);
    return 0;
}
