#!/bin/bash
# virtbackup and the reference (virtnbdbackup/virtnbdrestore 1.9.15) as peers:
#  - a chain written by virtbackup with --compat-zeroes is restored correctly by
#    virtnbdrestore; without it, virtnbdrestore (which ignores ZERO frames) restores stale
#    data where the disk was zeroed: the difference --compat-zeroes exists for;
#  - mixed chains: the reference starts a chain, virtbackup continues it, the reference
#    continues again; and the other way round. Each file's metadata is asserted, and both
#    stream-apply and virtnbdrestore reproduce the disk at every point.
set -euo pipefail
source "$(dirname "$0")/../lib/testbed.sh"
source "$(dirname "$0")/../lib/chain.sh"
tb_init

tb_create_domain interop 128M
DOM=$TB_DOMAIN
SNAP=$TB_WORKDIR/snap
mkdir -p "$SNAP"
io() { tb_qemu_io "$DOM" vda "$1"; }
snap() { tb_snapshot_image "$DOM" vda "$SNAP/$1.raw"; }
ref_backup() {
    virtnbdbackup -d "$DOM" -o "$1" -n -S "$TB_WORKDIR" "${@:2}" >"$TB_WORKDIR/ref.log" 2>&1 ||
        tb_fail "virtnbdbackup ${*:2} failed: $(tail -5 "$TB_WORKDIR/ref.log")"
}

io "write -P 0x31 0 1M"
io "write -P 0x32 32M 8M"

tb_step "virtbackup full + inc with a zeroed region, plain: virtnbdrestore misses the zeroes"
A=$TB_WORKDIR/A
vb_backup -d "$DOM" -l full -o "$A"
io "write -z 33M 2M"
io "write -P 0x33 4M 1M"
vb_backup -d "$DOM" -l inc -o "$A"
snap a-inc1
[ "$(zero_frames "$A/vda.inc.virtnbdbackup.1.data")" -ge 1 ] || tb_fail "no ZERO frame in the inc"
apply_compare "$SNAP/a-inc1.raw" "our chain, stream-apply" "$A"/vda.*.data
img=$(ref_restore "$A" "$TB_WORKDIR/rA")
if qemu-img compare -q -f qcow2 -F raw "$img" "$SNAP/a-inc1.raw"; then
    tb_fail "virtnbdrestore restored ZERO frames: this test could not tell --compat-zeroes apart"
fi
tb_log "as documented: virtnbdrestore ignores ZERO frames and keeps stale data"

tb_step "the same with --compat-zeroes: virtnbdrestore restores it exactly"
B=$TB_WORKDIR/B
vb_backup -d "$DOM" -l full -o "$B" --compat-zeroes
snap b-full
io "write -z 4M 1M"
io "write -P 0x34 36M 1M"
vb_backup -d "$DOM" -l inc -o "$B" --compat-zeroes
snap b-inc1
assert_meta "$B/vda.inc.virtnbdbackup.1.data" true virtnbdbackup.1 virtnbdbackup.0 false
tb_assert_eq "$(zero_frames "$B/vda.inc.virtnbdbackup.1.data")" 0 "ZERO frames with --compat-zeroes"
img=$(ref_restore "$B" "$TB_WORKDIR/rB")
compare_qcow_raw "$img" "$SNAP/b-inc1.raw" "virtnbdrestore of a --compat-zeroes chain"
img=$(ref_restore "$B" "$TB_WORKDIR/rB0" --until virtnbdbackup.0)
compare_qcow_raw "$img" "$SNAP/b-full.raw" "virtnbdrestore --until the full"

tb_step "mixed chain: reference full, virtbackup inc, reference inc"
C=$TB_WORKDIR/C
ref_backup "$C" -l full
snap c-full
io "write -P 0x35 8M 2M"
vb_backup -d "$DOM" -l inc -o "$C" --compat-zeroes
snap c-inc1
io "write -P 0x36 12M 1M"
ref_backup "$C" -l inc
snap c-inc2
assert_meta "$C/vda.inc.virtnbdbackup.1.data" true virtnbdbackup.1 virtnbdbackup.0 false
tb_assert_eq "$(cat "$C/$DOM.cpt")" '["virtnbdbackup.0", "virtnbdbackup.1", "virtnbdbackup.2"]' ".cpt of the mixed chain"
"$STREAM_CHECK" "$C/vda.inc.virtnbdbackup.2.data" | jq -e '.meta.parentCheckpoint == "virtnbdbackup.1"' >/dev/null ||
    tb_fail "the reference's inc does not continue from our checkpoint"
apply_compare "$SNAP/c-inc2.raw" "mixed chain (ref, ours, ref), stream-apply" "$C"/vda.*.data
apply_compare "$SNAP/c-inc1.raw" "mixed chain until our inc" "$C"/vda.*.data -- --until virtnbdbackup.1
vr_restore_compare "$C" "$SNAP/c-inc2.raw" "mixed chain (ref, ours, ref)"
vr_restore_compare "$C" "$SNAP/c-inc1.raw" "mixed chain until our inc" --until virtnbdbackup.1
img=$(ref_restore "$C" "$TB_WORKDIR/rC")
compare_qcow_raw "$img" "$SNAP/c-inc2.raw" "virtnbdrestore of the mixed chain"

tb_step "mixed chain the other way: virtbackup full, reference inc, virtbackup inc"
D=$TB_WORKDIR/D
vb_backup -d "$DOM" -l full -o "$D" -z
io "write -P 0x37 20M 1M"
ref_backup "$D" -l inc
io "write -P 0x38 24M 1M"
vb_backup -d "$DOM" -l inc -o "$D" -z
snap d-inc2
assert_meta "$D/vda.full.data" false virtnbdbackup.0 "" 2
assert_meta "$D/vda.inc.virtnbdbackup.2.data" true virtnbdbackup.2 virtnbdbackup.1 2
apply_compare "$SNAP/d-inc2.raw" "mixed chain (ours -z, ref, ours -z), stream-apply" "$D"/vda.*.data
vr_restore_compare "$D" "$SNAP/d-inc2.raw" "mixed chain (ours -z, ref, ours -z)"
vr_restore_compare "$A" "$SNAP/a-inc1.raw" "our chain with ZERO frames (virtrestore honours them)"
