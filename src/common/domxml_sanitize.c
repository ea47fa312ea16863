/* The allow-list of domxml_sanitize.h, walked over the libxml2 tree. Each element kept is
 * named in a table below; anything not named is dropped and reported. */
#include "domxml_sanitize.h"

#include <libxml/tree.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define REFS_MAX  400 /* characters of references reported per kind */
#define WHERE_MAX 160

struct san {
    struct domxml_drops *drops;
    unsigned own;
    bool oom;
};

/* snprintf for report texts, where cutting a long element path short is fine */
static void fmt(char *buf, size_t len, const char *f, ...) __attribute__((format(printf, 3, 4)));

static void fmt(char *buf, size_t len, const char *f, ...)
{
    va_list ap;
    va_start(ap, f);
    vsnprintf(buf, len, f, ap);
    va_end(ap);
}

static const char *const firmware_dirs[] = {
    "/usr/share/OVMF",
    "/usr/share/ovmf",
    "/usr/share/AAVMF",
    "/usr/share/edk2",
    "/usr/share/qemu",
    "/usr/share/seabios",
    "/usr/share/qemu-efi-aarch64",
    NULL,
};

static bool in_list(const char *s, const char *const *list)
{
    for (; s && *list; list++)
        if (strcmp(s, *list) == 0)
            return true;
    return false;
}

static bool named(xmlNodePtr n, const char *name)
{
    return n && n->type == XML_ELEMENT_NODE && !n->ns && strcmp((const char *)n->name, name) == 0;
}

bool domxml_firmware_path(const char *path)
{
    if (!path || path[0] != '/')
        return false;
    for (const char *p = path + 1;;) {
        const char *slash = strchr(p, '/');
        size_t len = slash ? (size_t)(slash - p) : strlen(p);
        if (len == 0 || (len == 1 && p[0] == '.') || (len == 2 && p[0] == '.' && p[1] == '.'))
            return false;
        if (!slash)
            break;
        p = slash + 1;
    }
    for (const char *const *d = firmware_dirs; *d; d++) {
        size_t l = strlen(*d);
        if (strncmp(path, *d, l) == 0 && path[l] == '/' && path[l + 1])
            return true;
    }
    return false;
}

void domxml_drops_free(struct domxml_drops *drops)
{
    for (size_t i = 0; drops && i < drops->n; i++) {
        free(drops->v[i].what);
        free(drops->v[i].refs);
    }
    if (drops) {
        free(drops->v);
        drops->v = NULL;
        drops->n = 0;
    }
}

/* Records one dropped thing; a kind seen before gets the new reference appended. routine:
 * what libvirt writes into every domain's XML with the host's defaults (the kind stays
 * routine only while all of its drops are). */
static void note_drop(struct san *s, const char *what, const char *ref, bool routine)
{
    struct domxml_drops *d = s->drops;
    ref = ref ? ref : "";
    for (size_t i = 0; i < d->n; i++) {
        if (strcmp(d->v[i].what, what) != 0)
            continue;
        d->v[i].routine = d->v[i].routine && routine;
        size_t have = strlen(d->v[i].refs), add = strlen(ref);
        if (!add || strstr(d->v[i].refs, ref) || have > REFS_MAX)
            return;
        char *r = realloc(d->v[i].refs, have + add + 3);
        if (!r) {
            s->oom = true;
            return;
        }
        snprintf(r + have, add + 3, "%s%s", have ? ", " : "", ref);
        d->v[i].refs = r;
        return;
    }
    struct domxml_drop *v = realloc(d->v, (d->n + 1) * sizeof *v);
    if (!v) {
        s->oom = true;
        return;
    }
    d->v = v;
    v[d->n].what = strdup(what);
    v[d->n].refs = strdup(ref);
    v[d->n].routine = routine;
    if (!v[d->n].what || !v[d->n].refs) {
        free(v[d->n].what);
        free(v[d->n].refs);
        s->oom = true;
        return;
    }
    d->n++;
}

static void note(struct san *s, const char *what, const char *ref)
{
    note_drop(s, what, ref, false);
}

static char *prop(xmlNodePtr n, const char *name)
{
    xmlChar *v = xmlGetProp(n, BAD_CAST name);
    char *s = v ? strdup((const char *)v) : NULL;
    xmlFree(v);
    return s;
}

