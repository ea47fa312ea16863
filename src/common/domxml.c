/* libxml2 tree edits on the domain XML. Only element structure is touched; text and comments
 * of unrelated parts stay as libvirt wrote them. */
#include "domxml.h"

#include <libxml/parser.h>
#include <libxml/tree.h>
#include <stdlib.h>
#include <string.h>

#include "vector.h"

struct domxml {
    xmlDocPtr doc;
};

static const char *const boot_names[DOMXML_BOOT_KINDS] = {"loader", "nvram", "kernel", "initrd"};

const char *domxml_boot_kind_name(enum domxml_boot_kind kind)
{
    return (unsigned)kind < DOMXML_BOOT_KINDS ? boot_names[kind] : "?";
}

bool domxml_is_elem(xmlNodePtr n, const char *name)
{
    return n && n->type == XML_ELEMENT_NODE && xmlStrcmp(n->name, BAD_CAST name) == 0;
}

xmlNodePtr domxml_child(xmlNodePtr parent, const char *name)
{
    for (xmlNodePtr c = parent ? parent->children : NULL; c; c = c->next)
        if (domxml_is_elem(c, name))
            return c;
    return NULL;
}

static char *prop(xmlNodePtr n, const char *name)
{
    xmlChar *v = n ? xmlGetProp(n, BAD_CAST name) : NULL;
    char *s = v ? strdup((const char *)v) : NULL;
    xmlFree(v);
    return s;
}

void domxml_unlink_free(xmlNodePtr n)
{
    /* Also drop the indentation text before it, so the output keeps its shape. */
    xmlNodePtr prev = n->prev;
    if (prev && prev->type == XML_TEXT_NODE && xmlIsBlankNode(prev)) {
        xmlUnlinkNode(prev);
        xmlFreeNode(prev);
    }
    xmlUnlinkNode(n);
    xmlFreeNode(n);
}

struct domxml *domxml_parse(const char *xml, size_t len, struct vb_error *err)
{
    if (len > INT32_MAX) {
        vb_error_set(err, "domain XML too large");
        return NULL;
    }
    xmlDocPtr doc = xmlReadMemory(xml, (int)len, "domain.xml", NULL,
                                  XML_PARSE_NONET | XML_PARSE_NOERROR | XML_PARSE_NOWARNING);
    if (!doc) {
        const xmlError *e = xmlGetLastError();
        vb_error_set(err, "invalid domain XML: %s", e && e->message ? e->message : "parse error");
        return NULL;
    }
    xmlNodePtr root = xmlDocGetRootElement(doc);
    if (!domxml_is_elem(root, "domain")) {
        xmlFreeDoc(doc);
        vb_error_set(err, "not a domain XML (root element is not <domain>)");
        return NULL;
    }
    struct domxml *d = calloc(1, sizeof *d);
    if (!d) {
        xmlFreeDoc(doc);
        vb_error_set(err, "out of memory");
        return NULL;
    }
    d->doc = doc;
    return d;
}

void domxml_free(struct domxml *d)
{
    if (!d)
        return;
    xmlFreeDoc(d->doc);
    free(d);
}

char *domxml_format(struct domxml *d, struct vb_error *err)
{
    xmlBufferPtr buf = xmlBufferCreate();
    if (!buf || xmlNodeDump(buf, d->doc, xmlDocGetRootElement(d->doc), 0, 0) < 0) {
        xmlBufferFree(buf);
        vb_error_set(err, "cannot serialise the domain XML");
        return NULL;
    }
    size_t len = (size_t)xmlBufferLength(buf);
    char *out = malloc(len + 2);
    if (out) {
        memcpy(out, xmlBufferContent(buf), len);
        out[len] = '\n';
        out[len + 1] = '\0';
    } else {
        vb_error_set(err, "out of memory");
    }
    xmlBufferFree(buf);
    return out;
}

xmlDocPtr domxml_doc(struct domxml *d)
{
    return d->doc;
}

