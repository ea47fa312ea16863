/* boot_chardevs, the part of virtmap --boot that keeps the booted copy's serial ports,
 * consoles and channels off the original VM's files whatever the config says (--trust-config
 * keeps the rest of it): file and pipe backends and listening unix sockets become ptys, a
 * named virtio channel keeps its socket but not the path, <log> files go; what names no host
 * file stays. --console-log adds a log to the first serial port, or a serial port first. */
#include <libxml/parser.h>
#include <libxml/tree.h>
#include <stdlib.h>
#include <string.h>

#include "boot_chardev.h"
#include "domxml.h"
#include "log.h"
#include "testutil.h"

static const char trusted[] =
    "<domain type='kvm'><name>vm1</name><devices>\n"
    "<serial type='file'><source path='/var/log/vm1-console.log'/>"
    "<log file='/var/log/vm1-serial.log' append='on'/><target port='0'/></serial>\n"
    "<console type='file'><source path='/var/log/vm1-console.log'/>"
    "<target type='serial' port='0'/></console>\n"
    "<serial type='pipe'><source path='/run/vm1-pipe'/><target port='1'/></serial>\n"
    "<parallel type='unix'><source mode='bind' path='/run/vm1-par.sock'/>"
    "<target port='0'/></parallel>\n"
    "<channel type='unix'><source mode='bind' path='/var/lib/libvirt/qemu/channel/vm1.agent'/>"
    "<target type='virtio' name='org.qemu.guest_agent.0'/></channel>\n"
    "<channel type='unix'><source mode='connect' path='/run/some-daemon.sock'/>"
    "<target type='virtio' name='org.example.peer'/></channel>\n"
    "<serial type='tcp'><source mode='connect' host='127.0.0.1' service='4555'/>"
    "<target port='2'/></serial>\n"
    "</devices></domain>";

/* rewrites xml's <devices> and returns the document as text (malloc'ed) */
static char *rewrite(const char *xml, const char *console_log, int *rc)
{
    xmlDocPtr doc = xmlReadMemory(xml, (int)strlen(xml), "d.xml", NULL, XML_PARSE_NONET);
    CHECK(doc != NULL);
    if (!doc)
        return NULL;
    struct vb_error err = {0};
    *rc = boot_chardevs(domxml_child(xmlDocGetRootElement(doc), "devices"), console_log, &err);
    xmlChar *mem = NULL;
    int size = 0;
    xmlDocDumpMemory(doc, &mem, &size);
    char *out = strndup((const char *)mem, (size_t)size);
    xmlFree(mem);
    xmlFreeDoc(doc);
    return out;
}

static void test_trusted(void)
{
    int rc = -1;
    char *out = rewrite(trusted, NULL, &rc);
    CHECK(rc == 0);
    if (!out)
        return;
    const char *gone[] = {"/var/log/vm1-console.log",
                          "/var/log/vm1-serial.log",
                          "/run/vm1-pipe",
                          "/run/vm1-par.sock",
                          "channel/vm1.agent",
                          "<log",
                          "type=\"file\"",
                          "type=\"pipe\""};
    for (size_t i = 0; i < sizeof gone / sizeof *gone; i++)
        CHECK_MSG(!strstr(out, gone[i]), "'%s' is still in %s", gone[i], out);
    const char *kept[] = {
        "<serial type=\"pty\"><target port=\"0\"/></serial>",
        "<console type=\"pty\"><target type=\"serial\" port=\"0\"/></console>",
        "<serial type=\"pty\"><target port=\"1\"/></serial>",
        "<parallel type=\"pty\"><target port=\"0\"/></parallel>",
        /* libvirt picks the agent's socket */
        "<channel type=\"unix\"><source mode=\"bind\"/>"
        "<target type=\"virtio\" name=\"org.qemu.guest_agent.0\"/></channel>",
        /* a connecting socket writes to no file of the original */
        "<source mode=\"connect\" path=\"/run/some-daemon.sock\"/>",
        "<serial type=\"tcp\"><source mode=\"connect\" host=\"127.0.0.1\" service=\"4555\"/>"};
    for (size_t i = 0; i < sizeof kept / sizeof *kept; i++)
        CHECK_MSG(strstr(out, kept[i]), "'%s' is not in %s", kept[i], out);
    free(out);
}

static int count(const char *hay, const char *needle)
{
    int n = 0;
    for (const char *p = hay; (p = strstr(p, needle)); p += strlen(needle))
        n++;
    return n;
}

static void test_console_log(void)
{
    int rc = -1;
    char *out = rewrite(trusted, "/var/log/copy.log", &rc);
    CHECK(rc == 0);
    /* on the first serial port only, which is now a pty */
    CHECK(out && strstr(out, "<serial type=\"pty\"><target port=\"0\"/>"
                             "<log file=\"/var/log/copy.log\" append=\"on\"/></serial>"));
    CHECK(out && count(out, "/var/log/copy.log") == 1);
    free(out);
    out = rewrite("<domain><name>n</name><devices><disk/></devices></domain>", "/l.log", &rc);
    CHECK(rc == 0);
    CHECK(out && strstr(out, "<serial type=\"pty\"><target port=\"0\"/>"
                             "<log file=\"/l.log\" append=\"on\"/></serial>"));
    free(out);
    out = rewrite("<domain><name>n</name><devices><serial type='pty'><target port='0'/></serial>"
                  "</devices></domain>",
                  NULL, &rc);
    CHECK(rc == 0);
    CHECK(out && strstr(out, "<serial type=\"pty\"><target port=\"0\"/></serial>"));
    free(out);
}

int main(void)
{
    vb_log_init("test_boot_chardev", false, true); /* what it logs is not checked here */
    test_trusted();
    test_console_log();
    return test_finish("test_boot_chardev");
}