static bool prop_is(xmlNodePtr n, const char *name, const char *value)
{
    xmlChar *v = xmlGetProp(n, BAD_CAST name);
    bool is = v ? value && strcmp((const char *)v, value) == 0 : !value;
    xmlFree(v);
    return is;
}

/* The element's text without surrounding whitespace (malloc'ed), "" if none. */
static char *text_of(xmlNodePtr n)
{
    xmlChar *v = xmlNodeGetContent(n);
    const char *p = v ? (const char *)v : "";
    while (*p == ' ' || *p == '\n' || *p == '\t' || *p == '\r')
        p++;
    char *s = strdup(p);
    for (size_t l = s ? strlen(s) : 0; l > 0 && strchr(" \n\t\r", s[l - 1]); l--)
        s[l - 1] = '\0';
    xmlFree(v);
    return s;
}

/* "where/name" (a namespaced element as prefix:name) */
static void path_of(char *buf, size_t len, const char *where, xmlNodePtr n)
{
    const char *prefix = n->ns && n->ns->prefix ? (const char *)n->ns->prefix : NULL;
    fmt(buf, len, "%s%s%s%s%s", where ? where : "", where && *where ? "/" : "",
        prefix ? prefix : "", prefix ? ":" : "", (const char *)n->name);
}

static void append_ref(char *buf, size_t len, const char *ref)
{
    size_t used = strlen(buf);
    if (used + 1 < len && !strstr(buf, ref))
        snprintf(buf + used, len - used, "%s%s", used ? ", " : "", ref);
}

static bool is_path(const char *s)
{
    return s && s[0] == '/';
}

/* Absolute paths in the attributes and text of n and below, ", "-separated. */
static void collect_paths(xmlNodePtr n, char *buf, size_t len)
{
    for (xmlAttrPtr a = n->type == XML_ELEMENT_NODE ? n->properties : NULL; a; a = a->next) {
        xmlChar *v = xmlNodeListGetString(n->doc, a->children, 1);
        if (v && is_path((const char *)v))
            append_ref(buf, len, (const char *)v);
        xmlFree(v);
    }
    for (xmlNodePtr c = n->children; c; c = c->next) {
        if (c->type == XML_ELEMENT_NODE) {
            collect_paths(c, buf, len);
        } else if (c->type == XML_TEXT_NODE || c->type == XML_CDATA_SECTION_NODE) {
            char *t = text_of(c);
            if (t && is_path(t))
                append_ref(buf, len, t);
            free(t);
        }
    }
}

/* What a dropped element referenced: its type, its paths, a qemu argument list. */
static void refs_of(xmlNodePtr n, char *buf, size_t len)
{
    buf[0] = '\0';
    if (n->type != XML_ELEMENT_NODE)
        return;
    char *type = prop(n, "type");
    if (type)
        snprintf(buf, len, "type='%s'", type);
    free(type);
    collect_paths(n, buf, len);
    for (xmlNodePtr c = n->children; c; c = c->next) {
        char *v = c->type == XML_ELEMENT_NODE && strcmp((const char *)c->name, "arg") == 0
                      ? prop(c, "value")
                      : NULL;
        if (v)
            append_ref(buf, len, v);
        free(v);
    }
}

/* Elements that libvirt itself puts into every domain's XML from the host's defaults, so
 * that dropping them is worth only a debug line: the default resource partition, a dynamic
 * security label, the distributions' qemu emulators. */
static bool routine_element(xmlNodePtr n)
{
    if (n->type != XML_ELEMENT_NODE || n->ns)
        return false;
    if (named(n, "seclabel"))
        return prop_is(n, "type", "dynamic");
    char *t = NULL;
    bool routine = false;
    if (named(n, "resource")) {
        xmlNodePtr part = NULL;
        size_t elems = 0;
        for (xmlNodePtr c = n->children; c; c = c->next)
            if (c->type == XML_ELEMENT_NODE) {
                elems++;
                part = c;
            }
        routine = elems == 1 && named(part, "partition") && (t = text_of(part)) &&
                  strcmp(t, "/machine") == 0;
    } else if (named(n, "emulator") && (t = text_of(n))) {
        static const char *const usual[] = {"/usr/libexec/qemu-kvm", "/usr/bin/qemu-kvm",
                                            "/usr/bin/kvm"};
        const char *sys = "/usr/bin/qemu-system-";
        routine = strncmp(t, sys, strlen(sys)) == 0 && !strchr(t + strlen(sys), '/');
        for (size_t i = 0; i < sizeof usual / sizeof *usual; i++)
            routine = routine || strcmp(t, usual[i]) == 0;
    }
    free(t);
    return routine;
}

