#!/bin/bash
# Shut-off domains (virtbackup(1), SHUT-OFF DOMAINS) and the lost-bitmap fallback (a new base,
# virtbackup-stream(5), CHAINS):
#  - copy of a shut-off domain reads the image offline;
#  - full and inc start the domain paused for the job and leave it shut off again;
#  - --no-start-domain: inc reads the last checkpoint's persistent bitmap offline, recorded
#    as a diff; full becomes copy;
#  - a bitmap lost while shut off: inc falls back to a full recorded as a new base, and the
#    next inc continues from it.
# Every file's metadata is asserted; every chain is applied and compared with the disk.
set -euo pipefail
source "$(dirname "$0")/../lib/testbed.sh"
source "$(dirname "$0")/../lib/chain.sh"
tb_init

tb_create_domain off 96M
DOM=$TB_DOMAIN
IMG=${TB_IMAGES[0]}
SNAP=$TB_WORKDIR/snap
OUT=$TB_WORKDIR/out
mkdir -p "$SNAP"

shut_off() { tb_virsh destroy "$DOM" >/dev/null; }
state() { tb_virsh domstate "$DOM" | head -1; }
# offline writes and snapshots go straight to the image
offline_write() { qemu-io -f qcow2 "$IMG" -c "$1" >/dev/null || tb_fail "qemu-io $1"; }
offline_snap() { qemu-img convert -f qcow2 -O raw "$IMG" "$SNAP/$1.raw"; }

tb_qemu_io "$DOM" vda "write -P 0x21 0 2M"
tb_qemu_io "$DOM" vda "write -P 0x22 40M 3M"
tb_flush "$DOM"
shut_off

tb_step "copy of a shut-off domain reads the image offline"
vb_backup -d "$DOM" -l copy -o "$TB_WORKDIR/copy"
assert_meta "$TB_WORKDIR/copy/vda.copy.data" false virtnbdbackup.0 "" false
offline_snap copy
apply_compare "$SNAP/copy.raw" "offline copy" "$TB_WORKDIR/copy/vda.copy.data"
tb_assert_eq "$(state)" "shut off" "domain state after an offline copy"

if strings "$VIRTBACKUP" | grep -x VIRTBACKUP_DEBUG_STALL >/dev/null; then
    tb_step "the offline qemu-nbd keeps request buffers in its heap; the user's tunables still win"
    # Without these glibc malloc settings every request gets fresh zeroed pages (a third of
    # a restore's time, bench/README.md). Debug builds stall once the .partial exists.
    rm -rf "$TB_WORKDIR/stall"
    # ended by the signal below; 600 s only bound a run that never gets it
    GLIBC_TUNABLES=glibc.malloc.arena_max=4 VIRTBACKUP_DEBUG_STALL=600 \
        "$VIRTBACKUP" -n -d "$DOM" -l copy -o "$TB_WORKDIR/stall" >"$TB_WORKDIR/stall.log" 2>&1 &
    PID=$!
    tb_wait_for "$PID" compgen -G "$TB_WORKDIR/stall/*.partial" >/dev/null || true
    qpid=$(pgrep -P "$PID" -x qemu-nbd || true)
    [ -n "$qpid" ] || tb_fail "no qemu-nbd under the stalled offline copy: $(cat "$TB_WORKDIR/stall.log")"
    # glibc may split the variable at ':' in place once parsed: look at the pieces in order
    tunables=$(tr '\0:' '\n\n' <"/proc/$qpid/environ" | sed -n '/^GLIBC_TUNABLES=/,/^[A-Z_]*=/p')
    kill -TERM "$PID"
    wait "$PID" 2>/dev/null || true
    order=$({ grep -oE 'mmap_threshold=33554432|trim_threshold=268435456|arena_max=4' || true; } \
        <<<"$tunables" | tr '\n' ' ')
    tb_assert_eq "$order" "mmap_threshold=33554432 trim_threshold=268435456 arena_max=4 " \
        "qemu-nbd's GLIBC_TUNABLES (ours first, the user's last)"
    tb_assert_eq "$(state)" "shut off" "domain state after the interrupted offline copy"
fi

tb_step "full of a shut-off domain: started paused for the job, shut off afterwards"
vb_backup -d "$DOM" -l full -o "$OUT"
tb_assert_eq "$(state)" "shut off" "domain state after the full"
assert_meta "$OUT/vda.full.data" false virtnbdbackup.0 "" false
offline_snap full
apply_compare "$SNAP/full.raw" "full of a shut-off domain" "$OUT/vda.full.data"

