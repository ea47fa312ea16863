#!/bin/bash
# Trim and zeroes from a real guest (virtbackup(1), TRIM AND ZEROES), in a lab guest (tests/lib/labguest.sh).
# The data disk (vda, 256 MiB, discard='unmap') holds ext4 in its first 192 MiB; the rest is
# written by the guest directly. Two cycles, one chain each; in each, the guest:
#   writes files to keep and files to delete, and random data at 200-232 MiB, and unmounts;
#   (the host snapshots the disk and makes a full backup)
#   deletes the files and runs fstrim, then beyond the filesystem zeroes 204-212 MiB with
#   write-zeroes (blkdiscard -z), 216-220 MiB with ordinary writes of zeroes (dd) and discards
#   224-228 MiB (blkdiscard);
#   (the host snapshots the disk and makes an incremental backup: plain in cycle 1,
#   --compat-zeroes in cycle 2)
# The trimmed ranges are the deleted files' blocks (debugfs on the first snapshot) in whole
# qcow2 clusters, plus the write-zeroes and the discard. The second snapshot reads zeroes there
# (the guest's trims reached the disk). Cycle 1's incremental records all of those ranges as
# ZERO frames (no DATA frame touches them), and every restore path gives the guest's view at
# both points: virtrestore (--until the full, and the chain) and virtmap (nbdcopy of the
# export). The reference's virtnbdrestore, which ignores ZERO frames, gives stale data in a
# trimmed range of that chain (the comparison sees trims). Cycle 2's --compat-zeroes
# incremental holds zero-filled DATA frames there and no ZERO frame, and virtnbdrestore (and
# virtrestore, and virtmap) restore the guest's view.
set -euo pipefail
source "$(dirname "$0")/../lib/testbed.sh"
source "$(dirname "$0")/../lib/chain.sh"
source "$(dirname "$0")/../lib/labguest.sh"
source "$(dirname "$0")/../lib/lab-datadisk.sh"
tb_init
lab_init
# nbdcopy needs the distribution's libraries ahead of anything else in PATH
export PATH="/usr/bin:$PATH"
VIRTMAP="$VB_BUILD_DIR/src/map/virtmap"
[ -x "$VIRTMAP" ] && [ -x "$VIRTRESTORE" ] || tb_fail "virtmap or virtrestore not built"
ZR="/usr/bin/python3 $TB_LIB_DIR/zero_ranges.py"
W=$TB_WORKDIR
MIB=$((1024 * 1024))
# the layout beyond the filesystem, in MiB: random data, write-zeroes, zero writes, discard
TAIL=200 Z1=204 Z2=216 Z3=224

