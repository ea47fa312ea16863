/* domxml_sanitize on domain XML strings: a hostile vmconfig loses every host reference and
 * reports each kind; what a VM needs stays; boot files stay only as the caller's copies or
 * the host's firmware; a live XML's own output (pty paths, vnet names) is dropped quietly.
 * Also the checkpoint names that may become parts of file names. */
#include <stdlib.h>
#include <string.h>

#include "checkpoint_name.h"
#include "domxml.h"
#include "domxml_sanitize.h"
#include "testutil.h"

static const char hostile[] =
    "<domain type='kvm' id='7' xmlns:qemu='http://libvirt.org/schemas/domain/qemu/1.0'>\n"
    "  <name>vm1</name>\n"
    "  <uuid>6a1c1f2e-8d0c-4b59-9c4b-3f0b5a3e2d11</uuid>\n"
    "  <metadata><app:x xmlns:app='urn:x'>/etc/metadata-path</app:x></metadata>\n"
    "  <memory unit='KiB'>131072</memory>\n"
    "  <currentMemory unit='KiB'>131072</currentMemory>\n"
    "  <memoryBacking><hugepages/></memoryBacking>\n"
    "  <vcpu placement='static' cpuset='0-1'>2</vcpu>\n"
    "  <cputune><vcpupin vcpu='0' cpuset='1'/></cputune>\n"
    "  <blkiotune><device><path>/dev/sda</path><weight>500</weight></device></blkiotune>\n"
    "  <resource><partition>/machine</partition></resource>\n"
    "  <sysinfo type='fwcfg'><entry name='opt/a' file='/etc/ssh/ssh_host_rsa_key'/>"
    "<entry name='opt/b'>text</entry></sysinfo>\n"
    "  <os>\n"
    "    <type arch='x86_64' machine='pc-q35-7.2'>hvm</type>\n"
    "    <loader readonly='yes' type='pflash'>/etc/shadow</loader>\n"
    "    <nvram template='/etc/shadow'>/etc/gshadow</nvram>\n"
    "    <kernel>/boot/vmlinuz-host</kernel>\n"
    "    <dtb>/boot/host.dtb</dtb>\n"
    "    <acpi><table type='slic'>/etc/slic.bin</table></acpi>\n"
    "    <cmdline>console=ttyS0 root=/dev/vda1</cmdline>\n"
    "    <boot dev='hd'/>\n"
    "  </os>\n"
    "  <features><acpi/><apic/></features>\n"
    "  <cpu mode='host-model' check='partial'><topology sockets='1' cores='2' threads='1'/></cpu>\n"
    "  <clock offset='utc'><timer name='rtc' tickpolicy='catchup'/></clock>\n"
    "  <on_poweroff>destroy</on_poweroff>\n"
    "  <pm><suspend-to-mem enabled='no'/></pm>\n"
    "  <devices>\n"
    "    <emulator>/tmp/evil-qemu</emulator>\n"
    "    <disk type='file' device='disk'>\n"
    "      <driver name='qemu' type='qcow2'/>\n"
    "      <source file='/restore/vda.qcow2'/>\n"
    "      <target dev='vda' bus='virtio'/>\n"
    "      <encryption format='luks'><secret type='passphrase' uuid='x'/></encryption>\n"
    "    </disk>\n"
    "    <controller type='usb' index='0' model='qemu-xhci'/>\n"
    "    <filesystem type='mount' accessmode='passthrough'>\n"
    "      <source dir='/'/><target dir='hostroot'/>\n"
    "    </filesystem>\n"
    "    <hostdev mode='subsystem' type='pci' managed='yes'>\n"
    "      <source><address domain='0x0000' bus='0x00' slot='0x1f' function='0x2'/></source>\n"
    "    </hostdev>\n"
    "    <redirdev bus='usb' type='tcp'><source mode='connect' host='10.0.0.1' "
    "service='4000'/></redirdev>\n"
    "    <smartcard mode='passthrough' type='tcp'/>\n"
    "    <shmem name='ivshmem'><server path='/tmp/ivshmem.sock'/></shmem>\n"
    "    <interface type='network'>\n"
    "      <mac address='52:54:00:11:22:33'/>\n"
    "      <source network='default' portid='abc' bridge='virbr0'/>\n"
    "      <target dev='vnet3'/>\n"
    "      <model type='virtio'/>\n"
    "      <backend tap='/dev/net/tun' vhost='/dev/vhost-net'/>\n"
    "      <rom file='/etc/shadow' bar='on'/>\n"
    "    </interface>\n"
    "    <interface type='ethernet'><script path='/etc/qemu-ifup-evil'/></interface>\n"
    "    <interface type='vhostuser'><source type='unix' path='/tmp/vhu.sock' "
    "mode='client'/></interface>\n"
    "    <serial type='file'><source path='/tmp/x'/><target port='0'/></serial>\n"
    "    <console type='pty' tty='/dev/pts/3'><source path='/dev/pts/3'/>"
    "<target type='serial' port='0'/></console>\n"
    "    <parallel type='dev'><source path='/dev/parport0'/><target port='0'/></parallel>\n"
    "    <channel type='unix'>\n"
    "      <source mode='bind' path='/tmp/agent-evil.sock'/>\n"
    "      <target type='virtio' name='org.qemu.guest_agent.0' state='connected'/>\n"
    "    </channel>\n"
    "    <channel type='unix'><source mode='connect' path='/tmp/guestfwd.sock'/>"
    "<target type='guestfwd' address='10.0.2.1' port='4600'/></channel>\n"
    "    <input type='tablet' bus='usb'/>\n"
    "    <input type='passthrough' bus='virtio'><source evdev='/dev/input/event1'/></input>\n"
    "    <graphics type='vnc' port='-1' autoport='yes' socket='/tmp/vnc-evil.sock'>\n"
    "      <listen type='address' address='127.0.0.1'/>\n"
    "      <listen type='socket' socket='/tmp/vnc2.sock'/>\n"
    "    </graphics>\n"
    "    <graphics type='sdl' display=':0' xauth='/root/.Xauthority'/>\n"
    "    <audio id='1' type='file' path='/tmp/audio.wav'/>\n"
    "    <video><model type='virtio'><acceleration accel3d='yes' "
    "rendernode='/dev/dri/renderD128'/></model></video>\n"
    "    <rng model='virtio'><backend model='random'>/dev/urandom</backend></rng>\n"
    "    <rng model='virtio'><backend model='random'>/dev/mem</backend></rng>\n"
    "    <tpm model='tpm-crb'><backend type='passthrough'><device path='/dev/tpm0'/></backend>"
    "</tpm>\n"
    "    <memballoon model='virtio'/>\n"
    "    <memory model='nvdimm'><source><path>/tmp/nvdimm</path></source></memory>\n"
    "    <lease><lockspace>s</lockspace><key>k</key><target path='/tmp/lease'/></lease>\n"
    "  </devices>\n"
    "  <seclabel type='none' model='dac'/>\n"
    "  <qemu:commandline><qemu:arg value='-device'/><qemu:arg value='virtio-9p-pci'/>"
    "</qemu:commandline>\n"
    "</domain>\n";

