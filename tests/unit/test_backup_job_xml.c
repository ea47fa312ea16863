/* The backup and checkpoint XML virtbackup gives libvirt (src/backup/job.c), compared whole:
 * the pull-mode server (unix socket, or TCP with and without TLS), the incremental parent,
 * a scratch file per disk of the job, backup='no' for the other disks, no entry for a cdrom,
 * a bitmap only for the disks named, and every attribute escaped. */
#include <stdlib.h>
#include <string.h>

#include "backup_job.h"
#include "index.h"
#include "testutil.h"

static struct vb_disk disks[] = {
    {.target = "vda", .device = "disk"},
    {.target = "hdc", .device = "cdrom"},
    {.target = "vdb", .device = "disk"},
    {.target = "sda", .device = "lun"},
};
static struct vb_domain_info info = {.name = "vm", .ndisks = 4, .disks = disks};

static void check_xml(char *got, const char *want)
{
    CHECK_MSG(got && strcmp(got, want) == 0, "got:\n%s\nwant:\n%s", got ? got : "(null)", want);
    free(got);
}

static void test_backup_unix(void)
{
    struct disk_job vda = {.disk = &disks[0]}, sda = {.disk = &disks[3]};
    struct disk_job *jobs[] = {&vda, &sda};
    struct job_spec spec = {.socket = "/run/vb/j1/sock",
                            .dir = "/run/vb/j1",
                            .disks = jobs,
                            .ndisks = 2,
                            .info = &info};
    /* a full: no incremental element; vdb excluded, the cdrom not listed */
    check_xml(job_backup_xml(&spec), "<domainbackup mode='pull'>\n"
                                     "  <server transport='unix' socket='/run/vb/j1/sock'/>\n"
                                     "  <disks>\n"
                                     "    <disk name='vda' backup='yes' type='file'>\n"
                                     "      <scratch file='/run/vb/j1/scratch.vda'/>\n"
                                     "    </disk>\n"
                                     "    <disk name='vdb' backup='no'/>\n"
                                     "    <disk name='sda' backup='yes' type='file'>\n"
                                     "      <scratch file='/run/vb/j1/scratch.sda'/>\n"
                                     "    </disk>\n"
                                     "  </disks>\n"
                                     "</domainbackup>\n");

    /* an incremental; awkward characters in every attribute that comes from outside */
    struct disk_job vdb = {.disk = &disks[2]};
    struct disk_job *one[] = {&vdb};
    spec = (struct job_spec){.socket = "/tmp/a'b\"c&d<e>.sock",
                             .dir = "/tmp/x&y",
                             .disks = one,
                             .ndisks = 1,
                             .info = &info,
                             .incremental = "virtnbdbackup.3"};
    check_xml(job_backup_xml(&spec),
              "<domainbackup mode='pull'>\n"
              "  <server transport='unix' socket='/tmp/a&apos;b&quot;c&amp;d&lt;e&gt;.sock'/>\n"
              "  <incremental>virtnbdbackup.3</incremental>\n"
              "  <disks>\n"
              "    <disk name='vda' backup='no'/>\n"
              "    <disk name='vdb' backup='yes' type='file'>\n"
              "      <scratch file='/tmp/x&amp;y/scratch.vdb'/>\n"
              "    </disk>\n"
              "    <disk name='sda' backup='no'/>\n"
              "  </disks>\n"
              "</domainbackup>\n");

    /* a repository incremental: a disk without a base is exported whole */
    struct repo_index base = {0};
    struct disk_job rvda = {.disk = &disks[0], .repo = (struct repo *)1, .base = &base},
                    rvdb = {.disk = &disks[2], .repo = (struct repo *)1};
    struct disk_job *two[] = {&rvda, &rvdb};
    spec = (struct job_spec){.socket = "/s",
                             .dir = "/d",
                             .disks = two,
                             .ndisks = 2,
                             .info = &info,
                             .incremental = "virtnbdbackup.0123456789abcdef0123456789abcdef.4"};
    check_xml(job_backup_xml(&spec),
              "<domainbackup mode='pull'>\n"
              "  <server transport='unix' socket='/s'/>\n"
              "  <incremental>virtnbdbackup.0123456789abcdef0123456789abcdef.4</incremental>\n"
              "  <disks>\n"
              "    <disk name='vda' backup='yes' type='file'>\n"
              "      <scratch file='/d/scratch.vda'/>\n"
              "    </disk>\n"
              "    <disk name='vdb' backupmode='full' backup='yes' type='file'>\n"
              "      <scratch file='/d/scratch.vdb'/>\n"
              "    </disk>\n"
              "    <disk name='sda' backup='no'/>\n"
              "  </disks>\n"
              "</domainbackup>\n");
}

static void test_backup_tcp(void)
{
    struct disk_job vda = {.disk = &disks[0]};
    struct disk_job *jobs[] = {&vda};
    struct job_spec spec = {.tcp_host = "192.0.2.7",
                            .tcp_port = 10809,
                            .dir = "/j",
                            .disks = jobs,
                            .ndisks = 1,
                            .info = &info};
    const char *tail = "  <disks>\n"
                       "    <disk name='vda' backup='yes' type='file'>\n"
                       "      <scratch file='/j/scratch.vda'/>\n"
                       "    </disk>\n"
                       "    <disk name='vdb' backup='no'/>\n"
                       "    <disk name='sda' backup='no'/>\n"
                       "  </disks>\n"
                       "</domainbackup>\n";
    char want[1024];
    snprintf(want, sizeof want, "%s%s",
             "<domainbackup mode='pull'>\n"
             "  <server transport='tcp' name='192.0.2.7' port='10809'/>\n",
             tail);
    check_xml(job_backup_xml(&spec), want);
    spec.tls = true;
    snprintf(want, sizeof want, "%s%s",
             "<domainbackup mode='pull'>\n"
             "  <server transport='tcp' tls='yes' name='192.0.2.7' port='10809'/>\n",
             tail);
    check_xml(job_backup_xml(&spec), want);
}

static void test_checkpoint(void)
{
    /* bitmaps for vda and sda only (vdb excluded from the backup) */
    const char *bitmaps[] = {"sda", "vda"};
    struct job_spec spec = {.info = &info,
                            .checkpoint = "virtnbdbackup.4",
                            .bitmap_disks = bitmaps,
                            .nbitmap_disks = 2};
    check_xml(job_checkpoint_xml(&spec), "<domaincheckpoint>\n"
                                         "  <description>Backup checkpoint</description>\n"
                                         "  <name>virtnbdbackup.4</name>\n"
                                         "  <disks>\n"
                                         "    <disk name='vda' checkpoint='bitmap'/>\n"
                                         "    <disk name='vdb' checkpoint='no'/>\n"
                                         "    <disk name='sda' checkpoint='bitmap'/>\n"
                                         "  </disks>\n"
                                         "</domaincheckpoint>\n");
    spec.checkpoint = "a<b";
    spec.nbitmap_disks = 0;
    check_xml(job_checkpoint_xml(&spec), "<domaincheckpoint>\n"
                                         "  <description>Backup checkpoint</description>\n"
                                         "  <name>a&lt;b</name>\n"
                                         "  <disks>\n"
                                         "    <disk name='vda' checkpoint='no'/>\n"
                                         "    <disk name='vdb' checkpoint='no'/>\n"
                                         "    <disk name='sda' checkpoint='no'/>\n"
                                         "  </disks>\n"
                                         "</domaincheckpoint>\n");
}

int main(void)
{
    test_backup_unix();
    test_backup_tcp();
    test_checkpoint();
    return test_finish("test_backup_job_xml");
}
