#!/bin/bash
# Checkpoint handling and less common options of virtbackup: checkpoints libvirt forgot are
# redefined from checkpoints/ (or -C), a foreign checkpoint is refused, --no-sparse-detection
# saves zeroed dirty ranges as data, --pause leaves a running domain running, and no job
# directory or socket is left behind.
set -euo pipefail
source "$(dirname "$0")/../lib/testbed.sh"
source "$(dirname "$0")/../lib/chain.sh"
tb_init
# job directories of other, still running processes are not ours to judge
jobdirs() {
    local d pid
    for d in /var/tmp/virtbackup.*; do
        [ -d "$d" ] || continue
        pid=${d#/var/tmp/virtbackup.}
        pid=${pid%%.*}
        kill -0 "$pid" 2>/dev/null || echo "$d"
    done | sort
}
JOBDIRS_BEFORE=$(jobdirs)

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

tb_step "nothing left behind: no job directory, socket or scratch file"
leftover=$(comm -13 <(echo "$JOBDIRS_BEFORE") <(jobdirs))
[ -z "$leftover" ] || tb_fail "left behind: $leftover"
