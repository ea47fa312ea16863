#!/bin/sh
# /sbin/init of a boot disk of tests/lib/lab-bootdisk.sh: the whole "operating system",
# busybox sh on the disk's own ext4 root. Each boot it reports on the serial console, one
# line "@@vb-os KEY VALUE" each:
#   init ROOTDEV         it runs from the root filesystem on ROOTDEV (the boot disk)
#   boot N               this is the disk's boot number N (0 first; counted on the disk)
#   marker-full TEXT     /etc/vb-marker, written on the host when the disk was made
#   wrote-marker UUID    first boot only: a new /var/vb/marker (a fresh random UUID)
#   marker UUID          later boots: the /var/vb/marker an earlier boot wrote
#   wrote PATH UUID      every boot: a new file PATH holding a fresh random UUID
#   end ok               all of it synced, root remounted read-only; then it powers off
# A command that fails ends the boot with "@@vb-os failed WHAT" before the power-off.
export PATH=/bin:/sbin
say() { echo "@@vb-os $*"; }
fail() {
    say failed "$*"
    sync
    poweroff -f
}

mount -t proc proc /proc || fail "mount /proc"
mount -t sysfs sysfs /sys || fail "mount /sys"
[ -e /dev/console ] || mount -t devtmpfs devtmpfs /dev || fail "mount /dev"

say init "$(awk '$2 == "/" && $1 != "rootfs" {print $1}' /proc/mounts)"
mkdir -p /var/vb || fail "mkdir /var/vb"
n=$(cat /var/vb/boots 2>/dev/null || echo 0)
say boot "$n"
echo $((n + 1)) >/var/vb/boots || fail "write /var/vb/boots"
say marker-full "$(cat /etc/vb-marker)"
if [ -f /var/vb/marker ]; then
    say marker "$(cat /var/vb/marker)"
else
    cat /proc/sys/kernel/random/uuid >/var/vb/marker || fail "write /var/vb/marker"
    say wrote-marker "$(cat /var/vb/marker)"
fi
cat /proc/sys/kernel/random/uuid >"/var/vb/boot-$n" || fail "write /var/vb/boot-$n"
sync
say wrote "/var/vb/boot-$n" "$(cat "/var/vb/boot-$n")"
mount -o remount,ro / || fail "remount / read-only"
say end ok
poweroff -f