static char *sanitized(const char *xml, unsigned own, struct domxml_drops *drops)
{
    struct vb_error err = {0};
    struct domxml *d = domxml_parse(xml, strlen(xml), &err);
    CHECK_MSG(d != NULL, "%s", err.msg);
    if (!d)
        return NULL;
    int rc = domxml_sanitize(d, own, drops, &err);
    CHECK_MSG(rc == 0, "%s", err.msg);
    char *out = rc == 0 ? domxml_format(d, &err) : NULL;
    domxml_free(d);
    return out;
}

static const struct domxml_drop *find_drop(const struct domxml_drops *drops, const char *what)
{
    for (size_t i = 0; i < drops->n; i++)
        if (strcmp(drops->v[i].what, what) == 0)
            return &drops->v[i];
    return NULL;
}

#define CHECK_ABSENT(out, s)  CHECK_MSG(!strstr(out, s), "'%s' kept in:\n%s", s, out)
#define CHECK_PRESENT(out, s) CHECK_MSG(strstr(out, s), "'%s' missing in:\n%s", s, out)

static void check_drop(const struct domxml_drops *drops, const char *what, const char *ref)
{
    const struct domxml_drop *d = find_drop(drops, what);
    CHECK_MSG(d != NULL, "no drop reported for %s", what);
    if (d && ref)
        CHECK_MSG(strstr(d->refs, ref), "drop of %s names '%s', not '%s'", what, d->refs, ref);
}

