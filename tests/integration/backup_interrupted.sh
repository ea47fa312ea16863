#!/bin/bash
# A run killed after committing its data files and before its bookkeeping
# (virtbackup-stream(5), "The order of a run": between steps 3 and 6) leaves data files of a
# checkpoint that <domain>.cpt does not list. The next run moves them aside as
# <file>.interrupted (with the .chksum), removes the orphan checkpoint, takes the number
# again and continues the chain; the chain restores to the disk as it is. The state is made
# exactly: a committed inc whose .cpt entry, checkpoints/ XML and metadata are taken away,
# its libvirt checkpoint left in place (what the kill leaves). Until then, restores give the
# last point the list names, with a warning.
set -euo pipefail
source "$(dirname "$0")/../lib/testbed.sh"
source "$(dirname "$0")/../lib/chain.sh"
tb_init

tb_create_domain intr 64M
DOM=$TB_DOMAIN
OUT=$TB_WORKDIR/out
tb_qemu_io "$DOM" vda "write -P 0x61 0 8M"
vb_backup -d "$DOM" -l full -o "$OUT"
tb_snapshot_image "$DOM" vda "$TB_WORKDIR/full.raw"

# interrupt N: an inc that committed vda.inc.virtnbdbackup.N.data and stopped there
interrupt() {
    local n="$1"
    vb_backup -d "$DOM" -l inc -o "$OUT"
    [ -f "$OUT/vda.inc.virtnbdbackup.$n.data" ] || tb_fail "no inc $n was made"
    jq -c '.[:-1]' "$OUT/$DOM.cpt" >"$OUT/cpt.tmp"
    mv "$OUT/cpt.tmp" "$OUT/$DOM.cpt"
    rm -f "$OUT/checkpoints/virtnbdbackup.$n.xml" "$OUT/vmconfig.virtnbdbackup.$n.xml" \
        "$OUT/vda.virtnbdbackup.$n.qcow.json"
    tb_virsh checkpoint-list "$DOM" --name | grep -qx "virtnbdbackup.$n" ||
        tb_fail "the interrupted run's checkpoint virtnbdbackup.$n should still exist"
}

tb_step "an inc interrupted before its bookkeeping: restores give the last point the list names, with a warning"
tb_qemu_io "$DOM" vda "write -P 0x62 1M 64k"
interrupt 1
lost=$(sha256sum <"$OUT/vda.inc.virtnbdbackup.1.data")
rc=0
"$VIRTRESTORE" -n -i "$OUT" -o "$TB_WORKDIR/early" -d vda >"$TB_WORKDIR/early.log" 2>&1 || rc=$?
[ "$rc" -eq 0 ] || tb_fail "restore of the interrupted chain exited $rc: $(cat "$TB_WORKDIR/early.log")"
grep -q "holds checkpoint virtnbdbackup.1, which .* does not list: a backup interrupted before its bookkeeping" \
    "$TB_WORKDIR/early.log" || tb_fail "no warning: $(cat "$TB_WORKDIR/early.log")"
compare_qcow_raw "$(ls "$TB_WORKDIR"/early/*.qcow2)" "$TB_WORKDIR/full.raw" "restore of the interrupted chain"

tb_step "the next inc moves the interrupted run's file aside and continues"
tb_qemu_io "$DOM" vda "write -P 0x63 2M 64k"
out=$("$VIRTBACKUP" -n -d "$DOM" -l inc -o "$OUT" 2>&1) || tb_fail "the next inc failed: $out"
printf '%s\n' "$out" | sed 's/^/    | /' >&2
grep -q "vda.inc.virtnbdbackup.1.data holds checkpoint virtnbdbackup.1, which the chain's list does not" <<<"$out" ||
    tb_fail "the file set aside was not reported: $out"
grep -q "removing checkpoint virtnbdbackup.1 left by an interrupted run" <<<"$out" ||
    tb_fail "the orphan checkpoint was not reported: $out"
[ "$(sha256sum <"$OUT/vda.inc.virtnbdbackup.1.data.interrupted")" = "$lost" ] ||
    tb_fail "the interrupted run's data file was not kept as .interrupted"
[ -f "$OUT/vda.inc.virtnbdbackup.1.data.chksum.interrupted" ] || tb_fail "its .chksum was not moved"
tb_assert_eq "$(jq -c . "$OUT/$DOM.cpt")" '["virtnbdbackup.0","virtnbdbackup.1"]' "the chain's list"
assert_meta "$OUT/vda.inc.virtnbdbackup.1.data" true virtnbdbackup.1 virtnbdbackup.0 false
# the new inc 1 holds both writes: the orphan's bitmap went back into its parent's
tb_snapshot_image "$DOM" vda "$TB_WORKDIR/now.raw"
apply_compare "$TB_WORKDIR/now.raw" "chain after the interrupted run" "$OUT"/vda.full.data \
    "$OUT"/vda.inc.virtnbdbackup.1.data
vr_restore_compare "$OUT" "$TB_WORKDIR/now.raw" "restore after the interrupted run"

tb_step "interrupted again at the next number, then -l auto; and once more"
tb_qemu_io "$DOM" vda "write -P 0x64 3M 64k"
interrupt 2
tb_qemu_io "$DOM" vda "write -P 0x65 4M 64k"
vb_backup -d "$DOM" -l auto -o "$OUT"
[ -f "$OUT/vda.inc.virtnbdbackup.2.data.interrupted" ] || tb_fail "inc 2 was not moved aside"
tb_assert_eq "$(jq -c . "$OUT/$DOM.cpt")" '["virtnbdbackup.0","virtnbdbackup.1","virtnbdbackup.2"]' \
    "the chain's list after -l auto"
tb_qemu_io "$DOM" vda "write -P 0x66 5M 64k"
interrupt 3
vb_backup -d "$DOM" -l inc -o "$OUT"
tb_snapshot_image "$DOM" vda "$TB_WORKDIR/now.raw"
vr_restore_compare "$OUT" "$TB_WORKDIR/now.raw" "restore after two interrupted runs"

tb_step "files of checkpoints the list does hold are never touched"
ls "$OUT"/*.interrupted | sed 's/^/    /' >&2
tb_assert_eq "$(ls "$OUT"/*.data | wc -l)" 4 "data files of the chain (full + 3 incs)"
tb_pass "interrupted runs"
