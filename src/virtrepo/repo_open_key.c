/* virtrepo_open and virtrepo_open_session (virtrepo.h): the repository with the key the
 * global options name, and a session of the command's kind on it. */
#include <string.h>

#include "keyfile.h"
#include "log.h"
#include "repo_session.h"
#include "virtrepo.h"

struct repo *virtrepo_open(const struct virtrepo_global *g, const char *path, struct vb_error *err)
{
    return repo_open_key_file(path, g->key_file, g->key_passphrase, err);
}

struct repo *virtrepo_open_session(const struct virtrepo_global *g, const char *path,
                                   const char *kind, struct vb_error *err)
{
    struct repo *r = virtrepo_open(g, path, err);
    struct repo_session *s = NULL;
    /* import writes: it needs a session; the other commands only read */
    int rc = !r                            ? 0
             : strcmp(kind, "import") == 0 ? repo_session_begin(r, kind, NULL, &s, err)
                                           : repo_session_begin_reader(r, path, kind, err);
    if (rc == 1) {
        vb_warn("%s", err->msg);
        *err = (struct vb_error){0};
    }
    if (rc < 0) {
        repo_close(r);
        return NULL;
    }
    return r;
}
