#!/bin/bash
# Single-file restore through the kernel's NBD devices, in one lab guest boot
# (tests/lib/labguest.sh; the host has no nbd module). Two domains, each with an MBR disk
# (vda: ext4, xfs, vfat) and a GPT disk (vdb: vfat, ext4, xfs), go through the same four
# states S0..S3 (filesystems made on the host from directory trees, tests/lib/lab-disks.sh;
# each state changes, adds and removes files in every partition, written into the running
# domains through qemu-io). One domain is backed up by virtbackup, the other by the
# reference virtnbdbackup 1.9.15 (their checkpoints cannot mix on one domain), each as a
# plain chain (full at S0, inc at S1, inc at S2) and a -z chain (full at S2, inc at S3).
# In the guest:
#   points: every point of virtbackup's chains, the reference's plain chain at S1 (--until)
#     and S2, its -z chain at S3; on /dev/nbd0 or -d auto, -r or not: virtmap -d ... -i
#     BACKUP attaches vda and vdb, every partition mounts with `mount -o ro /dev/nbdNpK` as
#     its type, its files equal that state's; SIGTERM detaches both devices, and their
#     partitions go with them (tests/lib/lab-nbd-guest.sh: stop_serving).
#   run: --run with $device, as README shows it, copies a file out of ${device}p1.
#   overlay: on a writable copy of a backup, with --overlay DIR: every partition mounted
#     read-write through the devices, a file written and one changed, unmounted, synced;
#     SIGTERM; a later run with the same overlay shows the writes; the backup's files keep
#     their checksums.
set -euo pipefail
source "$(dirname "$0")/../lib/testbed.sh"
source "$(dirname "$0")/../lib/chain.sh"
source "$(dirname "$0")/../lib/labguest.sh"
source "$(dirname "$0")/../lib/lab-disks.sh"
tb_init
lab_init xfs vfat nls_cp437 nls_ascii nls_utf8
VIRTMAP="$VB_BUILD_DIR/src/map/virtmap"
[ -x "$VIRTMAP" ] || tb_fail "virtmap not built"
for c in mkfs.xfs mkfs.vfat mcopy sfdisk; do
    command -v "$c" >/dev/null || "$VB_SOURCE_DIR/scripts/install-deps.sh" >&2
done
W=$TB_WORKDIR
G=$W/guest # what the guest reads: copies readable by qemu's user
T=$G/trees # T/S<state>/<disk>/p<partition>: the files of each partition at each state
mkdir -p "$G" "$T"
declare -A LAYOUT=([vda]="ext4:24 xfs:320 vfat:24" [vdb]="vfat:24 ext4:24 xfs:320")
declare -A LABEL=([vda]=dos [vdb]=gpt)

# make_trees N: the files of every partition at state N, from those of state N-1: motd
# names the state, 64 KiB of data/blob.bin rewritten, data/old.txt gone after S0, a file
# added per state and the one of two states before removed, a long mixed-case name (vfat).
make_trees() {
    local n="$1" disk p dir
    for disk in vda vdb; do
        for p in 1 2 3; do
            dir=$T/S$n/$disk/p$p
            if [ "$n" = 0 ]; then
                mkdir -p "$dir/data/sub"
                head -c 1500000 /dev/urandom >"$dir/data/blob.bin"
                echo "removed after state 0" >"$dir/data/old.txt"
                echo "$disk $p" >"$dir/data/sub/Mixed-Case_Long.Name.txt"
            else
                mkdir -p "$T/S$n/$disk"
                cp -a "$T/S$((n - 1))/$disk/p$p" "$dir"
                rm -f "$dir/data/old.txt" "$dir/added-S$((n - 2)).bin"
                head -c 65536 /dev/urandom |
                    dd of="$dir/data/blob.bin" bs=64k seek="$n" conv=notrunc status=none
            fi
            echo "partition $p of $disk, state $n" >"$dir/motd"
            head -c $((200000 + n * 4096)) /dev/urandom >"$dir/added-S$n.bin"
        done
    done
}

