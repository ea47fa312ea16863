/* A stream chain's saved checkpoint XML with its parent replaced or removed
 * (src/backup/checkpoint_xml.c): everything else kept as libvirt gave it. */
#include <stdlib.h>
#include <string.h>

#include "checkpoint_xml.h"
#include "testutil.h"

static const char *XML = "<domaincheckpoint>\n"
                         "  <name>virtnbdbackup.1</name>\n"
                         "  <parent>\n"
                         "    <name>virtnbdbackup.0123456789abcdef0123456789abcdef.2</name>\n"
                         "  </parent>\n"
                         "  <creationTime>1796666400</creationTime>\n"
                         "  <disks>\n"
                         "    <disk name='vda' checkpoint='bitmap' bitmap='virtnbdbackup.1'/>\n"
                         "  </disks>\n"
                         "  <domain type='kvm'>\n"
                         "    <name>a &amp; b</name>\n"
                         "  </domain>\n"
                         "</domaincheckpoint>";

static void check(char *got, const char *want)
{
    CHECK_MSG(got && strcmp(got, want) == 0, "got:\n%s\nwant:\n%s", got ? got : "(null)", want);
    free(got);
}

int main(void)
{
    struct vb_error err = {0};
    check(checkpoint_xml_set_parent(XML, "virtnbdbackup.0", &err),
          "<domaincheckpoint>\n"
          "  <name>virtnbdbackup.1</name>\n"
          "  <parent>\n"
          "    <name>virtnbdbackup.0</name>\n"
          "  </parent>\n"
          "  <creationTime>1796666400</creationTime>\n"
          "  <disks>\n"
          "    <disk name=\"vda\" checkpoint=\"bitmap\" bitmap=\"virtnbdbackup.1\"/>\n"
          "  </disks>\n"
          "  <domain type=\"kvm\">\n"
          "    <name>a &amp; b</name>\n"
          "  </domain>\n"
          "</domaincheckpoint>");
    check(checkpoint_xml_set_parent(XML, NULL, &err),
          "<domaincheckpoint>\n"
          "  <name>virtnbdbackup.1</name>\n"
          "  <creationTime>1796666400</creationTime>\n"
          "  <disks>\n"
          "    <disk name=\"vda\" checkpoint=\"bitmap\" bitmap=\"virtnbdbackup.1\"/>\n"
          "  </disks>\n"
          "  <domain type=\"kvm\">\n"
          "    <name>a &amp; b</name>\n"
          "  </domain>\n"
          "</domaincheckpoint>");
    /* no parent to remove */
    check(checkpoint_xml_set_parent("<domaincheckpoint><name>x</name></domaincheckpoint>", NULL,
                                    &err),
          "<domaincheckpoint><name>x</name></domaincheckpoint>");
    CHECK(checkpoint_xml_set_parent("<domain/>", NULL, &err) == NULL);
    CHECK(strstr(err.msg, "not a checkpoint's XML") != NULL);
    CHECK(checkpoint_xml_set_parent("<domaincheckpoint>", NULL, &err) == NULL);
    return test_finish("test_checkpoint_xml");
}
