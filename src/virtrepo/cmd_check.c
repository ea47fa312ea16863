/* virtrepo check REPO: structure and references without reading chunk data: the config
 * (repo_open), every manifest parses, every index it names decodes, and every chunk those
 * name exists, meaning present with a valid header and size (virtbackup-repository(5)). */
#include <inttypes.h>
#include <stdio.h>

#include "audit.h"
#include "bad_chunks.h"
#include "log.h"
#include "options.h"
#include "repo_session.h"

int cmd_check(const struct virtrepo_global *g, int argc, char **argv)
{
    if (argc >= 2 && argv[1][0] == '-')
        return vb_opt_usage_error(g->prog, g->usage, "check: unknown option '%s'", argv[1]);
    if (argc != 2)
        return vb_opt_usage_error(g->prog, g->usage, "check: one REPO is needed");
    struct vb_error err = {0};
    struct audit a;
    struct repo *r = virtrepo_open_session(g, argv[1], "check", &err);
    if (!r) {
        vb_error_log("%s", err.msg);
        return 1;
    }
    if (audit_load(&a, r, NULL, &err) < 0) {
        vb_error_log("%s", err.msg);
        audit_free(&a);
        repo_close(r);
        return 1;
    }
    for (size_t i = 0; i < a.nchunks; i++) {
        struct audit_chunk *c = &a.chunks[i];
        uint32_t raw_size = 0;
        vb_error_clear(&err);
        int rc = repo_chunk_check(r, &c->digest, &raw_size, &err);
        if (rc == 1 && repo_chunk_in_bad(r, &c->digest))
            audit_chunk_bad(c, "missing: damaged, moved to bad/ by verify");
        else if (rc == 1)
            audit_chunk_bad(c, "missing");
        else if (rc < 0)
            audit_chunk_bad_error(c, &err);
        else if (raw_size != c->len)
            audit_chunk_bad(c, "holds %" PRIu32 " bytes, its index wants %" PRIu32, raw_size,
                            c->len);
    }
    size_t damaged = audit_report(&a, "check");
    audit_free(&a);
    repo_close(r);
    return damaged ? 1 : 0;
}