tb_step "four states of an MBR disk (ext4, xfs, vfat) and a GPT disk (vfat, ext4, xfs)"
for disk in vda vdb; do
    # shellcheck disable=SC2086 # the layout is a word list
    disk_layout "$W/$disk.empty" "${LABEL[$disk]}" ${LAYOUT[$disk]}
done
for n in 0 1 2 3; do
    make_trees $n
    for disk in vda vdb; do
        disk_state "$W/$disk.empty" "$T/S$n/$disk" "$W/$disk.S$n.raw"
    done
done
DISK_SIZE=$(stat -c %s "$W/vda.empty")
tb_assert_eq "$DISK_SIZE" "$(stat -c %s "$W/vdb.empty")" "the two disks' sizes"
! cmp -s "$W/vda.S2.raw" "$W/vda.S3.raw" || tb_fail "states 2 and 3 of vda are identical"

tb_step "two domains with the disks at state 0: one for virtbackup, one for the reference"
declare -A DOMS
for who in ours ref; do
    tb_create_domain "$who" "$DISK_SIZE" "$DISK_SIZE"
    DOMS[$who]=$TB_DOMAIN
    tb_virsh destroy "$TB_DOMAIN" >/dev/null
    i=0
    for disk in vda vdb; do
        qemu-img convert -O qcow2 -o compat=1.1 "$W/$disk.S0.raw" "${TB_IMAGES[$i]}"
        chown --reference="$W" "${TB_IMAGES[$i]}"
        i=$((i + 1))
    done
    tb_virsh start --paused "$TB_DOMAIN" >/dev/null
done

# to_state N: both domains' disks go from state N-1 to N
to_state() {
    local who disk
    for who in ours ref; do
        for disk in vda vdb; do
            disk_write_changes "${DOMS[$who]}" "$disk" "$W/$disk.S$(($1 - 1)).raw" "$W/$disk.S$1.raw"
        done
    done
}

# ref_backup LEVEL DIR [ARGS...]: virtnbdbackup 1.9.15 (-S is --scratchdir there)
ref_backup() {
    local level="$1" dir="$2" rc=0 out
    shift 2
    out=$(virtnbdbackup -d "${DOMS[ref]}" -l "$level" -o "$dir" -S "$W" -f "$W/ref.sock" -n "$@" 2>&1) ||
        rc=$?
    [ "$rc" -eq 0 ] || tb_fail "virtnbdbackup -l $level -o $dir $* exited $rc: $(tail -n 20 <<<"$out")"
    tb_log "virtnbdbackup -l $level $* -> $(basename "$dir")"
}

# ours_meta DIR COMPRESSED CHECKPOINT...: each disk's files of the chain, metadata asserted
ours_meta() {
    local dir="$1" comp="$2" disk i=0 cp parent=""
    shift 2
    for cp in "$@"; do
        for disk in vda vdb; do
            if [ $i = 0 ]; then
                assert_meta "$dir/$disk.full.data" false "$cp" "" "$comp"
            else
                assert_meta "$dir/$disk.inc.$cp.data" true "$cp" "$parent" "$comp"
            fi
        done
        parent=$cp
        i=$((i + 1))
    done
}

tb_step "plain chains: full at S0, inc at S1, inc at S2 (virtbackup and the reference)"
vb_backup -d "${DOMS[ours]}" -l full -o "$G/A"
ref_backup full "$G/RA"
to_state 1
vb_backup -d "${DOMS[ours]}" -l inc -o "$G/A"
ref_backup inc "$G/RA"
to_state 2
vb_backup -d "${DOMS[ours]}" -l inc -o "$G/A"
ref_backup inc "$G/RA"
ours_meta "$G/A" false virtnbdbackup.0 virtnbdbackup.1 virtnbdbackup.2