static void drop(struct san *s, const char *where, xmlNodePtr n)
{
    char what[WHERE_MAX], refs[REFS_MAX + 1];
    if (n->type == XML_ENTITY_REF_NODE) {
        fmt(what, sizeof what, "%s%sentity reference &%s;", where, *where ? "/" : "",
            (const char *)n->name);
        refs[0] = '\0';
    } else {
        path_of(what, sizeof what, where, n);
        refs_of(n, refs, sizeof refs);
    }
    note_drop(s, what, refs, routine_element(n));
    domxml_unlink_free(n);
}

/* Removes n's attribute a, reporting it. */
static void drop_attr(struct san *s, const char *where, xmlNodePtr n, xmlAttrPtr a)
{
    char what[WHERE_MAX];
    xmlChar *v = xmlNodeListGetString(n->doc, a->children, 1);
    fmt(what, sizeof what, "%s/@%s", where, (const char *)a->name);
    note(s, what, v ? (const char *)v : "");
    xmlFree(v);
    xmlRemoveProp(a);
}

static void keep_attrs(struct san *s, const char *where, xmlNodePtr n, const char *const *allowed)
{
    for (xmlAttrPtr a = n->properties, next; a; a = next) {
        next = a->next;
        if (a->ns || !in_list((const char *)a->name, allowed))
            drop_attr(s, where, n, a);
    }
}

/* Drops the element children of n that are not in allowed (and foreign nodes). */
static void keep_children(struct san *s, const char *where, xmlNodePtr n,
                          const char *const *allowed)
{
    for (xmlNodePtr c = n->children, next; c; c = next) {
        next = c->next;
        if (c->type == XML_ENTITY_REF_NODE ||
            (c->type == XML_ELEMENT_NODE && (c->ns || !in_list((const char *)c->name, allowed))))
            drop(s, where, c);
    }
}

/* What is left of an element that is kept: no foreign elements, no entity references, no
 * <seclabel>, no attribute holding an absolute path; an element whose text is an absolute
 * path goes. skip: a child left alone (a disk's source, which the caller rewrites). Returns
 * false if n itself was dropped. */
static bool scrub(struct san *s, const char *where, xmlNodePtr n, const char *const *skip)
{
    char here[WHERE_MAX];
    path_of(here, sizeof here, where, n);
    for (xmlAttrPtr a = n->properties, next; a; a = next) {
        next = a->next;
        xmlChar *v = xmlNodeListGetString(n->doc, a->children, 1);
        bool bad = a->ns || (v && is_path((const char *)v));
        xmlFree(v);
        if (bad)
            drop_attr(s, here, n, a);
    }
    bool path_text = false;
    for (xmlNodePtr c = n->children, next; c; c = next) {
        next = c->next;
        if (c->type == XML_ENTITY_REF_NODE ||
            (c->type == XML_ELEMENT_NODE && (c->ns || named(c, "seclabel")))) {
            drop(s, here, c);
        } else if (c->type == XML_ELEMENT_NODE) {
            if (!skip || !in_list((const char *)c->name, skip))
                scrub(s, here, c, NULL);
        } else if (c->type == XML_TEXT_NODE || c->type == XML_CDATA_SECTION_NODE) {
            char *t = text_of(c);
            path_text |= t && is_path(t);
            free(t);
        }
    }
    if (path_text) {
        drop(s, where, n);
        return false;
    }
    return true;
}

static void set_prop(struct san *s, xmlNodePtr n, const char *name, const char *value)
{
    if (!xmlSetProp(n, BAD_CAST name, BAD_CAST value))
        s->oom = true;
}

/* ---- <os> ---- */

static const char *const os_children[] = {"type",   "loader",  "nvram",    "kernel",
                                          "initrd", "cmdline", "boot",     "bootmenu",
                                          "smbios", "bios",    "firmware", NULL};

static bool own(const struct san *s, enum domxml_boot_kind k)
{
    return (s->own >> k) & 1u;
}

