/* Protection markers (src/repo/snapshot_protect.c; virtbackup-repository(5), PROTECTION):
 * snapshots/<uuid>/<id>.protected put and deleted beside a manifest that stays as it was,
 * refused for a snapshot that does not exist or a bad id, passed over by the snapshot
 * listing, and told apart per VM when two VMs have a snapshot of one id. */
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "repo.h"
#include "snapshot_protect.h"
#include "testutil.h"

#define UUID1 "6f1c1d3e-0b5a-4c8e-9d2f-1a2b3c4d5e6f"
#define UUID2 "0a0b0c0d-1111-2222-3333-444455556666"
#define ID1   "20261207T180000Z-0000000a"

static int put_manifest(struct repo *r, const char *uuid, const char *id)
{
    struct repo_manifest m = {0};
    snprintf(m.id, sizeof m.id, "%s", id);
    snprintf(m.uuid, sizeof m.uuid, "%s", uuid);
    strcpy(m.time, "2026-12-07T18:00:00+00:00");
    m.vm = strdup("vm");
    m.level = REPO_LEVEL_COPY;
    m.domain_xml = strdup("<domain type='kvm'><name>vm</name></domain>");
    m.n_disks = 1;
    m.disks = calloc(1, sizeof *m.disks);
    m.disks[0].target = strdup("vda");
    m.disks[0].virtual_size = 1 << 20;
    m.disks[0].chunk_size = 4 << 20;
    test_fill(m.disks[0].index.b, 32, 7);
    m.disks[0].format = strdup("raw");
    struct vb_error err = {0};
    int rc = repo_put_manifest(r, &m, &err);
    CHECK_MSG(rc == 0, "%s", err.msg);
    repo_manifest_free(&m);
    return rc;
}

static int count(void *ctx, const char *uuid, const char *id, struct vb_error *err)
{
    (void)uuid, (void)id, (void)err;
    (*(int *)ctx)++;
    return 0;
}

static size_t file_size(const char *rel)
{
    struct stat st;
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", test_path("repo"), rel);
    return stat(path, &st) == 0 ? (size_t)st.st_size : (size_t)-1;
}

int main(void)
{
    struct repo_config cfg;
    repo_config_default(&cfg);
    struct vb_error err = {0};
    CHECK(repo_init(test_path("repo"), &cfg, &err) == 0);
    struct repo *r = repo_open(test_path("repo"), NULL, &err);
    if (!r)
        return test_finish("test_repo_protect");
    put_manifest(r, UUID1, ID1);
    put_manifest(r, UUID2, ID1);
    size_t manifest_size = file_size("snapshots/" UUID1 "/" ID1 ".json");

    CHECK(repo_snapshot_is_protected(r, UUID1, ID1, &err) == 0);
    CHECK_MSG(repo_snapshot_protect(r, UUID1, ID1, &err) == 0, "%s", err.msg);
    CHECK(file_size("snapshots/" UUID1 "/" ID1 ".protected") == 0);
    CHECK(file_size("snapshots/" UUID1 "/" ID1 ".json") == manifest_size);
    CHECK(repo_snapshot_is_protected(r, UUID1, ID1, &err) == 1);
    CHECK(repo_snapshot_is_protected(r, UUID2, ID1, &err) == 0); /* the other VM's */
    CHECK_MSG(repo_snapshot_protect(r, UUID1, ID1, &err) == 0, "again: %s", err.msg);

    /* the marker is no snapshot */
    int n = 0;
    CHECK(repo_list_snapshots(r, NULL, count, &n, &err) == 0 && n == 2);

    /* refused: a snapshot that is not there, a bad id or uuid; nothing put */
    CHECK(repo_snapshot_protect(r, UUID1, "20261207T180001Z-0000000a", &err) == -1);
    CHECK(file_size("snapshots/" UUID1 "/20261207T180001Z-0000000a.protected") == (size_t)-1);
    CHECK(repo_snapshot_protect(r, UUID1, "../../config", &err) == -1);
    CHECK(repo_snapshot_protect(r, "not-a-uuid", ID1, &err) == -1);
    CHECK(repo_snapshot_is_protected(r, NULL, ID1, &err) == -1);

    CHECK(repo_snapshot_unprotect(r, UUID1, ID1, &err) == 0);
    CHECK(repo_snapshot_is_protected(r, UUID1, ID1, &err) == 0);
    CHECK(repo_snapshot_unprotect(r, UUID1, ID1, &err) == 1);
    CHECK(file_size("snapshots/" UUID1 "/" ID1 ".json") == manifest_size);
    repo_close(r);
    return test_finish("test_repo_protect");
}