tb_step "a lab guest with a 256 MiB data disk (discard='unmap'), ext4 in its first 192 MiB"
DATA=$W/data.qcow2
lab_ext4_qcow2 "$DATA" 256M 192M
TB_IMAGES=("$DATA") # ref_restore names the restored image after it
CLUSTER=$(qemu-img info --output=json "$DATA" | jq '."cluster-size"')
{
    printf 'TAIL=%s Z1=%s Z2=%s Z3=%s\n' "$TAIL" "$Z1" "$Z2" "$Z3"
    cat <<'GUEST'
DEV=/dev/vda M=/mnt/data MIB=$((1024 * 1024))
lab_step "vda takes discards and write-zeroes"
lab_log "vda: discard_max_bytes $(cat /sys/block/vda/queue/discard_max_bytes)," \
    "discard_granularity $(cat /sys/block/vda/queue/discard_granularity)," \
    "write_zeroes_max_bytes $(cat /sys/block/vda/queue/write_zeroes_max_bytes)"
[ "$(cat /sys/block/vda/queue/discard_max_bytes)" -gt 0 ] || lab_fail "vda takes no discards"
[ "$(cat /sys/block/vda/queue/write_zeroes_max_bytes)" -gt 0 ] || lab_fail "vda takes no write-zeroes"
mkdir -p "$M"
for n in 1 2; do
    lab_step "cycle $n: files to keep and to delete, random data beyond the filesystem"
    mount "$DEV" "$M"
    mkdir "$M/c$n"
    for i in 1 2 3; do
        head -c $((MIB + i * 4097)) /dev/urandom >"$M/c$n/keep-$i"
    done
    for i in 1 2 3 4 5 6; do
        head -c $((2 * MIB)) /dev/urandom >"$M/c$n/gone-$i"
    done
    umount "$M"
    dd if=/dev/urandom of="$DEV" bs=1M seek="$TAIL" count=32 oflag=direct conv=fsync status=none
    touch "$LAB_OUT/written-$n"
    lab_wait_for 600 "the host's full backup $n" test -e "$LAB_OUT/full-$n"

    lab_step "cycle $n: delete and fstrim; write-zeroes, zero writes, a discard beyond the filesystem"
    mount "$DEV" "$M"
    rm "$M/c$n"/gone-*
    # ext4 frees the blocks when the deletion commits; fstrim skips blocks not yet freed
    sync -f "$M"
    fstrim -v "$M"
    umount "$M"
    blkdiscard -f -z -o $((Z1 * MIB)) -l $((8 * MIB)) "$DEV"
    dd if=/dev/zero of="$DEV" bs=1M seek="$Z2" count=4 oflag=direct conv=fsync status=none
    blkdiscard -f -o $((Z3 * MIB)) -l $((4 * MIB)) "$DEV"
    touch "$LAB_OUT/trimmed-$n"
    lab_wait_for 600 "the host's incremental backup $n" test -e "$LAB_OUT/inc-$n"
done
GUEST
} >"$W/guest.sh"
LAB_TIMEOUT=600 # a bound for a hung guest (lab_await, lab_wait), far beyond a healthy run
lab_start "$W/guest.sh" "$(lab_disk_xml "$DATA" vda)"
DOM=$LAB_DOMAIN

# host_cycle N DIR INC-ARGS...: the host's side of cycle N: snapshot + full, snapshot + inc
host_cycle() {
    local n="$1" dir="$2"
    shift 2
    tb_step "cycle $n: the guest wrote its files: snapshot, full backup into $(basename "$dir")"
    lab_await "the guest's files of cycle $n" test -e "$LAB_OUT/written-$n"
    tb_snapshot_image "$DOM" vda "$W/s$n-full.raw"
    vb_backup -d "$DOM" -l full -o "$dir"
    lab_signal "full-$n"
    tb_step "cycle $n: the guest trimmed and zeroed: snapshot, incremental ($*)"
    lab_await "the guest's trims of cycle $n" test -e "$LAB_OUT/trimmed-$n"
    tb_snapshot_image "$DOM" vda "$W/s$n-inc.raw"
    vb_backup -d "$DOM" -l inc -o "$dir" "$@"
    lab_signal "inc-$n"
}
host_cycle 1 "$W/plain"
host_cycle 2 "$W/compat" --compat-zeroes
lab_wait || tb_fail "the guest's script failed (console above)"
tb_log "lab guest: ${LAB_SECONDS}s"

# trimmed_ranges N: the ranges cycle N made zero, into $W/zeroed-N.txt
trimmed_ranges() {
    local n="$1" f=$W/zeroed-$1.txt
    $ZR blocks "$W/s$n-full.raw" "$CLUSTER" /c"$n"/gone-{1,2,3,4,5,6} >"$f" ||
        tb_fail "the blocks of cycle $n's deleted files"
    printf '%s %s\n' $((Z1 * MIB)) $((8 * MIB)) $((Z3 * MIB)) $((4 * MIB)) >>"$f"
    tb_log "cycle $n: $(wc -l <"$f") ranges, $(awk '{ s += $2 } END { print s }' "$f") bytes trimmed or zeroed"
    out=$($ZR reads-zero "$W/s$n-inc.raw" "$f") ||
        tb_fail "the guest's trims and write-zeroes of cycle $n did not reach the disk: $out"
}