static void test_hostile(void)
{
    struct domxml_drops drops = {0};
    char *out = sanitized(hostile, 0, &drops);
    if (!out)
        return;
    static const char *const gone[] = {"<filesystem",
                                       "<hostdev",
                                       "<redirdev",
                                       "<smartcard",
                                       "<shmem",
                                       "qemu:commandline",
                                       "qemu:arg",
                                       "<emulator",
                                       "/tmp/evil-qemu",
                                       "<seclabel",
                                       "/etc/shadow",
                                       "/etc/gshadow",
                                       "/boot/vmlinuz-host",
                                       "<dtb",
                                       "slic",
                                       "/tmp/x",
                                       "/tmp/agent-evil.sock",
                                       "guestfwd",
                                       "/dev/net/tun",
                                       "qemu-ifup-evil",
                                       "vhostuser",
                                       "/tmp/vhu.sock",
                                       "evdev",
                                       "vnc-evil",
                                       "vnc2.sock",
                                       "type=\"sdl\"",
                                       ".Xauthority",
                                       "audio.wav",
                                       "renderD128",
                                       "/dev/mem",
                                       "/dev/tpm0",
                                       "nvdimm",
                                       "/tmp/lease",
                                       "<metadata",
                                       "hugepages",
                                       "cpuset",
                                       "cputune",
                                       "/dev/sda",
                                       "/machine",
                                       "ssh_host_rsa_key",
                                       "<encryption",
                                       "/dev/parport0",
                                       "vnet3",
                                       "/dev/pts/3",
                                       "id=\"7\"",
                                       "<loader",
                                       "<nvram",
                                       "<kernel"};
    for (size_t i = 0; i < sizeof gone / sizeof *gone; i++)
        CHECK_ABSENT(out, gone[i]);
    static const char *const kept[] = {"<name>vm1</name>",
                                       "<memory unit=\"KiB\">131072</memory>",
                                       "<vcpu placement=\"static\">2</vcpu>",
                                       "machine=\"pc-q35-7.2\"",
                                       "<boot dev=\"hd\"/>",
                                       "console=ttyS0 root=/dev/vda1",
                                       "<apic/>",
                                       "<topology sockets=\"1\"",
                                       "<timer name=\"rtc\"",
                                       "<on_poweroff>destroy</on_poweroff>",
                                       "<suspend-to-mem",
                                       "<source file=\"/restore/vda.qcow2\"/>",
                                       "<target dev=\"vda\" bus=\"virtio\"/>",
                                       "model=\"qemu-xhci\"",
                                       "<interface type=\"network\">",
                                       "<source network=\"default\"",
                                       "52:54:00:11:22:33",
                                       "<rom bar=\"on\"/>",
                                       "<serial type=\"pty\">",
                                       "<console type=\"pty\">",
                                       "<parallel type=\"pty\">",
                                       "org.qemu.guest_agent.0",
                                       "<source mode=\"bind\"/>",
                                       "<input type=\"tablet\"",
                                       "<graphics type=\"vnc\"",
                                       "address=\"127.0.0.1\"",
                                       "<audio id=\"1\" type=\"none\"/>",
                                       "<model type=\"virtio\">",
                                       "/dev/urandom",
                                       "<memballoon",
                                       "<entry name=\"opt/b\">text</entry>"};
    for (size_t i = 0; i < sizeof kept / sizeof *kept; i++)
        CHECK_PRESENT(out, kept[i]);

    check_drop(&drops, "devices/filesystem", "/");
    check_drop(&drops, "devices/hostdev", "type='pci'");
    check_drop(&drops, "qemu:commandline", "-device");
    check_drop(&drops, "devices/emulator", "/tmp/evil-qemu");
    check_drop(&drops, "seclabel", "type='none'");
    check_drop(&drops, "os/loader", "/etc/shadow");
    check_drop(&drops, "os/nvram", "/etc/gshadow");
    check_drop(&drops, "os/kernel", "/boot/vmlinuz-host");
    check_drop(&drops, "devices/serial backend (now a pty)", "/tmp/x");
    check_drop(&drops, "devices/channel source path (libvirt chooses one)", "/tmp/agent-evil.sock");
    check_drop(&drops, "devices/channel", "/tmp/guestfwd.sock");
    check_drop(&drops, "devices/interface", "/etc/qemu-ifup-evil");
    check_drop(&drops, "devices/interface", "/tmp/vhu.sock");
    check_drop(&drops, "devices/interface/backend", "/dev/net/tun");
    check_drop(&drops, "devices/interface/rom/@file", "/etc/shadow");
    check_drop(&drops, "devices/graphics/@socket", "/tmp/vnc-evil.sock");
    check_drop(&drops, "devices/graphics/listen", "/tmp/vnc2.sock");
    check_drop(&drops, "devices/graphics", "type='sdl', /root/.Xauthority");
    check_drop(&drops, "devices/rng", "/dev/mem");
    check_drop(&drops, "devices/tpm", "/dev/tpm0");
    check_drop(&drops, "devices/audio (now type='none')", "/tmp/audio.wav");
    check_drop(&drops, "devices/video/model/acceleration/@rendernode", "/dev/dri/renderD128");
    check_drop(&drops, "sysinfo/entry", "/etc/ssh/ssh_host_rsa_key");
    check_drop(&drops, "vcpu/@cpuset", "0-1");
    check_drop(&drops, "devices/disk/encryption", NULL);
    check_drop(&drops, "metadata", NULL);
    /* a live XML's own output is not reported */
    for (size_t i = 0; i < drops.n; i++) {
        CHECK_MSG(!strstr(drops.v[i].refs, "/dev/pts/3"), "pty path reported: %s", drops.v[i].what);
        CHECK_MSG(!strstr(drops.v[i].what, "target"), "reported: %s", drops.v[i].what);
        CHECK_MSG(!strstr(drops.v[i].what, "@id"), "reported: %s", drops.v[i].what);
    }
    /* one entry per kind: the two interfaces share one */
    size_t nics = 0;
    for (size_t i = 0; i < drops.n; i++)
        nics += strcmp(drops.v[i].what, "devices/interface") == 0;
    CHECK(nics == 1);

    /* the result is stable: a second pass drops nothing more */
    struct domxml_drops again = {0};
    char *out2 = sanitized(out, 0, &again);
    CHECK_MSG(again.n == 0, "second pass dropped %s", again.n ? again.v[0].what : "");
    CHECK(out2 && strcmp(out, out2) == 0);
    free(out2);
    domxml_drops_free(&again);
    domxml_drops_free(&drops);
    free(out);
}

