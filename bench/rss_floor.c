/* The resident memory any libvirt client starts from: a program that does nothing but what
 * every backup must do first (load libvirt, connect, read one domain's XML). Prints three
 * numbers, KiB of VmRSS: before any call, after virConnectOpen, after the domain's XML.
 * The bench compares them with the tools' peak RSS (bench/README.md).
 *
 * usage: rss_floor URI [DOMAIN]
 */
#include <libvirt/libvirt.h>
#include <libvirt/virterror.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static long rss_kib(void)
{
    FILE *f = fopen("/proc/self/status", "r");
    char line[256];
    long kib = -1;
    while (f && fgets(line, sizeof line, f))
        if (strncmp(line, "VmRSS:", 6) == 0)
            kib = strtol(line + 6, NULL, 10);
    if (f)
        fclose(f);
    return kib;
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: rss_floor URI [DOMAIN]\n");
        return 2;
    }
    long loaded = rss_kib();
    virConnectPtr conn = virConnectOpen(argv[1]);
    if (!conn) {
        fprintf(stderr, "rss_floor: %s: %s\n", argv[1], virGetLastErrorMessage());
        return 1;
    }
    long connected = rss_kib();
    if (argc > 2) {
        virDomainPtr dom = virDomainLookupByName(conn, argv[2]);
        char *xml = dom ? virDomainGetXMLDesc(dom, 0) : NULL;
        if (!xml) {
            fprintf(stderr, "rss_floor: %s: %s\n", argv[2], virGetLastErrorMessage());
            return 1;
        }
        free(xml);
        virDomainFree(dom);
    }
    printf("%ld %ld %ld\n", loaded, connected, rss_kib());
    virConnectClose(conn);
    return 0;
}
