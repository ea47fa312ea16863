#include "virt.h"

#include <libvirt/virterror.h>
#include <libxml/parser.h>
#include <libxml/xpath.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void quiet_handler(void *data, virErrorPtr error)
{
    (void)data;
    (void)error;
}

const char *vb_virt_last_error(void)
{
    virErrorPtr e = virGetLastError();
    return e && e->message ? e->message : "unknown libvirt error";
}

/* An API or flag the connected libvirt does not have: a remote host with an older libvirt
 * (or a driver without backup support) says so in terms of its own internals. */
static const char *too_old_hint(void)
{
    virErrorPtr e = virGetLastError();
    if (!e)
        return "";
    if (e->code == VIR_ERR_NO_SUPPORT ||
        (e->code == VIR_ERR_INVALID_ARG && e->message && strstr(e->message, "unsupported flag")))
        return " (the libvirt this connection reaches lacks this function or flag: "
               "incremental backups need libvirt >= 7.2 with qemu >= 6.0 on the host)";
    return "";
}

int vb_virt_error(struct vb_error *err, const char *fmt, ...)
{
    char ctx[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(ctx, sizeof ctx, fmt, ap);
    va_end(ap);
    return vb_error_set(err, "%s: %s%s", ctx, vb_virt_last_error(), too_old_hint());
}

struct credentials {
    const char *user, *password;
};

/* SASL (and other) credentials: --user/--password answer the name and passphrase prompts;
 * whatever they do not answer goes to libvirt's default (terminal) callback. */
static int answer_credentials(virConnectCredentialPtr cred, unsigned int ncred, void *opaque)
{
    const struct credentials *c = opaque;
    for (unsigned i = 0; i < ncred; i++) {
        const char *value = NULL;
        if (cred[i].type == VIR_CRED_AUTHNAME)
            value = c->user;
        else if (cred[i].type == VIR_CRED_PASSPHRASE)
            value = c->password;
        if (value) {
            cred[i].result = strdup(value);
            if (!cred[i].result)
                return -1;
            cred[i].resultlen = (unsigned)strlen(value);
        } else if (virConnectAuthPtrDefault->cb(&cred[i], 1, virConnectAuthPtrDefault->cbdata) <
                   0) {
            return -1;
        }
    }
    return 0;
}

virConnectPtr vb_virt_connect_as(const char *uri, const char *user, const char *password,
                                 struct vb_error *err)
{
    virSetErrorFunc(NULL, quiet_handler);
    if (!uri)
        uri = "qemu:///system";
    struct credentials c = {user, password};
    virConnectAuth auth = {
        .credtype = virConnectAuthPtrDefault->credtype,
        .ncredtype = virConnectAuthPtrDefault->ncredtype,
        .cb = answer_credentials,
        .cbdata = &c,
    };
    virConnectPtr conn = virConnectOpenAuth(uri, &auth, 0);
    if (!conn) {
        const char *msg = vb_virt_last_error();
        if (strstr(msg, "authentication failed") || strstr(msg, "SASL"))
            vb_error_set(err,
                         "cannot connect to libvirt at %s: %s (check --user and "
                         "--password/--password-file/VIRTBACKUP_PASSWORD)",
                         uri, msg);
        else
            vb_virt_error(err, "cannot connect to libvirt at %s", uri);
    }
    return conn;
}

virConnectPtr vb_virt_connect(const char *uri, struct vb_error *err)
{
    return vb_virt_connect_as(uri, NULL, NULL, err);
}

static char *xpath_string(xmlXPathContextPtr ctx, xmlNodePtr node, const char *expr)
{
    ctx->node = node;
    xmlXPathObjectPtr obj = xmlXPathEvalExpression((const xmlChar *)expr, ctx);
    char *out = NULL;
    if (obj && obj->type == XPATH_STRING && obj->stringval && obj->stringval[0])
        out = strdup((const char *)obj->stringval);
    else if (obj && obj->type == XPATH_NODESET && obj->nodesetval && obj->nodesetval->nodeNr) {
        xmlChar *s = xmlNodeGetContent(obj->nodesetval->nodeTab[0]);
        if (s && s[0])
            out = strdup((const char *)s);
        xmlFree(s);
    }
    xmlXPathFreeObject(obj);
    return out;
}

static char *volume_path(virConnectPtr conn, const char *pool, const char *volume)
{
    if (!conn || !pool || !volume)
        return NULL;
    virStoragePoolPtr p = virStoragePoolLookupByName(conn, pool);
    if (!p)
        return NULL;
    virStorageVolPtr v = virStorageVolLookupByName(p, volume);
    char *path = v ? virStorageVolGetPath(v) : NULL;
    if (v)
        virStorageVolFree(v);
    virStoragePoolFree(p);
    return path;
}

int vb_domain_info_parse(const char *xml, virConnectPtr conn, struct vb_domain_info *info,
                         struct vb_error *err)
{
    memset(info, 0, sizeof *info);
    info->qemu_uid = info->qemu_gid = -1;
    xmlDocPtr doc = xmlReadMemory(xml, (int)strlen(xml), "domain.xml", NULL,
                                  XML_PARSE_NONET | XML_PARSE_NOERROR | XML_PARSE_NOWARNING);
    if (!doc)
        return vb_error_set(err, "cannot parse the domain XML");
    xmlXPathContextPtr ctx = xmlXPathNewContext(doc);
    int rc = -1;
    info->name = xpath_string(ctx, NULL, "string(/domain/name)");
    info->uuid = xpath_string(ctx, NULL, "string(/domain/uuid)");
    info->loader = xpath_string(ctx, NULL, "string(/domain/os/loader)");
    info->nvram = xpath_string(ctx, NULL, "string(/domain/os/nvram)");
    info->kernel = xpath_string(ctx, NULL, "string(/domain/os/kernel)");
    info->initrd = xpath_string(ctx, NULL, "string(/domain/os/initrd)");
    char *label = xpath_string(ctx, NULL, "string(/domain/seclabel[@model='dac']/label)");
    if (label) {
        int u, g;
        if (sscanf(label, "+%d:+%d", &u, &g) == 2 || sscanf(label, "%d:%d", &u, &g) == 2) {
            info->qemu_uid = u;
            info->qemu_gid = g;
        }
        free(label);
    }
    ctx->node = NULL;
    xmlXPathObjectPtr tpm = xmlXPathEvalExpression((const xmlChar *)"/domain/devices/tpm", ctx);
    info->has_tpm = tpm && tpm->nodesetval && tpm->nodesetval->nodeNr > 0;
    xmlXPathFreeObject(tpm);

    xmlXPathObjectPtr disks = xmlXPathEvalExpression((const xmlChar *)"/domain/devices/disk", ctx);
    int n = disks && disks->nodesetval ? disks->nodesetval->nodeNr : 0;
    info->disks = calloc(n ? (size_t)n : 1, sizeof *info->disks);
    if (!info->disks) {
        vb_error_set(err, "out of memory");
        goto out;
    }
    for (int i = 0; i < n; i++) {
        xmlNodePtr node = disks->nodesetval->nodeTab[i];
        struct vb_disk *d = &info->disks[info->ndisks];
        d->target = xpath_string(ctx, node, "string(target/@dev)");
        if (!d->target)
            continue;
        info->ndisks++;
        d->format = xpath_string(ctx, node, "string(driver/@type)");
        d->device = xpath_string(ctx, node, "string(@device)");
        if (!d->device)
            d->device = strdup("disk");
        char *type = xpath_string(ctx, node, "string(@type)");
        if (type && strcmp(type, "file") == 0) {
            d->kind = VB_DISK_FILE;
            d->path = xpath_string(ctx, node, "string(source/@file)");
        } else if (type && strcmp(type, "block") == 0) {
            d->kind = VB_DISK_BLOCK;
            d->path = xpath_string(ctx, node, "string(source/@dev)");
        } else if (type && strcmp(type, "volume") == 0) {
            d->kind = VB_DISK_VOLUME;
            char *pool = xpath_string(ctx, node, "string(source/@pool)");
            char *vol = xpath_string(ctx, node, "string(source/@volume)");
            d->path = volume_path(conn, pool, vol);
            free(pool);
            free(vol);
        } else if (type && strcmp(type, "network") == 0) {
            d->kind = VB_DISK_NETWORK;
        } else {
            d->kind = VB_DISK_OTHER;
        }
        free(type);
        char *backing = xpath_string(ctx, node, "string(backingStore/source/@file)");
        char *backing_dev = xpath_string(ctx, node, "string(backingStore/source/@dev)");
        d->has_backing = backing || backing_dev;
        free(backing);
        free(backing_dev);
    }
    rc = 0;
out:
    xmlXPathFreeObject(disks);
    xmlXPathFreeContext(ctx);
    xmlFreeDoc(doc);
    if (rc < 0)
        vb_domain_info_free(info);
    return rc;
}

void vb_domain_info_free(struct vb_domain_info *info)
{
    for (size_t i = 0; i < info->ndisks; i++) {
        free(info->disks[i].target);
        free(info->disks[i].format);
        free(info->disks[i].device);
        free(info->disks[i].path);
    }
    free(info->disks);
    free(info->name);
    free(info->uuid);
    free(info->loader);
    free(info->nvram);
    free(info->kernel);
    free(info->initrd);
    memset(info, 0, sizeof *info);
}
