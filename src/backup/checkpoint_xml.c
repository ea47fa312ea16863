#include "checkpoint_xml.h"

#include <libxml/parser.h>
#include <libxml/tree.h>
#include <stdlib.h>
#include <string.h>

static xmlNodePtr child(xmlNodePtr n, const char *name)
{
    for (xmlNodePtr c = n ? n->children : NULL; c; c = c->next)
        if (c->type == XML_ELEMENT_NODE && strcmp((const char *)c->name, name) == 0)
            return c;
    return NULL;
}

char *checkpoint_xml_set_parent(const char *xml, const char *parent, struct vb_error *err)
{
    xmlDocPtr doc = xmlReadMemory(xml, (int)strlen(xml), "checkpoint.xml", NULL,
                                  XML_PARSE_NONET | XML_PARSE_NOERROR | XML_PARSE_NOWARNING);
    xmlNodePtr root = doc ? xmlDocGetRootElement(doc) : NULL;
    if (!root || strcmp((const char *)root->name, "domaincheckpoint") != 0) {
        xmlFreeDoc(doc);
        vb_error_set(err, "not a checkpoint's XML");
        return NULL;
    }
    xmlNodePtr p = child(root, "parent");
    xmlNodePtr name = child(p, "name");
    if (p && !parent) {
        /* with the indentation before it */
        xmlNodePtr blank = p->prev;
        if (blank && blank->type == XML_TEXT_NODE && xmlIsBlankNode(blank)) {
            xmlUnlinkNode(blank);
            xmlFreeNode(blank);
        }
        xmlUnlinkNode(p);
        xmlFreeNode(p);
    } else if (name && parent) {
        xmlNodeSetContent(name, NULL);
        xmlNodeAddContent(name, (const xmlChar *)parent);
    }
    xmlBufferPtr buf = xmlBufferCreate();
    char *out = NULL;
    if (buf && xmlNodeDump(buf, doc, root, 0, 0) >= 0)
        out = strdup((const char *)xmlBufferContent(buf));
    xmlBufferFree(buf);
    xmlFreeDoc(doc);
    if (!out)
        vb_error_set(err, "out of memory");
    return out;
}
