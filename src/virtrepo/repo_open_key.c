/* virtrepo_open (virtrepo.h): the repository with the key the global options name. */
#include "keyfile.h"
#include "virtrepo.h"

struct repo *virtrepo_open(const struct virtrepo_global *g, const char *path, struct vb_error *err)
{
    return repo_open_key_file(path, g->key_file, g->key_passphrase, err);
}