/* Removes the attributes not in allowed without reporting them: what goes is libvirt's own
 * output in a live XML (ids, states) or replaced by the caller's choice. */
static void strip_attrs(xmlNodePtr n, const char *const *allowed)
{
    for (xmlAttrPtr a = n->properties, next; a; a = next) {
        next = a->next;
        if (a->ns || !in_list((const char *)a->name, allowed))
            xmlRemoveProp(a);
    }
}

static void remove_children(xmlNodePtr n)
{
    for (xmlNodePtr c = n->children, next; c; c = next) {
        next = c->next;
        xmlUnlinkNode(c);
        xmlFreeNode(c);
    }
}

/* Returns true if the loader was dropped. Its text is a path by design: not scrubbed. */
static bool sanitize_loader(struct san *s, xmlNodePtr loader)
{
    char *path = text_of(loader);
    bool mine = own(s, DOMXML_LOADER);
    if (!mine && path && *path && !domxml_firmware_path(path)) {
        free(path);
        drop(s, "os", loader);
        return true;
    }
    /* the host's firmware is only ever read */
    if (!mine && path && *path && prop_is(loader, "type", "pflash") &&
        !prop_is(loader, "readonly", "yes")) {
        note(s, "os/loader made read-only", path);
        set_prop(s, loader, "readonly", "yes");
    }
    free(path);
    keep_attrs(s, "os/loader", loader,
               (const char *const[]){"readonly", "secure", "type", "stateless", "format", NULL});
    keep_children(s, "os/loader", loader, (const char *const[]){NULL});
    return false;
}

static void sanitize_nvram(struct san *s, xmlNodePtr nvram, bool loader_dropped)
{
    if (loader_dropped) {
        drop(s, "os", nvram);
        return;
    }
    char *tmpl = prop(nvram, "template");
    if (tmpl && !domxml_firmware_path(tmpl)) {
        note(s, "os/nvram/@template", tmpl);
        free(tmpl);
        tmpl = NULL;
    }
    xmlUnsetProp(nvram, BAD_CAST "template");
    if (own(s, DOMXML_NVRAM)) {
        /* our copy, as a plain file path */
        strip_attrs(nvram, (const char *const[]){"templateFormat", "format", NULL});
    } else {
        /* No copy of ours: libvirt makes a fresh one in its nvram directory from the
         * template. A file, block or network nvram (<source>) is a host reference. */
        char refs[REFS_MAX + 1] = "";
        collect_paths(nvram, refs, sizeof refs);
        if (refs[0])
            note(s, "os/nvram path (libvirt makes a fresh one)", refs);
        remove_children(nvram);
        strip_attrs(nvram, (const char *const[]){"templateFormat", "format", NULL});
    }
    if (tmpl)
        set_prop(s, nvram, "template", tmpl);
    free(tmpl);
}

static void sanitize_os(struct san *s, xmlNodePtr os)
{
    keep_children(s, "os", os, os_children);
    keep_attrs(s, "os", os, (const char *const[]){"firmware", NULL});
    xmlNodePtr loader = domxml_child(os, "loader");
    bool loader_dropped = loader && sanitize_loader(s, loader);
    for (xmlNodePtr c = os->children, next; c; c = next) {
        next = c->next;
        if (c->type != XML_ELEMENT_NODE || named(c, "loader") || named(c, "cmdline"))
            continue; /* cmdline: the guest kernel's arguments, no host reference */
        if (named(c, "nvram")) {
            sanitize_nvram(s, c, loader_dropped);
        } else if (named(c, "kernel") || named(c, "initrd")) {
            enum domxml_boot_kind k = named(c, "kernel") ? DOMXML_KERNEL : DOMXML_INITRD;
            if (!own(s, k))
                drop(s, "os", c);
            else
                keep_children(s, "os", c, (const char *const[]){NULL});
        } else {
            scrub(s, "os", c, NULL);
        }
    }
}

/* ---- <devices> ---- */

static const char *const disk_children[] = {
    "driver",   "source",    "target",    "boot",   "address",      "alias",
    "readonly", "shareable", "transient", "serial", "wwn",          "vendor",
    "product",  "geometry",  "blockio",   "iotune", "backingStore", NULL};
static const char *const disk_own[] = {"source", "backingStore", NULL};

