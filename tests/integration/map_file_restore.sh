#!/bin/bash
# Single-file restore without /dev/nbd: a domain whose disk holds a partition table and an
# ext4 filesystem is backed up (full, then an inc that changes a file); virtmap serves the
# inc's point in time, nbdfuse turns the export into a file, a loop device with partitions
# is made from it, the partition is mounted read-only, and the files read back equal the
# originals of that point in time. Every mount, loop device, fuse mount and process is
# removed afterwards.
set -euo pipefail
source "$(dirname "$0")/../lib/testbed.sh"
source "$(dirname "$0")/../lib/chain.sh"
tb_init
VIRTMAP="$VB_BUILD_DIR/src/map/virtmap"

tb_create_domain fs 64M
DOM=$TB_DOMAIN
IMG=${TB_IMAGES[0]}
W=$TB_WORKDIR

tb_step "an ext4 filesystem in partition 1 of the disk"
mkdir -p "$W/tree/etc" "$W/tree/data"
echo "hello from the backup" >"$W/tree/etc/motd"
head -c 3000000 /dev/urandom >"$W/tree/data/blob.bin"
truncate -s 64M "$W/disk.raw"
# an MBR with one Linux partition from sector 2048 to the end (no sfdisk on these machines)
/usr/bin/python3 - "$W/disk.raw" <<'PY'
import struct, sys
with open(sys.argv[1], "r+b") as f:
    entry = struct.pack("<B3sB3sII", 0, b"\0\0\0", 0x83, b"\0\0\0", 2048, 64 * 2048 - 2048)
    f.seek(446); f.write(entry)
    f.seek(510); f.write(b"\x55\xaa")
PY
mke2fs -q -t ext4 -b 4096 -d "$W/tree" "$W/fs.raw" 60M
dd if="$W/fs.raw" of="$W/disk.raw" bs=1M seek=1 conv=notrunc,sparse status=none
tb_virsh destroy "$DOM" >/dev/null
qemu-img convert -O qcow2 -o compat=1.1 "$W/disk.raw" "$IMG"
chown --reference="$W" "$IMG"
tb_virsh start --paused "$DOM" >/dev/null
vb_backup -d "$DOM" -l full -o "$W/out" -z

tb_step "an incremental that overwrites the file's first 4 KiB"
# find where blob.bin's first block is on the disk, and overwrite it through the guest path
blk=$(debugfs -R "bmap /data/blob.bin 0" "$W/fs.raw" 2>/dev/null) # fs-relative block
[[ "$blk" =~ ^[0-9]+$ ]] && [ "$blk" -gt 0 ] || tb_fail "debugfs found no block of blob.bin: '$blk'"
off=$((1048576 + blk * 4096))
tb_qemu_io "$DOM" vda "write -P 0x5a $off 4k"
vb_backup -d "$DOM" -l inc -o "$W/out" -z
cp "$W/tree/data/blob.bin" "$W/blob.inc1"
printf '\x5a%.0s' $(seq 1 4096) | dd of="$W/blob.inc1" conv=notrunc status=none

FUSE=$W/fuse
MNT=$W/mnt
mkdir -p "$FUSE" "$MNT"
LOOP=""
cleanup_mounts() {
    mountpoint -q "$MNT" && umount "$MNT"
    [ -n "$LOOP" ] && losetup -d "$LOOP"
    mountpoint -q "$FUSE" && fusermount3 -u "$FUSE"
    true
}
tb_on_exit cleanup_mounts

for point in virtnbdbackup.0 virtnbdbackup.1; do
    tb_step "point $point: nbdfuse + loop device with partitions + mount, files compared"
    "$VIRTMAP" -d none -r -i "$W/out" --until $point --socket "$W/s" >/dev/null 2>"$W/virtmap.log" &
    vmpid=$!
    tb_on_exit "kill $vmpid"
    tb_wait_for $vmpid test -S "$W/s" || tb_fail "virtmap did not start: $(cat "$W/virtmap.log")"
    nbdfuse -r "$FUSE" --unix "$W/s" & # export name "" = the default (first) export
    tb_wait_for $! test -e "$FUSE/nbd" || tb_fail "nbdfuse did not come up"
    LOOP=$(losetup -f --show -r -P "$FUSE/nbd")
    # the kernel scans the partitions; without udev nobody makes the /dev node: we do
    sys=/sys/block/$(basename "$LOOP")/$(basename "$LOOP")p1/dev
    # the scan at attach may not see the table through FUSE; partx adds it with BLKPG
    [ -e "$sys" ] || partx -a "$LOOP"
    TB_WAIT_LIMIT=60 tb_wait_for "" test -e "$sys" || tb_fail "the kernel found no partition 1 on $LOOP"
    PART=$W/part1
    rm -f "$PART"
    mknod "$PART" b "$(cut -d: -f1 "$sys")" "$(cut -d: -f2 "$sys")"
    # a partition device of the same numbers may still cache the previous point's blocks
    blockdev --flushbufs "$PART"
    mount -o ro,noload "$PART" "$MNT"
    cmp "$MNT/etc/motd" "$W/tree/etc/motd" || tb_fail "$point: motd differs"
    if [ $point = virtnbdbackup.0 ]; then want="$W/tree/data/blob.bin"; else want="$W/blob.inc1"; fi
    cmp "$MNT/data/blob.bin" "$want" || tb_fail "$point: blob.bin differs from the file at that point"
    tb_log "$point: restored $(cat "$MNT/etc/motd") and a $(stat -c %s "$MNT/data/blob.bin")-byte file"
    umount "$MNT"
    losetup -d "$LOOP"
    LOOP=""
    fusermount3 -u "$FUSE"
    kill -TERM $vmpid
    wait $vmpid || tb_fail "virtmap exited non-zero after SIGTERM"
done
tb_pass "single files restored through nbdfuse + loop + mount"