tb_step "-z chains: full at S2, inc at S3 (virtbackup and the reference)"
vb_backup -d "${DOMS[ours]}" -l full -o "$G/Z" -z
ref_backup full "$G/RZ" -z
to_state 3
vb_backup -d "${DOMS[ours]}" -l inc -o "$G/Z" -z
ref_backup inc "$G/RZ" -z
ours_meta "$G/Z" 2 virtnbdbackup.0 virtnbdbackup.1
for f in RA/vda.inc.virtnbdbackup.2.data RA/vdb.inc.virtnbdbackup.2.data \
    RZ/vda.inc.virtnbdbackup.1.data RZ/vdb.inc.virtnbdbackup.1.data; do
    [ -f "$G/$f" ] || tb_fail "the reference wrote no $f (have: $(cd "$G/${f%/*}" && echo *))"
done
"$STREAM_CHECK" "$G/RZ/vda.full.data" | jq -e '.compressed == true' >/dev/null ||
    tb_fail "the reference's -z full is not compressed"
lab_readable "$G"

{
    printf 'G=%q T=%q\n' "$G" "$T"
    printf 'declare -A LAYOUT=([vda]=%q [vdb]=%q)\n' "${LAYOUT[vda]}" "${LAYOUT[vdb]}"
    # shellcheck disable=SC2016 # expanded in the guest
    echo 'VIRTMAP=$VB_BUILD_DIR/src/map/virtmap # the lab copy of the build'
    cat "$TB_LIB_DIR/lab-nbd-guest.sh"
    cat <<'GUEST'
mkdir -p /mnt/restore

# check_files DEV DISK STATE [EXPECT]: every partition of DEV mounts read-only as its type
# and holds the files of DISK at STATE (or those under EXPECT/p<partition>)
check_files() {
    local dev="$1" disk="$2" state="$3" expect="${4:-$T/S$3/$2}" p=0 spec type part
    for spec in ${LAYOUT[$disk]}; do
        p=$((p + 1))
        type=${spec%%:*}
        part=${dev}p$p
        lab_wait_for 10 "$part ($disk's partition $p)" test -b "$part"
        mount -o ro "$part" /mnt/restore ||
            lab_fail "mount -o ro $part ($disk's partition $p, $type) failed: $(dmesg | tail -n 3)"
        lab_assert_eq "$type" "$(findmnt -n -o FSTYPE /mnt/restore)" "the filesystem on $part"
        diff -r -x lost+found "$expect/p$p" /mnt/restore ||
            lab_fail "the files on $part differ from $disk's partition $p at state $state"
        umount /mnt/restore
    done
    lab_log "$dev: $disk at state $state, partitions 1-$p mounted, files identical"
}

# check_point STATE VIRTMAP-ARGS...: both disks of the point on their devices hold the files
# of STATE; SIGTERM detaches them
check_point() {
    local state="$1" vda vdb
    shift
    lab_log "virtmap $*"
    serve "$@"
    vda=$(device_of vda)
    vdb=$(device_of vdb)
    check_files "$vda" vda "$state"
    check_files "$vdb" vdb "$state"
    stop_serving "$vda" "$vdb"
}

part_ours() {
    lab_step "points of virtbackup's chains: plain S0 S1 S2, -z S2 S3"
    trap end_serving EXIT
    check_point 0 -d /dev/nbd0 -r -i "$G/A" --until virtnbdbackup.0
    check_point 1 -d auto -r -i "$G/A" --until virtnbdbackup.1
    check_point 2 -d /dev/nbd0 -i "$G/A"
    check_point 2 -d auto -r -i "$G/Z" --until virtnbdbackup.0
    check_point 3 -d /dev/nbd0 -r -i "$G/Z"
}

part_reference() {
    lab_step "points of the reference's chains: plain S1 (--until) S2, -z S3"
    trap end_serving EXIT
    check_point 1 -d /dev/nbd0 -r -i "$G/RA" --until virtnbdbackup.1
    check_point 2 -d auto -i "$G/RA"
    check_point 3 -d auto -r -i "$G/RZ"
}

part_run() {
    lab_step "--run: a file copied out of \${device}p1, as README shows it"
    rm -f /tmp/motd
    "$VIRTMAP" -d auto -r -i "$G/RA" --until virtnbdbackup.1 \
        --run 'mount -o ro "${device}p1" /mnt/restore && cp /mnt/restore/motd /tmp/; umount /mnt/restore' \
        >/tmp/run.out 2>/tmp/run.log || lab_fail "virtmap --run failed: $(cat /tmp/run.log)"
    cmp /tmp/motd "$T/S1/vda/p1/motd" || lab_fail "--run copied a motd other than state 1's"
    lab_assert_eq none "$(owner_of /dev/nbd0)" "nbd0's owner after --run"
}

# change_files DIR WHAT: what the overlay part writes into each partition (and its expectation)
change_files() {
    echo "written through $2" >"$1/through-nbd.txt"
    echo "changed through $2" >>"$1/motd"
}

part_overlay() {
    lab_step "overlay: writes through /dev/nbd0 and /dev/nbd1 go to --overlay DIR"
    trap end_serving EXIT
    local disk dev p spec
    rm -rf /tmp/A /tmp/ovl /tmp/expect
    cp -r "$G/A" /tmp/A # writable: virtmap must leave it as it is all the same
    (cd /tmp/A && find . -type f | sort | xargs sha256sum) >/tmp/A.sums
    serve -d /dev/nbd0 -i /tmp/A --overlay /tmp/ovl
    for disk in vda vdb; do
        dev=$(device_of $disk)
        p=0
        for spec in ${LAYOUT[$disk]}; do
            p=$((p + 1))
            lab_wait_for 10 "${dev}p$p" test -b "${dev}p$p"
            mount "${dev}p$p" /mnt/restore || lab_fail "mount ${dev}p$p (read-write) failed"
            change_files /mnt/restore "$disk partition $p"
            umount /mnt/restore
            mkdir -p "/tmp/expect/$disk"
            cp -r "$T/S2/$disk/p$p" "/tmp/expect/$disk/p$p"
            change_files "/tmp/expect/$disk/p$p" "$disk partition $p"
        done
    done
    sync
    stop_serving /dev/nbd0 /dev/nbd1
    for disk in vda vdb; do
        [ -s /tmp/ovl/$disk.overlay ] || lab_fail "no writes in /tmp/ovl/$disk.overlay"
    done
    lab_step "overlay: a later run with the same overlay shows the writes"
    serve -d auto -i /tmp/A --overlay /tmp/ovl
    check_files "$(device_of vda)" vda "2 + writes" /tmp/expect/vda
    check_files "$(device_of vdb)" vdb "2 + writes" /tmp/expect/vdb
    stop_serving /dev/nbd0 /dev/nbd1
    lab_step "overlay: the backup's files are unchanged"
    (cd /tmp/A && find . -type f | sort | xargs sha256sum) | diff /tmp/A.sums - ||
        lab_fail "the backup's files changed"
    lab_log "the backup's $(wc -l </tmp/A.sums) files have the checksums they had"
}

[ -d /sys/module/nbd ] || lab_fail "the nbd module is not loaded"
lab_steps part_ours part_reference part_run part_overlay
GUEST
} >"$W/guest.sh"

tb_step "in the lab guest: every point mounted from /dev/nbdN, --run, writes to an overlay"
LAB_MEMORY=1024 LAB_TIMEOUT=800 lab_run "$W/guest.sh" ||
    tb_fail "the checks in the lab guest failed (console above)"
tb_log "lab guest: ${LAB_SECONDS}s"
tb_pass "single-file restore through /dev/nbdN: MBR and GPT, ext4, xfs and vfat, every point of plain and -z chains of virtbackup and the reference, overlay writes"