static const char *const nic_types[] = {"network", "bridge", "user", NULL};
static const char *const nic_children[] = {
    "mac",  "source",    "model", "driver",      "boot",      "address",  "alias", "mtu",
    "link", "bandwidth", "vlan",  "virtualport", "filterref", "coalesce", "rom",   "acpi",
    "ip",   "route",     "tune",  "teaming",     "port",      NULL};

static void sanitize_interface(struct san *s, xmlNodePtr nic)
{
    char *type = prop(nic, "type");
    if (!in_list(type ? type : "network", nic_types)) {
        free(type);
        drop(s, "devices", nic);
        return;
    }
    free(type);
    /* <target dev='vnetN'/> is libvirt's own name of the tap device in a live XML */
    xmlNodePtr target = domxml_child(nic, "target");
    if (target) {
        char *dev = prop(target, "dev");
        if (!dev || strncmp(dev, "vnet", 4) == 0) {
            domxml_unlink_free(target);
        }
        free(dev);
    }
    keep_children(s, "devices/interface", nic, nic_children);
    xmlNodePtr src = domxml_child(nic, "source");
    if (src) {
        keep_attrs(s, "devices/interface/source", src,
                   (const char *const[]){"network", "portgroup", "bridge", "portid", NULL});
        keep_children(s, "devices/interface/source", src, (const char *const[]){NULL});
    }
    xmlNodePtr rom = domxml_child(nic, "rom");
    if (rom)
        keep_attrs(s, "devices/interface/rom", rom, (const char *const[]){"bar", "enabled", NULL});
    scrub(s, "devices", nic, NULL);
}

static void sanitize_graphics(struct san *s, xmlNodePtr g)
{
    char *type = prop(g, "type");
    bool ok = in_list(type, (const char *const[]){"vnc", "spice", NULL});
    free(type);
    if (!ok) {
        drop(s, "devices", g);
        return;
    }
    for (xmlNodePtr c = g->children, next; c; c = next) {
        next = c->next;
        if (named(c, "listen") && !prop_is(c, "type", "address") &&
            !prop_is(c, "type", "network") && !prop_is(c, "type", "none"))
            drop(s, "devices/graphics", c);
    }
    scrub(s, "devices", g, NULL);
}

/* An audio backend other than none/spice (files, sound servers) becomes type='none'; the
 * id stays, for the sound devices that name it. */
static void sanitize_audio(struct san *s, xmlNodePtr a)
{
    char *type = prop(a, "type");
    if (in_list(type, (const char *const[]){"none", "spice", NULL})) {
        free(type);
        scrub(s, "devices", a, NULL);
        return;
    }
    char refs[REFS_MAX + 1] = "";
    snprintf(refs, sizeof refs, "type='%s'", type ? type : "?");
    collect_paths(a, refs, sizeof refs);
    free(type);
    note(s, "devices/audio (now type='none')", refs);
    remove_children(a);
    strip_attrs(a, (const char *const[]){"id", NULL});
    set_prop(s, a, "type", "none");
}

static void sanitize_rng(struct san *s, xmlNodePtr rng)
{
    xmlNodePtr be = domxml_child(rng, "backend");
    char *dev = be ? text_of(be) : NULL;
    bool ok =
        be && (prop_is(be, "model", "builtin") || (prop_is(be, "model", "random") && dev &&
                                                   (!*dev || strcmp(dev, "/dev/urandom") == 0)));
    free(dev);
    if (!ok) {
        drop(s, "devices", rng);
        return;
    }
    keep_children(s, "devices/rng", rng,
                  (const char *const[]){"backend", "rate", "driver", "address", "alias", NULL});
    keep_attrs(s, "devices/rng/backend", be, (const char *const[]){"model", NULL});
    keep_children(s, "devices/rng/backend", be, (const char *const[]){NULL});
    scrub(s, "devices", rng, (const char *const[]){"backend", NULL});
}

static void sanitize_tpm(struct san *s, xmlNodePtr tpm)
{
    xmlNodePtr be = domxml_child(tpm, "backend");
    if (!be || !prop_is(be, "type", "emulator")) {
        drop(s, "devices", tpm);
        return;
    }
    keep_children(s, "devices/tpm", tpm,
                  (const char *const[]){"backend", "address", "alias", NULL});
    keep_attrs(s, "devices/tpm/backend", be,
               (const char *const[]){"type", "version", "persistent_state", NULL});
    keep_children(s, "devices/tpm/backend", be, (const char *const[]){"active_pcr_banks", NULL});
    scrub(s, "devices", tpm, NULL);
}

