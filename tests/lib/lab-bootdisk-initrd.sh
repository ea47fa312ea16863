#!/bin/busybox sh
# /init of the initramfs that a boot disk of tests/lib/lab-bootdisk.sh carries in its /boot
# (busybox sh, no bash here): loads the modules listed in /modules (dependency order; lines
# "soft NAME" may fail), waits for the root device named by root= on the kernel command
# line, mounts it (ext4, read-write) and hands over to its /sbin/init with switch_root. A
# failure before that prints "@@vb-os initrd-failed REASON" on the console and powers off.
/bin/busybox --install -s /bin
export PATH=/bin

mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
exec </dev/console >/dev/console 2>&1

die() {
    echo "@@vb-os initrd-failed $*"
    poweroff -f
}

ROOT=""
for w in $(cat /proc/cmdline); do
    case "$w" in
    root=*) ROOT=${w#root=} ;;
    esac
done
[ -n "$ROOT" ] || die "no root= on the kernel command line"

while read -r kind name; do
    if ! insmod "/lib/modules/$name.ko" 2>/tmp/insmod.err && [ "$kind" = hard ]; then
        die "insmod $name: $(cat /tmp/insmod.err)"
    fi
done </modules

i=0
while [ ! -b "$ROOT" ]; do
    i=$((i + 1))
    [ "$i" -le 300 ] || die "no root device $ROOT after 30 s"
    sleep 0.1
done
mkdir -p /newroot
mount -t ext4 -o rw "$ROOT" /newroot || die "cannot mount $ROOT"
[ -x /newroot/sbin/init ] || die "$ROOT has no /sbin/init"
mount --move /dev /newroot/dev || die "cannot move /dev"
umount /proc /sys
exec switch_root /newroot /sbin/init