static const char firmware_vm[] =
    "<domain type='kvm'><name>efi</name><memory>131072</memory>\n"
    "<os><type arch='x86_64' machine='q35'>hvm</type>\n"
    "<loader type='pflash'>/usr/share/OVMF/OVMF_CODE.fd</loader>\n"
    "<nvram template='/usr/share/OVMF/OVMF_VARS.fd'>/var/lib/libvirt/qemu/nvram/efi_VARS.fd"
    "</nvram></os><devices/></domain>";

/* The host's firmware stays (read-only); an nvram not copied gets a fresh one. */
static void test_firmware(void)
{
    struct domxml_drops drops = {0};
    char *out = sanitized(firmware_vm, 0, &drops);
    if (!out)
        return;
    CHECK_PRESENT(out, ">/usr/share/OVMF/OVMF_CODE.fd</loader>");
    CHECK_PRESENT(out, "readonly=\"yes\"");
    CHECK_PRESENT(out, "<nvram template=\"/usr/share/OVMF/OVMF_VARS.fd\"/>");
    CHECK_ABSENT(out, "efi_VARS.fd");
    check_drop(&drops, "os/nvram path (libvirt makes a fresh one)", "efi_VARS.fd");
    domxml_drops_free(&drops);
    free(out);

    /* ".." out of the firmware directory is not firmware */
    static const char escape[] = "<domain><name>e</name><os><type>hvm</type>"
                                 "<loader>/usr/share/OVMF/../../../etc/shadow</loader>"
                                 "<nvram>/x/VARS.fd</nvram></os></domain>";
    out = sanitized(escape, 0, &drops);
    CHECK(out && !strstr(out, "<loader") && !strstr(out, "<nvram"));
    check_drop(&drops, "os/loader", "/usr/share/OVMF/../../../etc/shadow");
    check_drop(&drops, "os/nvram", "/x/VARS.fd");
    domxml_drops_free(&drops);
    free(out);
}