static const char *const chardev_children[] = {"target", "address", "alias", NULL};

/* serial, console, parallel: whatever they were connected to, they become a pty. */
static void sanitize_pty(struct san *s, xmlNodePtr dev)
{
    char what[WHERE_MAX], refs[REFS_MAX + 1] = "";
    char *type = prop(dev, "type");
    bool was_pty = type && strcmp(type, "pty") == 0;
    if (!was_pty)
        snprintf(refs, sizeof refs, "type='%s'", type ? type : "?");
    free(type);
    for (xmlNodePtr c = dev->children, next; c; c = next) {
        next = c->next;
        if (c->type != XML_ELEMENT_NODE ||
            (!c->ns && in_list((const char *)c->name, chardev_children)))
            continue;
        /* a pty's <source path='/dev/pts/N'/> is libvirt's own output in a live XML */
        if (!(was_pty && named(c, "source")))
            collect_paths(c, refs, sizeof refs);
        domxml_unlink_free(c);
    }
    strip_attrs(dev, (const char *const[]){"type", NULL}); /* tty='/dev/pts/N' */
    set_prop(s, dev, "type", "pty");
    if (refs[0]) {
        fmt(what, sizeof what, "devices/%s backend (now a pty)", (const char *)dev->name);
        note(s, what, refs);
    }
    scrub(s, "devices", dev, NULL);
}

static void sanitize_channel(struct san *s, xmlNodePtr ch)
{
    xmlNodePtr target = domxml_child(ch, "target");
    bool virtio = target && prop_is(target, "type", "virtio");
    bool agent = virtio && prop_is(target, "name", "org.qemu.guest_agent.0");
    bool spice = virtio && (prop_is(ch, "type", "spicevmc") || prop_is(ch, "type", "qemu-vdagent"));
    if (!agent && !spice) {
        drop(s, "devices", ch);
        return;
    }
    if (spice) {
        keep_children(s, "devices/channel", ch,
                      (const char *const[]){"target", "source", "address", "alias", NULL});
        scrub(s, "devices", ch, NULL);
        return;
    }
    /* the guest agent: on a unix socket whose path libvirt chooses in its own directory */
    char refs[REFS_MAX + 1] = "";
    xmlNodePtr src = NULL;
    for (xmlNodePtr c = ch->children, next; c; c = next) {
        next = c->next;
        if (c->type != XML_ELEMENT_NODE || named(c, "target") || named(c, "address") ||
            named(c, "alias"))
            continue;
        collect_paths(c, refs, sizeof refs);
        if (named(c, "source") && !src) {
            src = c;
            remove_children(src);
            strip_attrs(src, (const char *const[]){NULL});
        } else {
            domxml_unlink_free(c);
        }
    }
    if (strncmp(refs, "/var/lib/libvirt/qemu/channel/", 30) == 0 && !strchr(refs, ','))
        refs[0] = '\0'; /* libvirt's own choice, in a live XML */
    if (refs[0])
        note(s, "devices/channel source path (libvirt chooses one)", refs);
    strip_attrs(ch, (const char *const[]){"type", NULL});
    set_prop(s, ch, "type", "unix");
    strip_attrs(target, (const char *const[]){"type", "name", NULL}); /* state='connected' */
    if (!src) {
        src = xmlNewNode(NULL, BAD_CAST "source");
        if (!src || !xmlAddPrevSibling(target, src)) {
            xmlFreeNode(src);
            s->oom = true;
            return;
        }
    }
    set_prop(s, src, "mode", "bind");
    scrub(s, "devices", ch, NULL);
}

static const char *const plain_devices[] = {"controller", "video", "sound", "watchdog",
                                            "memballoon", "panic", "hub",   "iommu",
                                            "vsock",      NULL};
static const char *const input_types[] = {"mouse", "tablet", "keyboard", NULL};

