#include "boot_chardev.h"

#include <stdbool.h>
#include <string.h>

#include "domxml.h"
#include "log.h"

static bool is_chardev(xmlNodePtr n)
{
    return domxml_is_elem(n, "serial") || domxml_is_elem(n, "console") ||
           domxml_is_elem(n, "parallel") || domxml_is_elem(n, "channel");
}

static bool prop_is(xmlNodePtr n, const char *name, const char *value)
{
    xmlChar *v = n ? xmlGetProp(n, BAD_CAST name) : NULL;
    bool is = v && strcmp((const char *)v, value) == 0;
    xmlFree(v);
    return is;
}

/* "path" of the first <source> (file, pipe and unix backends), malloc'ed by libxml, or NULL */
static xmlChar *source_path(xmlNodePtr dev)
{
    xmlNodePtr src = domxml_child(dev, "source");
    return src ? xmlGetProp(src, BAD_CAST "path") : NULL;
}

static void to_pty(xmlNodePtr dev)
{
    for (xmlNodePtr c = dev->children, next; c; c = next) {
        next = c->next;
        if (domxml_is_elem(c, "source"))
            domxml_unlink_free(c);
    }
    xmlSetProp(dev, BAD_CAST "type", BAD_CAST "pty");
}

static void detach_host_files(xmlNodePtr dev)
{
    const char *kind = (const char *)dev->name;
    for (xmlNodePtr c = dev->children, next; c; c = next) {
        next = c->next;
        if (!domxml_is_elem(c, "log"))
            continue;
        xmlChar *file = xmlGetProp(c, BAD_CAST "file");
        vb_info("--boot: %s: not logging to %s, the original VM's file", kind,
                file ? (const char *)file : "?");
        xmlFree(file);
        domxml_unlink_free(c);
    }
    xmlChar *path = source_path(dev);
    if (prop_is(dev, "type", "file") || prop_is(dev, "type", "pipe")) {
        vb_info("--boot: %s: wrote to %s, the original VM's file: now a pty", kind,
                path ? (const char *)path : "?");
        to_pty(dev);
    } else if (prop_is(dev, "type", "unix") && path &&
               prop_is(domxml_child(dev, "source"), "mode", "bind")) {
        xmlNodePtr target = domxml_child(dev, "target");
        xmlChar *name = target ? xmlGetProp(target, BAD_CAST "name") : NULL;
        if (domxml_is_elem(dev, "channel") && prop_is(target, "type", "virtio") && name) {
            /* libvirt makes a socket of its own for a named virtio channel without a path */
            vb_info("--boot: channel %s: not listening on %s, the original VM's socket", name,
                    (const char *)path);
            xmlUnsetProp(domxml_child(dev, "source"), BAD_CAST "path");
        } else {
            vb_info("--boot: %s: listened on %s, the original VM's socket: now a pty", kind,
                    (const char *)path);
            to_pty(dev);
        }
        xmlFree(name);
    }
    xmlFree(path);
}

static int add_console_log(xmlNodePtr devices, const char *console_log, struct vb_error *err)
{
    xmlNodePtr serial = domxml_child(devices, "serial");
    if (!serial) {
        serial = xmlNewChild(devices, NULL, BAD_CAST "serial", NULL);
        xmlNodePtr target = serial ? xmlNewChild(serial, NULL, BAD_CAST "target", NULL) : NULL;
        if (!target)
            return vb_error_set(err, "out of memory");
        xmlSetProp(serial, BAD_CAST "type", BAD_CAST "pty");
        xmlSetProp(target, BAD_CAST "port", BAD_CAST "0");
        vb_info("--boot: the VM has no serial port: added one for --console-log");
    }
    xmlNodePtr log = xmlNewChild(serial, NULL, BAD_CAST "log", NULL);
    if (!log)
        return vb_error_set(err, "out of memory");
    xmlSetProp(log, BAD_CAST "file", BAD_CAST console_log);
    xmlSetProp(log, BAD_CAST "append", BAD_CAST "on");
    return 0;
}

int boot_chardevs(xmlNodePtr devices, const char *console_log, struct vb_error *err)
{
    for (xmlNodePtr c = devices->children; c; c = c->next)
        if (is_chardev(c))
            detach_host_files(c);
    return console_log ? add_console_log(devices, console_log, err) : 0;
}