static xmlNodePtr root_child(struct domxml *d, const char *name)
{
    return domxml_child(xmlDocGetRootElement(d->doc), name);
}

char *domxml_name(struct domxml *d)
{
    xmlNodePtr n = root_child(d, "name");
    xmlChar *v = n ? xmlNodeGetContent(n) : NULL;
    char *s = v ? strdup((const char *)v) : NULL;
    xmlFree(v);
    return s;
}

int domxml_set_name(struct domxml *d, const char *name, struct vb_error *err)
{
    xmlNodePtr n = root_child(d, "name");
    if (!n)
        n = xmlNewChild(xmlDocGetRootElement(d->doc), NULL, BAD_CAST "name", NULL);
    if (!n)
        return vb_error_set(err, "out of memory");
    xmlChar *esc = xmlEncodeSpecialChars(d->doc, BAD_CAST name);
    xmlNodeSetContent(n, esc);
    xmlFree(esc);
    return 0;
}

void domxml_remove_uuid(struct domxml *d)
{
    xmlNodePtr n;
    while ((n = root_child(d, "uuid")))
        domxml_unlink_free(n);
}

static xmlNodePtr find_disk(struct domxml *d, const char *target)
{
    xmlNodePtr devs = root_child(d, "devices");
    for (xmlNodePtr c = devs ? devs->children : NULL; c; c = c->next) {
        if (!domxml_is_elem(c, "disk"))
            continue;
        char *dev = prop(domxml_child(c, "target"), "dev");
        bool match = dev && strcmp(dev, target) == 0;
        free(dev);
        if (match)
            return c;
    }
    return NULL;
}

static char *disk_source(xmlNodePtr disk)
{
    xmlNodePtr src = domxml_child(disk, "source");
    if (!src)
        return NULL;
    static const char *const attrs[] = {"file", "dev", "name"};
    for (size_t i = 0; i < sizeof attrs / sizeof *attrs; i++) {
        char *v = prop(src, attrs[i]);
        if (v)
            return v;
    }
    char *pool = prop(src, "pool"), *vol = prop(src, "volume"), *out = NULL;
    if (pool && vol && asprintf(&out, "%s/%s", pool, vol) < 0)
        out = NULL;
    free(pool);
    free(vol);
    return out;
}

int domxml_disks(struct domxml *d, struct domxml_disk **disks, size_t *n, struct vb_error *err)
{
    *disks = NULL;
    *n = 0;
    xmlNodePtr devs = root_child(d, "devices");
    size_t cap = 0;
    for (xmlNodePtr c = devs ? devs->children : NULL; c; c = c->next) {
        if (!domxml_is_elem(c, "disk"))
            continue;
        if (vb_vector_grow(disks, &cap, *n + 1, sizeof **disks) < 0) {
            domxml_disks_free(*disks, *n);
            *disks = NULL;
            *n = 0;
            return vb_error_set(err, "out of memory");
        }
        struct domxml_disk *x = &(*disks)[(*n)++];
        x->target = prop(domxml_child(c, "target"), "dev");
        x->device = prop(c, "device");
        if (!x->device)
            x->device = strdup("disk");
        x->type = prop(c, "type");
        x->format = prop(domxml_child(c, "driver"), "type");
        x->source = disk_source(c);
    }
    return 0;
}

void domxml_disks_free(struct domxml_disk *disks, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        free(disks[i].target);
        free(disks[i].device);
        free(disks[i].type);
        free(disks[i].format);
        free(disks[i].source);
    }
    free(disks);
}

static void remove_children(xmlNodePtr parent, const char *name)
{
    xmlNodePtr c;
    while ((c = domxml_child(parent, name)))
        domxml_unlink_free(c);
}