/* Boot files the caller pointed at its own copies stay as they are. */
static void test_own_copies(void)
{
    static const char xml[] =
        "<domain><name>c</name><os><type>hvm</type>"
        "<loader readonly='no' type='pflash'>/restore/OVMF_CODE.fd</loader>"
        "<nvram template='/etc/shadow'>/restore/vm_VARS.fd</nvram>"
        "<kernel>/restore/vmlinuz</kernel><initrd>/restore/initrd.img</initrd></os></domain>";
    struct domxml_drops drops = {0};
    unsigned own =
        1u << DOMXML_LOADER | 1u << DOMXML_NVRAM | 1u << DOMXML_KERNEL | 1u << DOMXML_INITRD;
    char *out = sanitized(xml, own, &drops);
    if (!out)
        return;
    CHECK_PRESENT(out, "<loader readonly=\"no\" type=\"pflash\">/restore/OVMF_CODE.fd</loader>");
    CHECK_PRESENT(out, "<nvram>/restore/vm_VARS.fd</nvram>");
    CHECK_PRESENT(out, "<kernel>/restore/vmlinuz</kernel>");
    CHECK_PRESENT(out, "<initrd>/restore/initrd.img</initrd>");
    CHECK(drops.n == 1);
    check_drop(&drops, "os/nvram/@template", "/etc/shadow");
    domxml_drops_free(&drops);
    free(out);
}

/* An external entity is never expanded or passed on. */
static void test_entities(void)
{
    static const char xml[] = "<?xml version='1.0'?>\n"
                              "<!DOCTYPE domain [<!ENTITY x SYSTEM 'file:///etc/passwd'>]>\n"
                              "<domain><name>e</name><description>a &x; b</description>"
                              "<title>&x;</title></domain>";
    struct domxml_drops drops = {0};
    char *out = sanitized(xml, 0, &drops);
    if (!out)
        return;
    CHECK_ABSENT(out, "&x;");
    CHECK_ABSENT(out, "root:");
    CHECK_PRESENT(out, "<name>e</name>");
    CHECK(find_drop(&drops, "description/entity reference &x;") != NULL);
    domxml_drops_free(&drops);
    free(out);
}

