/* virtrepo_open (virtrepo.h): the repository with the key the global options name. */
#include "keyfile.h"
#include "virtrepo.h"

struct repo *virtrepo_open(const struct virtrepo_global *g, const char *path, struct vb_error *err)
{
    struct repo_key *key = repo_key_load(g->key_file, g->key_passphrase, err);
    if (g->key_file && !key)
        return NULL;
    struct repo *r = repo_open(path, key, err);
    repo_key_free(key);
    return r;
}