static void sanitize_devices(struct san *s, xmlNodePtr devs)
{
    for (xmlNodePtr c = devs->children, next; c; c = next) {
        next = c->next;
        if (c->type == XML_ENTITY_REF_NODE || (c->type == XML_ELEMENT_NODE && c->ns)) {
            drop(s, "devices", c);
            continue;
        }
        if (c->type != XML_ELEMENT_NODE)
            continue;
        const char *name = (const char *)c->name;
        if (strcmp(name, "disk") == 0) {
            keep_children(s, "devices/disk", c, disk_children);
            scrub(s, "devices", c, disk_own);
        } else if (in_list(name, plain_devices)) {
            scrub(s, "devices", c, NULL);
        } else if (strcmp(name, "input") == 0) {
            char *type = prop(c, "type");
            bool ok = in_list(type, input_types);
            free(type);
            if (ok)
                scrub(s, "devices", c, NULL);
            else
                drop(s, "devices", c);
        } else if (strcmp(name, "interface") == 0) {
            sanitize_interface(s, c);
        } else if (strcmp(name, "graphics") == 0) {
            sanitize_graphics(s, c);
        } else if (strcmp(name, "audio") == 0) {
            sanitize_audio(s, c);
        } else if (strcmp(name, "rng") == 0) {
            sanitize_rng(s, c);
        } else if (strcmp(name, "tpm") == 0) {
            sanitize_tpm(s, c);
        } else if (in_list(name, (const char *const[]){"serial", "console", "parallel", NULL})) {
            sanitize_pty(s, c);
        } else if (strcmp(name, "channel") == 0) {
            sanitize_channel(s, c);
        } else {
            drop(s, "devices", c);
        }
    }
}

/* ---- the rest ---- */

static void sanitize_sysinfo(struct san *s, xmlNodePtr si)
{
    if (prop_is(si, "type", "smbios")) {
        /* strings the guest reads; only foreign elements go */
        keep_children(s, "sysinfo", si,
                      (const char *const[]){"bios", "system", "baseBoard", "chassis", "processor",
                                            "memory", "oemStrings", NULL});
        return;
    }
    if (!prop_is(si, "type", "fwcfg")) {
        drop(s, "", si);
        return;
    }
    for (xmlNodePtr c = si->children, next; c; c = next) {
        next = c->next;
        if (c->type == XML_ELEMENT_NODE && (!named(c, "entry") || !prop_is(c, "file", NULL)))
            drop(s, "sysinfo", c);
    }
    scrub(s, "", si, NULL);
}

static const char *const top_keep[] = {
    "name",           "uuid",        "genid",           "title",     "description",
    "maxMemory",      "memory",      "currentMemory",   "vcpu",      "vcpus",
    "iothreads",      "iothreadids", "defaultiothread", "cpu",       "os",
    "features",       "clock",       "on_poweroff",     "on_reboot", "on_crash",
    "on_lockfailure", "pm",          "devices",         "sysinfo",   NULL};

int domxml_sanitize(struct domxml *d, unsigned own_boot_files, struct domxml_drops *drops,
                    struct vb_error *err)
{
    struct san s = {.drops = drops, .own = own_boot_files};
    drops->v = NULL;
    drops->n = 0;
    xmlNodePtr root = xmlDocGetRootElement(domxml_doc(d));
    strip_attrs(root, (const char *const[]){"type", NULL}); /* id='N' of a live XML */
    for (xmlNodePtr c = root->children, next; c; c = next) {
        next = c->next;
        if (c->type == XML_ENTITY_REF_NODE ||
            (c->type == XML_ELEMENT_NODE && (c->ns || !in_list((const char *)c->name, top_keep)))) {
            drop(&s, "", c);
            continue;
        }
        if (c->type != XML_ELEMENT_NODE)
            continue;
        if (named(c, "os")) {
            sanitize_os(&s, c);
        } else if (named(c, "devices")) {
            sanitize_devices(&s, c);
        } else if (named(c, "sysinfo")) {
            sanitize_sysinfo(&s, c);
        } else if (named(c, "vcpu")) {
            keep_attrs(&s, "vcpu", c, (const char *const[]){"current", "placement", NULL});
        } else if (named(c, "title") || named(c, "description")) {
            keep_children(&s, (const char *)c->name, c, (const char *const[]){NULL});
        } else {
            scrub(&s, "", c, NULL);
        }
    }
    if (s.oom) {
        domxml_drops_free(drops);
        return vb_error_set(err, "out of memory");
    }
    return 0;
}