# map_compare DIR SNAPSHOT WHAT [ARGS...]: virtmap serves DIR, nbdcopy reads vda, equal to SNAPSHOT
map_compare() {
    local dir="$1" snap="$2" what="$3" sock="$W/map.sock" out="$W/map.raw"
    shift 3
    rm -f "$out"
    "$VIRTMAP" -d none -r -i "$dir" "$@" --socket "$sock" \
        --run "nbdcopy 'nbd+unix:///vda?socket=$sock' '$out'" 2>"$W/map.log" ||
        tb_fail "$what: virtmap or nbdcopy failed: $(cat "$W/map.log")"
    tb_compare_raw "$out" "$snap" "$what (virtmap, nbdcopy of the export)"
    rm -f "$out"
}

tb_step "cycle 1: the incremental records every trimmed and zeroed range as ZERO frames"
assert_meta "$W/plain/vda.full.data" false virtnbdbackup.0 "" false
assert_meta "$W/plain/vda.inc.virtnbdbackup.1.data" true virtnbdbackup.1 virtnbdbackup.0 false
trimmed_ranges 1
out=$($ZR recorded "$W/plain/vda.inc.virtnbdbackup.1.data" zero-frames "$W/zeroed-1.txt") ||
    tb_fail "the incremental does not record the trimmed ranges as ZERO frames: $out"
tb_log "cycle 1 incremental: $($ZR frames "$W/plain/vda.inc.virtnbdbackup.1.data" | awk '{ n[$1]++ } END { printf "%d data, %d zero frames", n["data"], n["zero"] }')"

tb_step "cycle 1: virtrestore and virtmap give the guest's view at the full and after the trims"
vr_restore_compare "$W/plain" "$W/s1-full.raw" "plain --until virtnbdbackup.0" --until virtnbdbackup.0
vr_restore_compare "$W/plain" "$W/s1-inc.raw" "plain chain"
map_compare "$W/plain" "$W/s1-full.raw" "plain --until virtnbdbackup.0" --until virtnbdbackup.0
map_compare "$W/plain" "$W/s1-inc.raw" "plain chain"

tb_step "cycle 1: virtnbdrestore ignores the ZERO frames and keeps stale data in a trimmed range"
img=$(ref_restore "$W/plain" "$W/ref-plain")
rc=0
out=$(qemu-img compare -f qcow2 -F raw "$img" "$W/s1-inc.raw" 2>&1) || rc=$?
tb_assert_eq 1 "$rc" "qemu-img compare of virtnbdrestore's image of the plain chain with the guest's view ($out)"
off=$(sed -n 's/^Content mismatch at offset \([0-9]*\)!$/\1/p' <<<"$out")
awk -v o="$off" '$1 <= o && o < $1 + $2 { found = 1 } END { exit !found }' "$W/zeroed-1.txt" ||
    tb_fail "virtnbdrestore's image first differs at ${off:-?}, outside the trimmed ranges: $out"
tb_log "virtnbdrestore of the plain chain: stale data at offset $off, in a trimmed range (as documented)"

tb_step "cycle 2: the --compat-zeroes incremental holds zero-filled data there, no ZERO frame"
assert_meta "$W/compat/vda.full.data" false virtnbdbackup.0 "" false
assert_meta "$W/compat/vda.inc.virtnbdbackup.1.data" true virtnbdbackup.1 virtnbdbackup.0 false
tb_assert_eq 0 "$(zero_frames "$W/compat/vda.inc.virtnbdbackup.1.data")" "ZERO frames in the --compat-zeroes incremental"
trimmed_ranges 2
out=$($ZR recorded "$W/compat/vda.inc.virtnbdbackup.1.data" zero-data "$W/zeroed-2.txt") ||
    tb_fail "the --compat-zeroes incremental does not hold the trimmed ranges as zero-filled data: $out"

tb_step "cycle 2: virtnbdrestore, virtrestore and virtmap give the guest's view"
img=$(ref_restore "$W/compat" "$W/ref-compat")
compare_qcow_raw "$img" "$W/s2-inc.raw" "compat chain (virtnbdrestore)"
vr_restore_compare "$W/compat" "$W/s2-inc.raw" "compat chain"
map_compare "$W/compat" "$W/s2-inc.raw" "compat chain"

tb_pass "trim and zeroes: ZERO frames (or zero data with --compat-zeroes) and the guest's view from every restore path (${LAB_SECONDS}s in the guest)"
