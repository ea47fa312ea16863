#!/bin/bash
# virtmap -d with the kernel's NBD client, in a lab guest (tests/lib/labguest.sh: the host has
# no nbd module). A domain with an MBR disk (vda) and a GPT disk (vdb), ext4 in partition 1 of
# each, is backed up on the host; the host also reads each disk's export with nbdcopy (the
# reference the devices must equal). In the guest, three parts, each reported on its own:
#   partitions: -d /dev/nbd1 -i attaches vda to nbd1 and vdb to nbd2 with 512-byte blocks; the
#     devices equal the backup, nbdXp1 appears without udev and before anything else opened
#     the device, mounts, and its files are the originals; SIGTERM detaches both, and their
#     partitions go with them (tests/lib/lab-nbd-guest.sh: stop_serving).
#   repository: the same with -i REPO, a repository snapshot (virtbackup -l copy) of the
#     domain: nbd1 and nbd2 equal the disks, their partitions mount with the original files.
#   auto: with qemu-nbd -c /dev/nbd0 holding a mounted ext4, -d auto -i takes nbd1 and nbd2,
#     equal to the backup, partitions mount; --run sees the device as $device; after virtmap
#     stops, nbd0 is still qemu-nbd's, mounted, read and written.
#   busy: virtmap -d /dev/nbd0 is refused naming qemu-nbd's process, and nbd0 stays attached,
#     mounted, readable, writable.
#   setup: while another process has set nbd1's socket but not started it (no pid in sysfs:
#     the kernel's EBUSY is the only sign), -d /dev/nbd1 is refused and -d auto takes nbd2.
# Then, on this host without the nbd module, -d auto says to load it or to use -d none.
set -euo pipefail
source "$(dirname "$0")/../lib/testbed.sh"
source "$(dirname "$0")/../lib/chain.sh"
source "$(dirname "$0")/../lib/labguest.sh"
tb_init
lab_init
# nbdcopy needs the distribution's libraries ahead of anything else in PATH
export PATH="/usr/bin:$PATH"
VIRTMAP="$VB_BUILD_DIR/src/map/virtmap"
[ -x "$VIRTMAP" ] || tb_fail "virtmap not built"
W=$TB_WORKDIR
G=$W/guest # what the guest reads: copies readable by qemu's user
mkdir -p "$G"

# make_disk RAW SIZE LABEL TREE: a disk image with one partition (from sector 2048 to the end)
# holding an ext4 filesystem made from TREE.
make_disk() {
    local raw="$1" size="$2" label="$3" tree="$4" start sectors
    truncate -s "$size" "$raw"
    printf 'label: %s\nstart=2048\n' "$label" | sfdisk -q "$raw"
    start=$(sfdisk -J "$raw" | jq '.partitiontable.partitions[0].start')
    sectors=$(sfdisk -J "$raw" | jq '.partitiontable.partitions[0].size')
    mke2fs -q -t ext4 -b 4096 -d "$tree" "$raw.fs" "$((sectors / 2))k"
    dd if="$raw.fs" of="$raw" bs=512 seek="$start" conv=notrunc,sparse status=none
    rm -f "$raw.fs"
}

tb_step "a domain with an MBR disk (vda) and a GPT disk (vdb), ext4 in partition 1 of each"
tb_create_domain dev 64M 32M
DOM=$TB_DOMAIN
for d in vda vdb; do
    mkdir -p "$G/tree-$d/data"
    echo "the $d of $DOM" >"$G/tree-$d/motd"
    head -c 3000000 /dev/urandom >"$G/tree-$d/data/blob.bin"
done
make_disk "$W/vda.raw" 64M dos "$G/tree-vda"
make_disk "$W/vdb.raw" 32M gpt "$G/tree-vdb"
tb_virsh destroy "$DOM" >/dev/null
disks=(vda vdb)
for i in 0 1; do
    qemu-img convert -O qcow2 -o compat=1.1 "$W/${disks[$i]}.raw" "${TB_IMAGES[$i]}"
    chown --reference="$W" "${TB_IMAGES[$i]}"
done
tb_virsh start --paused "$DOM" >/dev/null
vb_backup -d "$DOM" -l full -o "$W/backup"
"$VB_BUILD_DIR/src/virtrepo/virtrepo" init "$W/repo" >/dev/null
vb_backup -d "$DOM" -l copy -o "$W/repo"

tb_step "the reference: each disk's export read on the host, equal to the disk"
"$VIRTMAP" -d none -r -i "$W/backup" --socket "$W/ref.sock" --run \
    "nbdcopy 'nbd+unix:///vda?socket=$W/ref.sock' '$G/ref-vda.raw' &&
     nbdcopy 'nbd+unix:///vdb?socket=$W/ref.sock' '$G/ref-vdb.raw'" 2>"$W/ref.log" ||
    tb_fail "reading the exports on the host failed: $(cat "$W/ref.log")"
