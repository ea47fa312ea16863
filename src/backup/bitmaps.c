/* Dirty bitmaps that libvirt does not know about: left in a qcow2 image when a run was cut
 * off before it could delete its checkpoint properly (the domain destroyed mid-job, or the
 * checkpoint's metadata lost). Such a bitmap means the parent checkpoint's bitmap stopped
 * recording when it was created, so changes since the parent cannot be trusted, and its
 * name blocks a new checkpoint of that name ("Bitmap already exists"). qemu's monitor is the
 * only way to see and remove them while the domain runs. */
#include <jansson.h>
#include <libvirt/libvirt-qemu.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bitmaps.h"
#include "log.h"
#include "vector.h"

static json_t *qmp(virDomainPtr dom, const char *cmd, struct vb_error *err)
{
    char *reply = NULL;
    if (virDomainQemuMonitorCommand(dom, cmd, &reply, 0) < 0) {
        vb_virt_error(err, "qemu monitor command failed");
        return NULL;
    }
    json_error_t jerr;
    json_t *root = json_loads(reply, 0, &jerr);
    free(reply);
    if (!root)
        vb_error_set(err, "qemu monitor reply is not JSON: %s", jerr.text);
    return root;
}

static bool known(char **names, size_t n, const char *name)
{
    for (size_t i = 0; i < n; i++)
        if (strcmp(names[i], name) == 0)
            return true;
    return false;
}

int stray_bitmaps_find(virDomainPtr dom, const char *prefix, char **checkpoints,
                       size_t ncheckpoints, struct stray_bitmap **out, size_t *nout,
                       struct vb_error *err)
{
    *out = NULL;
    *nout = 0;
    json_t *root = qmp(dom, "{\"execute\":\"query-block\"}", err);
    if (!root)
        return -1;
    json_t *devs = json_object_get(root, "return"), *dev;
    size_t i, cap = 0;
    json_array_foreach(devs, i, dev)
    {
        json_t *ins = json_object_get(dev, "inserted");
        const char *node = json_string_value(json_object_get(ins, "node-name"));
        json_t *bitmaps = json_object_get(ins, "dirty-bitmaps"), *bm;
        size_t k;
        json_array_foreach(bitmaps, k, bm)
        {
            const char *name = json_string_value(json_object_get(bm, "name"));
            if (!node || !name || strncmp(name, prefix, strlen(prefix)) != 0 ||
                known(checkpoints, ncheckpoints, name))
                continue;
            if (vb_vector_grow(out, &cap, *nout + 1, sizeof **out) < 0) {
                json_decref(root);
                return vb_error_set(err, "out of memory");
            }
            (*out)[(*nout)++] = (struct stray_bitmap){strdup(node), strdup(name)};
        }
    }
    json_decref(root);
    return 0;
}

int stray_bitmaps_remove(virDomainPtr dom, const struct stray_bitmap *b, size_t n,
                         struct vb_error *err)
{
    for (size_t i = 0; i < n; i++) {
        json_t *cmd = json_pack("{s:s, s:{s:s, s:s}}", "execute", "block-dirty-bitmap-remove",
                                "arguments", "node", b[i].node, "name", b[i].name);
        char *text = cmd ? json_dumps(cmd, JSON_COMPACT) : NULL;
        json_decref(cmd);
        if (!text)
            return vb_error_set(err, "out of memory");
        json_t *reply = qmp(dom, text, err);
        free(text);
        if (!reply)
            return vb_error_prefix(err, "cannot remove bitmap %s of %s", b[i].name, b[i].node);
        json_t *qerr = json_object_get(reply, "error");
        if (qerr) {
            vb_error_set(err, "cannot remove bitmap %s of %s: %s", b[i].name, b[i].node,
                         json_string_value(json_object_get(qerr, "desc")));
            json_decref(reply);
            return -1;
        }
        json_decref(reply);
        vb_info("removed bitmap %s of %s", b[i].name, b[i].node);
    }
    return 0;
}

void stray_bitmaps_free(struct stray_bitmap *b, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        free(b[i].node);
        free(b[i].name);
    }
    free(b);
}