tb_step "inc of a shut-off domain (changes made offline) continues the chain"
offline_write "write -P 0x23 8M 1M"
offline_write "write -z 40M 1M"
vb_backup -d "$DOM" -l inc -o "$OUT"
tb_assert_eq "$(state)" "shut off" "domain state after the inc"
assert_meta "$OUT/vda.inc.virtnbdbackup.1.data" true virtnbdbackup.1 virtnbdbackup.0 false
offline_snap inc1
apply_compare "$SNAP/inc1.raw" "inc of a shut-off domain" "$OUT"/vda.*.data

tb_step "--no-start-domain: inc reads the persistent bitmap offline, recorded as a diff"
offline_write "write -P 0x24 20M 512k"
vb_backup -d "$DOM" -l inc --no-start-domain -o "$OUT"
tb_assert_eq "$(state)" "shut off" "domain state after the offline diff"
diff_file=$(ls "$OUT"/vda.diff.*.data)
assert_meta "$diff_file" true virtnbdbackup.2 virtnbdbackup.1 false
offline_snap diff
apply_compare "$SNAP/diff.raw" "offline diff" "$OUT"/vda.*.data
tb_assert_eq "$(cat "$OUT/$DOM.cpt")" '["virtnbdbackup.0", "virtnbdbackup.1"]' ".cpt after the offline diff"

tb_step "--no-start-domain full becomes copy (with a warning)"
out=$("$VIRTBACKUP" -n -d "$DOM" -l full --no-start-domain -o "$TB_WORKDIR/copy2" 2>&1) ||
    tb_fail "virtbackup --no-start-domain -l full failed: $out"
grep -q "taking a copy backup" <<<"$out" || tb_fail "no warning about full becoming copy: $out"
assert_meta "$TB_WORKDIR/copy2/vda.copy.data" false virtnbdbackup.0 "" false

tb_step "a bitmap lost while the domain was off: inc falls back to a full as a new base"
qemu-img bitmap --remove "$IMG" virtnbdbackup.1 || tb_fail "cannot remove the bitmap"
offline_write "write -P 0x25 30M 1M"
out=$("$VIRTBACKUP" -n -d "$DOM" -l inc -o "$OUT" 2>&1) || tb_fail "fallback inc failed: $out"
grep -q "new base" <<<"$out" || tb_fail "the fallback was not reported: $out"
assert_meta "$OUT/vda.inc.virtnbdbackup.2.data" false virtnbdbackup.2 "" false
offline_snap base2
apply_compare "$SNAP/base2.raw" "new base after a lost bitmap" "$OUT"/vda.*.data

tb_step "the next inc continues from the new base"
offline_write "write -P 0x26 50M 1M"
vb_backup -d "$DOM" -l auto -o "$OUT"
assert_meta "$OUT/vda.inc.virtnbdbackup.3.data" true virtnbdbackup.3 virtnbdbackup.2 false
offline_snap inc3
apply_compare "$SNAP/inc3.raw" "inc after the new base" "$OUT"/vda.*.data
apply_compare "$SNAP/inc1.raw" "until inc 1 (before the new base)" "$OUT"/vda.*.data -- --until virtnbdbackup.1
vr_restore_compare "$OUT" "$SNAP/inc3.raw" "chain with a new base"
vr_restore_compare "$OUT" "$SNAP/base2.raw" "until the new base" --until virtnbdbackup.2
vr_restore_compare "$OUT" "$SNAP/inc1.raw" "until inc 1, before the new base" --until virtnbdbackup.1

tb_step "a .cpt that disagrees with the files' metadata stops the restore, naming both"
BAD=$TB_WORKDIR/badcpt
cp -a "$OUT" "$BAD"
jq -c 'del(.[2])' "$OUT/$DOM.cpt" >"$BAD/$DOM.cpt"
rc=0
err=$("$VIRTRESTORE" -n -i "$BAD" -o "$TB_WORKDIR/r-badcpt" 2>&1) || rc=$?
tb_assert_eq "$rc" 1 "virtrestore exit status with a wrong .cpt"
grep -q "$DOM.cpt" <<<"$err" && grep -q "virtnbdbackup" <<<"$err" ||
    tb_fail "the error does not name the .cpt and the checkpoint: $err"
! ls "$TB_WORKDIR"/r-badcpt/*.qcow2 2>/dev/null || tb_fail "an image was left by the failed restore"
tb_log "refused: $(grep -m1 cpt <<<"$err")"