tb_compare_raw "$G/ref-vda.raw" "$W/vda.raw" "vda's export"
tb_compare_raw "$G/ref-vdb.raw" "$W/vdb.raw" "vdb's export"

tb_step "the guest's inputs: a copy of the backup, and an ext4 image for qemu-nbd to hold"
cp -r "$W/backup" "$G/backup"
cp -r "$W/repo" "$G/repo"
mkdir -p "$G/tree-held"
echo "held by qemu-nbd" >"$G/tree-held/marker.txt"
mke2fs -q -t ext4 -d "$G/tree-held" "$W/held.raw" 16M
qemu-img convert -O qcow2 "$W/held.raw" "$G/held.qcow2"
lab_readable "$G"

{
    printf 'G=%q\n' "$G"
    # shellcheck disable=SC2016 # expanded in the guest
    echo 'VIRTMAP=$VB_BUILD_DIR/src/map/virtmap # the lab copy of the build'
    cat "$TB_LIB_DIR/lab-nbd-guest.sh"
    cat <<'GUEST'
BK=$G/backup

# a part's EXIT trap: the mounts of check_device, then virtmap
end_parts() {
    end_serving /mnt/vda /mnt/vdb
}

# check_device DEV DISK: attached by virtmap, 512-byte blocks, equal to the backup's DISK,
# partition 1 appears by itself, mounts, and holds the original files.
check_device() {
    local dev="$1" disk="$2"
    local unscanned=""
    lab_assert_eq "$VMPID" "$(owner_of "$dev")" "$dev's owner"
    # nothing here has opened the device yet: the partition must show by itself
    for _ in $(seq 1 100); do
        [ -b "${dev}p1" ] && break
        sleep 0.1
    done
    if [ ! -b "${dev}p1" ]; then
        unscanned="${dev}p1 appeared only once the test opened $dev"
        lab_log "FAIL: $unscanned"
    fi
    cmp "$dev" "$G/ref-$disk.raw" || lab_fail "$dev differs from the backup of $disk"
    lab_wait_for 10 "${dev}p1 (partition 1 of $disk)" test -b "${dev}p1"
    mkdir -p "/mnt/$disk"
    mount -o ro "${dev}p1" "/mnt/$disk" || lab_fail "cannot mount ${dev}p1 ($(dmesg | tail -3))"
    diff -r -x lost+found "$G/tree-$disk" "/mnt/$disk" || lab_fail "files in ${dev}p1 differ"
    umount "/mnt/$disk"
    lab_assert_eq 512 "$(cat "/sys/block/${dev#/dev/}/queue/logical_block_size")" \
        "$dev's logical block size"
    [ -z "$unscanned" ] || lab_fail "$unscanned"
    lab_log "$dev: $disk of the backup, partition 1 mounted, files identical"
}

# hold_nbd0: qemu-nbd -c /dev/nbd0 with its ext4 mounted on /mnt/held, unless that runs
# already; QPID its process
hold_nbd0() {
    QPID=$(owner_of /dev/nbd0)
    if [ "$QPID" = none ] || [ "$QPID" = gone ]; then
        umount -l /mnt/held 2>/dev/null || true # left on a torn-down device
        qemu-nbd -d /dev/nbd0 >/dev/null 2>&1 || true
        cp "$G/held.qcow2" /tmp/held.qcow2
        qemu-nbd -c /dev/nbd0 -f qcow2 /tmp/held.qcow2
        lab_wait_for 30 "qemu-nbd attached to nbd0" test -e /sys/block/nbd0/pid
        QPID=$(owner_of /dev/nbd0)
        mkdir -p /mnt/held
        mount /dev/nbd0 /mnt/held
    fi
    lab_assert_eq qemu-nbd "$(cat "/proc/$QPID/comm")" "the process holding nbd0"
}

# check_held: nbd0 is still qemu-nbd's, mounted, reads from the device and takes writes
check_held() {
    lab_assert_eq "$QPID" "$(owner_of /dev/nbd0)" "nbd0's owner"
    lab_assert_eq 32768 "$(cat /sys/block/nbd0/size)" "nbd0's size (sectors)"
    mountpoint -q /mnt/held || lab_fail "/mnt/held is no longer mounted"
    echo "$1" >>/mnt/held/log.txt
    sync
    echo 3 >/proc/sys/vm/drop_caches # the next reads go to the device
    cmp /mnt/held/marker.txt "$G/tree-held/marker.txt" || lab_fail "marker.txt on nbd0 changed"
    tail -n 1 /mnt/held/log.txt | grep -qx "$1" || lab_fail "a write to nbd0 did not read back"
    lab_log "nbd0: still qemu-nbd's ($QPID), mounted, read and written"
}

part_partitions() {
    lab_step "partitions: -d /dev/nbd1 -i attaches vda and vdb, partitions mount"
    serve -d /dev/nbd1 -r -i "$BK"
    trap end_parts EXIT
    check_device /dev/nbd1 vda
    check_device /dev/nbd2 vdb
    stop_serving /dev/nbd1 /dev/nbd2
}

part_repo() {
    lab_step "repository: -d /dev/nbd1 -i REPO attaches the snapshot's vda and vdb"
    serve -d /dev/nbd1 -r -i "$G/repo"
    trap end_parts EXIT
    check_device /dev/nbd1 vda
    check_device /dev/nbd2 vdb
    stop_serving /dev/nbd1 /dev/nbd2
}

part_busy() {
    lab_step "busy: a device held by qemu-nbd (ext4 mounted) is refused, naming its owner"
    hold_nbd0 # still held since the auto part, unless that failed
    check_held "before virtmap"
    lab_expect_fail "a device in use" \
        timeout 300 "$VIRTMAP" -d /dev/nbd0 -r -i "$BK" --socket /tmp/busy.sock --run true
    grep -qF "/dev/nbd0: in use by process $QPID (qemu-nbd)" "$LAB_LAST_OUT" ||
        lab_fail "the refusal does not name qemu-nbd's process $QPID"
    check_held "after virtmap was refused"
}

part_auto() {
    lab_step "auto: -d auto -i takes the first free devices, nbd0 stays qemu-nbd's"
    hold_nbd0
    serve -d auto -i "$BK"
    trap end_parts EXIT
    check_device /dev/nbd1 vda
    check_device /dev/nbd2 vdb
    check_held "while virtmap served nbd1 and nbd2"
    stop_serving /dev/nbd1 /dev/nbd2
    check_held "after virtmap stopped"
    lab_step "auto: one disk with -f; --run sees the device in \$device"
    "$VIRTMAP" -d auto -r -f "$BK/vdb.full.data" --socket /tmp/run.sock \
        --run 'test "$device" = /dev/nbd1 && cmp "$device" "$REF"' 2>/tmp/run.log ||
        lab_fail "-d auto --run: \$device is not /dev/nbd1 or differs: $(cat /tmp/run.log)"
    check_held "after the --run"
}

part_setup() {
    lab_step "setup: a device another process is setting up (socket set, no NBD_DO_IT yet)"
    hold_nbd0
    rm -f /tmp/setup.ready
    /usr/bin/python3 -c '
import fcntl, os, socket, time
fd = os.open("/dev/nbd1", os.O_RDWR)
a, b = socket.socketpair()
fcntl.ioctl(fd, 0xab00, a.fileno())  # NBD_SET_SOCK
open("/tmp/setup.ready", "w").close()
time.sleep(3600)
' &
    SETUP_PID=$!
    trap 'kill $SETUP_PID 2>/dev/null || true; wait || true' EXIT
    lab_wait_for 60 "a process setting up nbd1" test -e /tmp/setup.ready
    lab_assert_eq none "$(owner_of /dev/nbd1)" "nbd1's owner in sysfs while it is being set up"
    lab_expect_fail "a device being set up" \
        timeout 300 "$VIRTMAP" -d /dev/nbd1 -r -f "$BK/vdb.full.data" --socket /tmp/s.sock --run true
    grep -qF "/dev/nbd1: in use: the kernel refuses" "$LAB_LAST_OUT" ||
        lab_fail "the refusal does not say that the kernel refused nbd1"
    "$VIRTMAP" -d auto -r -f "$BK/vdb.full.data" --socket /tmp/s.sock \
        --run 'test "$device" = /dev/nbd2 && cmp "$device" "$REF"' 2>/tmp/run.log ||
        lab_fail "-d auto did not skip nbd1 (being set up) for nbd2: $(cat /tmp/run.log)"
    check_held "after -d auto skipped nbd1"
}

release_held() {
    umount -l /mnt/held 2>/dev/null || true
    qemu-nbd -d /dev/nbd0 >/dev/null 2>&1 || true
}
trap release_held EXIT
export REF=$G/ref-vdb.raw
[ -d /sys/module/nbd ] || lab_fail "the nbd module is not loaded"
lab_steps part_partitions part_repo part_auto part_busy part_setup
GUEST
} >"$W/guest.sh"

tb_step "in the lab guest: partitions, a repository, -d auto, a device in use, a device being set up"
LAB_TIMEOUT=600 lab_run "$W/guest.sh" || tb_fail "the checks in the lab guest failed (console above)"
tb_log "lab guest: ${LAB_SECONDS}s"

if [ ! -e /sys/module/nbd ]; then
    tb_step "on this host, without the nbd module: -d auto says to load it or to use -d none"
    rc=0
    out=$("$VIRTMAP" -d auto -r -i "$W/backup" 2>&1) || rc=$?
    tb_assert_eq 1 "$rc" "exit status of -d auto without the nbd module"
    grep -q 'modprobe nbd' <<<"$out" && grep -q -- '-d none' <<<"$out" ||
        tb_fail "-d auto without the module does not suggest modprobe nbd or -d none: $out"
fi
tb_pass "virtmap -d: partitions mount, a device in use is refused and left working, -d auto"