static void test_firmware_path(void)
{
    CHECK(domxml_firmware_path("/usr/share/OVMF/OVMF_CODE.fd"));
    CHECK(domxml_firmware_path("/usr/share/qemu/OVMF.fd"));
    CHECK(domxml_firmware_path("/usr/share/seabios/bios-256k.bin"));
    CHECK(domxml_firmware_path("/usr/share/edk2/ovmf/OVMF_CODE.secboot.fd"));
    CHECK(domxml_firmware_path("/usr/share/AAVMF/AAVMF_CODE.fd"));
    CHECK(!domxml_firmware_path("/usr/share/OVMF"));
    CHECK(!domxml_firmware_path("/usr/share/OVMF/"));
    CHECK(!domxml_firmware_path("/usr/share/OVMFX/a.fd"));
    CHECK(!domxml_firmware_path("/usr/share/OVMF/../../../etc/shadow"));
    CHECK(!domxml_firmware_path("/usr/share/OVMF/./a.fd"));
    CHECK(!domxml_firmware_path("/usr/share//OVMF/a.fd"));
    CHECK(!domxml_firmware_path("usr/share/OVMF/a.fd"));
    CHECK(!domxml_firmware_path("/etc/shadow"));
    CHECK(!domxml_firmware_path(""));
    CHECK(!domxml_firmware_path(NULL));
}

static void test_checkpoint_names(void)
{
    static const char *const good[] = {"virtnbdbackup.0", "virtnbdbackup.17", "copy",
                                       "1795309832",      "a.b-c_d.5",        ""};
    for (size_t i = 0; i < sizeof good / sizeof *good; i++)
        CHECK_MSG(!vb_checkpoint_name_problem(good[i]), "%s refused", good[i]);
    static const char *const bad[] = {
        "../../etc", "../../../../t.0", "a/b.1",   "/etc/x.1", ".hidden.1", "a..b.1",
        "..",        "x\n.1",           "x\x7f.1", "x\t.2"};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++)
        CHECK_MSG(vb_checkpoint_name_problem(bad[i]), "%s accepted", bad[i]);
    struct vb_error err = {0};
    CHECK(vb_checkpoint_name_check("x\n/y.1", "/b/vda.full.data", &err) < 0);
    CHECK_MSG(strstr(err.msg, "/b/vda.full.data") && strstr(err.msg, "x\\x0a/y.1") &&
                  !strchr(err.msg, '\n'),
              "%s", err.msg);
}

/* What libvirt writes into every domain's XML from the host's defaults is dropped as
 * routine (a debug line); the same elements pointing elsewhere are reported. */
static void test_routine(void)
{
    static const char usual[] =
        "<domain type='kvm'><name>vm</name><memory>131072</memory>"
        "<resource><partition>/machine</partition></resource>"
        "<os><type arch='x86_64' machine='pc'>hvm</type></os>"
        "<devices><emulator>/usr/bin/qemu-system-x86_64</emulator></devices>"
        "<seclabel type='dynamic' model='dac' relabel='yes'><label>+64055:+64055</label>"
        "<imagelabel>+64055:+64055</imagelabel></seclabel></domain>";
    static const char unusual[] =
        "<domain type='kvm'><name>vm</name><memory>131072</memory>"
        "<resource><partition>/evil</partition></resource>"
        "<os><type arch='x86_64' machine='pc'>hvm</type></os>"
        "<devices><emulator>/usr/bin/qemu-system-x86_64/../../../tmp/q</emulator></devices>"
        "<seclabel type='static' model='dac' relabel='no'><label>+0:+0</label></seclabel>"
        "</domain>";
    struct domxml_drops drops;
    char *out = sanitized(usual, 0, &drops);
    const char *kinds[] = {"resource", "devices/emulator", "seclabel"};
    for (size_t i = 0; i < 3; i++) {
        const struct domxml_drop *d = find_drop(&drops, kinds[i]);
        CHECK_MSG(d && d->routine, "the usual %s is not dropped as routine", kinds[i]);
    }
    free(out);
    domxml_drops_free(&drops);
    out = sanitized(unusual, 0, &drops);
    for (size_t i = 0; i < 3; i++) {
        const struct domxml_drop *d = find_drop(&drops, kinds[i]);
        CHECK_MSG(d && !d->routine, "an unusual %s is dropped as routine", kinds[i]);
    }
    free(out);
    domxml_drops_free(&drops);
}

int main(void)
{
    test_hostile();
    test_firmware();
    test_own_copies();
    test_entities();
    test_firmware_path();
    test_checkpoint_names();
    test_routine();
    return test_finish("test_domxml_sanitize");
}
