#!/bin/bash
# Checkpoint handling and less common options of virtbackup: checkpoints libvirt forgot are
# redefined from checkpoints/ (or -C), a foreign checkpoint is refused, --no-sparse-detection
# saves zeroed dirty ranges as data, --pause leaves a running domain running, a bitmap lost
# at run time refuses a diff and makes an inc a new base, and no job directory or socket is
# left behind.
set -euo pipefail
source "$(dirname "$0")/../lib/testbed.sh"
source "$(dirname "$0")/../lib/chain.sh"
tb_init
# This test's runs keep their job directories in a scratch directory of their own: the shared
# /var/tmp holds those of other tests' runs, e.g. of a job started with -s and not yet ended.
SCRATCH=$TB_WORKDIR/scratch
install -d -o root -g kvm -m 0770 "$SCRATCH"
VIRTBACKUP_REAL=$VIRTBACKUP
VIRTBACKUP=$TB_WORKDIR/virtbackup
printf '#!/bin/sh\nexec "%s" --scratchdir "%s" "$@"\n' "$VIRTBACKUP_REAL" "$SCRATCH" >"$VIRTBACKUP"
chmod 0755 "$VIRTBACKUP"

tb_create_domain cpt 64M
DOM=$TB_DOMAIN
OUT=$TB_WORKDIR/out
CPDIR=$TB_WORKDIR/cpdir
tb_qemu_io "$DOM" vda "write -P 0x41 0 4M"

tb_step "a chain with its checkpoint XML in -C DIR"
vb_backup -d "$DOM" -l full -o "$OUT" -C "$CPDIR"
[ -f "$CPDIR/virtnbdbackup.0.xml" ] || tb_fail "checkpoint XML not in -C dir"
tb_qemu_io "$DOM" vda "write -P 0x42 1M 1M"
vb_backup -d "$DOM" -l inc -o "$OUT" -C "$CPDIR"

tb_step "libvirt forgets the checkpoints (metadata only): they are redefined from -C"
for cp in virtnbdbackup.1 virtnbdbackup.0; do
    tb_virsh checkpoint-delete "$DOM" "$cp" --metadata >/dev/null
done
[ -z "$(tb_virsh checkpoint-list "$DOM" --name)" ] || tb_fail "checkpoints still known"
tb_qemu_io "$DOM" vda "write -P 0x43 2M 1M"
out=$("$VIRTBACKUP" -n -d "$DOM" -l inc -o "$OUT" -C "$CPDIR" 2>&1) || tb_fail "inc failed: $out"
grep -q "redefined checkpoint virtnbdbackup.1" <<<"$out" || tb_fail "no redefinition: $out"
assert_meta "$OUT/vda.inc.virtnbdbackup.2.data" true virtnbdbackup.2 virtnbdbackup.1 false
tb_snapshot_image "$DOM" vda "$TB_WORKDIR/now.raw"
apply_compare "$TB_WORKDIR/now.raw" "chain after redefinition" "$OUT"/vda.*.data

tb_step "--no-sparse-detection: a zeroed dirty range is saved as data, not as a ZERO frame"
tb_qemu_io "$DOM" vda "write -z 0 1M"
vb_backup -d "$DOM" -l inc -o "$OUT" -C "$CPDIR" --no-sparse-detection
f="$OUT/vda.inc.virtnbdbackup.3.data"
assert_meta "$f" true virtnbdbackup.3 virtnbdbackup.2 false
tb_assert_eq "$(zero_frames "$f")" 0 "ZERO frames with --no-sparse-detection"
[ "$("$STREAM_CHECK" "$f" | jq .data_bytes)" -ge 1048576 ] || tb_fail "the zeroed range is not data"
tb_snapshot_image "$DOM" vda "$TB_WORKDIR/now.raw"
apply_compare "$TB_WORKDIR/now.raw" "chain with --no-sparse-detection" "$OUT"/vda.*.data

tb_step "a foreign checkpoint is refused for checkpointing levels, named in the error"
tb_virsh checkpoint-create-as "$DOM" --name someone-elses >/dev/null
vb_backup_fails "someone-elses" -d "$DOM" -l inc -o "$OUT" -C "$CPDIR"
vb_backup -d "$DOM" -l copy -o "$TB_WORKDIR/copy" # copy does not care
tb_virsh checkpoint-delete "$DOM" someone-elses >/dev/null

tb_step "--pause on a running domain: it runs again afterwards"
tb_virsh resume "$DOM" >/dev/null
vb_backup -d "$DOM" -l inc -o "$OUT" -C "$CPDIR" --pause
tb_assert_eq "$(tb_virsh domstate "$DOM" | head -1)" running "state after --pause"
tb_virsh suspend "$DOM" >/dev/null

# lose_bitmap: qemu drops the bitmap of the chain's last checkpoint; libvirt still lists it.
lose_bitmap() {
    local last node
    last=$(jq -r '.[-1]' "$OUT/$DOM.cpt")
    node=$(tb_virsh qemu-monitor-command "$DOM" '{"execute":"query-block"}' |
        jq -r --arg b "$last" '.return[].inserted | select(.["dirty-bitmaps"] // [] |
            map(.name) | index($b) != null) | .["node-name"]')
    [ -n "$node" ] || tb_fail "no block node holds bitmap $last"
    tb_virsh qemu-monitor-command "$DOM" \
        "{\"execute\":\"block-dirty-bitmap-remove\",\"arguments\":{\"node\":\"$node\",\"name\":\"$last\"}}" >/dev/null
    tb_virsh checkpoint-list "$DOM" --name | grep -qx "$last" || tb_fail "libvirt forgot $last too"
}

