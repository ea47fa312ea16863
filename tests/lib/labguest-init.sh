#!/bin/busybox sh
# /init of the lab guest's initramfs (tests/lib/labguest.sh builds it; busybox sh, no bash
# here). Loads the modules listed in /modules (dependency order; lines "soft NAME" may fail:
# e.g. crc32c_intel on a CPU without SSE4.2), mounts the host's / (9p tag hostroot,
# read-only) on /host with tmpfs on /tmp, /run, /var/tmp, /mnt and the guest's /proc, /sys,
# /dev bound into it, mounts the writable 9p share labout on lab.out's path if given, runs
# lab.run (a bash script) chrooted into /host, prints the verdict line
# "@@lab-verdict NONCE STATUS" and powers off. Parameters come from the kernel command line:
# lab.run=PATH lab.nonce=WORD [lab.out=PATH].
/bin/busybox --install -s /bin
export PATH=/bin

mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
exec </dev/console >/dev/console 2>&1

say() { echo "lab-init: $*"; }
die() {
    say "$*"
    echo "@@lab-verdict $NONCE init-failed"
    poweroff -f
}

RUN="" NONCE="" OUT=""
for w in $(cat /proc/cmdline); do
    case "$w" in
    lab.run=*) RUN=${w#lab.run=} ;;
    lab.nonce=*) NONCE=${w#lab.nonce=} ;;
    lab.out=*) OUT=${w#lab.out=} ;;
    esac
done

while read -r kind name; do
    if ! insmod "/lib/modules/$name.ko" 2>/tmp/insmod.err && [ "$kind" = hard ]; then
        die "insmod $name: $(cat /tmp/insmod.err)"
    fi
done </modules

mkdir -p /dev/pts /dev/shm
mount -t devpts devpts /dev/pts
mount -t tmpfs tmpfs /dev/shm
ip link set lo up

mount -t 9p -o trans=virtio,version=9p2000.L,ro,cache=loose hostroot /host ||
    die "cannot mount the host's / (9p tag hostroot)"
for d in tmp run var/tmp mnt; do
    mount -t tmpfs -o mode=1777 tmpfs "/host/$d" || die "tmpfs on /host/$d"
done
mkdir -m 1777 /host/run/lock # /var/lock (qemu-nbd -c keeps a socket there)
for d in proc sys dev; do
    mount -o rbind "/$d" "/host/$d" || die "bind /$d"
done
if [ -n "$OUT" ]; then
    mount -t 9p -o trans=virtio,version=9p2000.L labout "/host$OUT" ||
        die "cannot mount the writable share (9p tag labout) on $OUT"
fi

chroot /host /usr/bin/env -i PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    HOME=/tmp TMPDIR=/tmp LAB_OUT="$OUT" /bin/bash "$RUN"
rc=$?
sync
echo "@@lab-verdict $NONCE $rc"
poweroff -f