int domxml_set_disk_file(struct domxml *d, const char *target, const char *path, const char *format,
                         const char *data_file, struct vb_error *err)
{
    xmlNodePtr disk = find_disk(d, target);
    if (!disk)
        return vb_error_set(err, "domain XML has no disk with target '%s'", target);
    xmlSetProp(disk, BAD_CAST "type", BAD_CAST "file");
    remove_children(disk, "backingStore");
    xmlNodePtr src = domxml_child(disk, "source");
    xmlNodePtr keep_data = NULL;
    if (src) {
        /* A <dataStore> (qcow2 external data file) moves to the restored copy; everything
         * else about the old source (pool, volume, host, auth, seclabel...) no longer
         * applies to a plain file. */
        xmlNodePtr ds = domxml_child(src, "dataStore");
        if (ds && data_file) {
            xmlUnlinkNode(ds);
            keep_data = ds;
        }
        domxml_unlink_free(src);
    }
    xmlNodePtr target_el = domxml_child(disk, "target");
    src = xmlNewNode(NULL, BAD_CAST "source");
    if (!src)
        return vb_error_set(err, "out of memory");
    if (target_el)
        xmlAddPrevSibling(target_el, src);
    else
        xmlAddChild(disk, src);
    xmlSetProp(src, BAD_CAST "file", BAD_CAST path);
    if (keep_data) {
        xmlSetProp(keep_data, BAD_CAST "type", BAD_CAST "file");
        xmlNodePtr dsrc = domxml_child(keep_data, "source");
        if (dsrc)
            domxml_unlink_free(dsrc);
        dsrc = xmlNewChild(keep_data, NULL, BAD_CAST "source", NULL);
        xmlSetProp(dsrc, BAD_CAST "file", BAD_CAST data_file);
        remove_children(keep_data, "backingStore");
        xmlAddChild(src, keep_data);
    }
    if (format) {
        xmlNodePtr drv = domxml_child(disk, "driver");
        if (!drv) {
            drv = xmlNewNode(NULL, BAD_CAST "driver");
            xmlSetProp(drv, BAD_CAST "name", BAD_CAST "qemu");
            xmlAddPrevSibling(src, drv);
        }
        xmlSetProp(drv, BAD_CAST "type", BAD_CAST format);
    }
    return 0;
}

int domxml_remove_disk(struct domxml *d, const char *target, struct vb_error *err)
{
    xmlNodePtr disk = find_disk(d, target);
    if (!disk)
        return vb_error_set(err, "domain XML has no disk with target '%s'", target);
    domxml_unlink_free(disk);
    return 0;
}

void domxml_drop_backing_stores(struct domxml *d)
{
    xmlNodePtr devs = root_child(d, "devices");
    for (xmlNodePtr c = devs ? devs->children : NULL; c; c = c->next)
        if (domxml_is_elem(c, "disk"))
            remove_children(c, "backingStore");
}

char *domxml_boot_file(struct domxml *d, enum domxml_boot_kind kind)
{
    xmlNodePtr n = domxml_child(root_child(d, "os"), domxml_boot_kind_name(kind));
    xmlChar *v = n ? xmlNodeGetContent(n) : NULL;
    char *s = NULL;
    if (v) {
        /* libvirt allows surrounding whitespace in these elements; a path may hold spaces */
        const char *p = (const char *)v;
        while (*p == ' ' || *p == '\n' || *p == '\t')
            p++;
        s = strdup(p);
        for (size_t len = s ? strlen(s) : 0; len > 0 && strchr(" \n\t", s[len - 1]); len--)
            s[len - 1] = '\0';
        if (s && !*s) {
            free(s);
            s = NULL;
        }
    }
    xmlFree(v);
    return s;
}

int domxml_set_boot_file(struct domxml *d, enum domxml_boot_kind kind, const char *path,
                         struct vb_error *err)
{
    xmlNodePtr n = domxml_child(root_child(d, "os"), domxml_boot_kind_name(kind));
    if (!n)
        return vb_error_set(err, "domain XML has no <os><%s>", domxml_boot_kind_name(kind));
    /* Setting the content replaces the text only; attributes (readonly, type, template) stay. */
    xmlChar *esc = xmlEncodeSpecialChars(d->doc, BAD_CAST path);
    xmlNodeSetContent(n, esc);
    xmlFree(esc);
    return 0;
}