# Without --threshold libvirt's check of the parent's bitmaps at the job's start decides (the
# run begins again as a full); with it the parent is validated before its size is read.
tb_step "a bitmap lost while the domain runs: diff refused, inc falls back to a new base"
lose_bitmap
cpt_before=$(cat "$OUT/$DOM.cpt")
vb_backup_fails "cannot take a differential backup: cannot use checkpoint virtnbdbackup.4: checkpoint inconsistent" \
    -d "$DOM" -l diff -o "$OUT" -C "$CPDIR"
tb_assert_eq "$(cat "$OUT/$DOM.cpt")" "$cpt_before" ".cpt after the refused diff"
! ls "$OUT"/vda.diff.* 2>/dev/null || tb_fail "the refused diff left a file"
tb_qemu_io "$DOM" vda "write -P 0x44 3M 1M"
out=$("$VIRTBACKUP" -n -d "$DOM" -l inc -o "$OUT" -C "$CPDIR" 2>&1) || tb_fail "inc failed: $out"
grep -q "cannot use checkpoint virtnbdbackup.4: checkpoint inconsistent.*new base" <<<"$out" ||
    tb_fail "the fallback was not reported: $out"
assert_meta "$OUT/vda.inc.virtnbdbackup.5.data" false virtnbdbackup.5 "" false
tb_snapshot_image "$DOM" vda "$TB_WORKDIR/now.raw"
apply_compare "$TB_WORKDIR/now.raw" "new base after a bitmap lost at run time" "$OUT"/vda.*.data

tb_step "the same with --threshold: the parent is validated before the job"
lose_bitmap
tb_qemu_io "$DOM" vda "write -P 0x45 5M 1M"
out=$("$VIRTBACKUP" -n -d "$DOM" -l inc -T 1 -o "$OUT" -C "$CPDIR" 2>&1) ||
    tb_fail "inc -T 1 failed: $out"
grep -q "cannot use checkpoint virtnbdbackup.5: checkpoint inconsistent.*new base" <<<"$out" ||
    tb_fail "the fallback was not reported: $out"
assert_meta "$OUT/vda.inc.virtnbdbackup.6.data" false virtnbdbackup.6 "" false
tb_qemu_io "$DOM" vda "write -P 0x46 7M 1M"
vb_backup -d "$DOM" -l inc -o "$OUT" -C "$CPDIR"
assert_meta "$OUT/vda.inc.virtnbdbackup.7.data" true virtnbdbackup.7 virtnbdbackup.6 false
tb_snapshot_image "$DOM" vda "$TB_WORKDIR/now.raw"
apply_compare "$TB_WORKDIR/now.raw" "inc after the second new base" "$OUT"/vda.*.data

tb_step "after a new base the saved checkpoint XML is the new chain's only"
tb_assert_eq "virtnbdbackup.6.xml virtnbdbackup.7.xml" "$(ls "$CPDIR" | xargs)" \
    "checkpoint XML kept after the new base"
if command -v virtnbdbackup >/dev/null; then
    # the reference redefines every saved XML libvirt does not know; one of a dropped chain
    # (its bitmaps are gone) made its later full fail to delete it
    REFW=$TB_WORKDIR/ref
    install -d -o root -g kvm -m 0770 "$REFW"
    tb_qemu_io "$DOM" vda "write -P 0x47 9M 1M"
    out=$(virtnbdbackup -d "$DOM" -l inc -o "$OUT" -C "$CPDIR" -S "$REFW" -f "$REFW/ref.sock" \
        -n 2>&1) ||
        { printf '%s\n' "$out" | tail -20 >&2; tb_fail "the reference's inc after a new base"; }
    tb_snapshot_image "$DOM" vda "$TB_WORKDIR/now.raw"
    apply_compare "$TB_WORKDIR/now.raw" "the reference's inc after a new base" "$OUT"/vda.*.data
    # the reference leaves its job to end after it exits; its next run refuses an active one
    tb_wait_for "" eval 'tb_virsh domjobinfo "$DOM" 2>/dev/null | grep -q "Job type: *None"' ||
        tb_fail "the reference's inc left a job on $DOM"
    out=$(virtnbdbackup -d "$DOM" -l full -o "$TB_WORKDIR/refdir" -S "$REFW" -f "$REFW/ref.sock" \
        -n 2>&1) ||
        { printf '%s\n' "$out" | tail -20 >&2; tb_fail "the reference's full after a new base"; }
    tb_wait_for "" eval 'tb_virsh domjobinfo "$DOM" 2>/dev/null | grep -q "Job type: *None"' ||
        tb_fail "the reference's full left a job on $DOM"
else
    tb_log "no reference tool (virtnbdbackup): its steps after the new base are skipped"
fi

tb_step "nothing left behind: no job directory, socket or scratch file"
leftover=$(ls -A "$SCRATCH")
[ -z "$leftover" ] || tb_fail "left behind in $SCRATCH: $leftover"
