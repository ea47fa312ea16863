#!/bin/bash
# virtbackup against a real running domain with two qcow2 disks: full, inc, auto (inc),
# diff, plain and compressed. Every file's metadata is asserted and every point of every
# chain, applied by stream-apply, must equal a snapshot of the disk taken at that backup.
# Incrementals must be exact: a zeroed region becomes a ZERO frame, not stale data.
set -euo pipefail
source "$(dirname "$0")/../lib/testbed.sh"
source "$(dirname "$0")/../lib/chain.sh"
tb_init

tb_create_domain chain 160M 48M
DOM=$TB_DOMAIN
SNAP=$TB_WORKDIR/snap
mkdir -p "$SNAP"
snap() { # snap NAME: both disks as they are now
    tb_snapshot_image "$DOM" vda "$SNAP/$1-vda.raw"
    tb_snapshot_image "$DOM" vdb "$SNAP/$1-vdb.raw"
}

tb_step "initial content: small extents, a 40 MiB extent (> 32 MiB), zero runs"
tb_qemu_io "$DOM" vda "write -P 0x11 0 64k"
tb_qemu_io "$DOM" vda "write -P 0x12 1M 3M"
tb_qemu_io "$DOM" vda "write -P 0x22 64M 40M"
tb_qemu_io "$DOM" vdb "write -P 0x33 1M 1M"

for mode in plain z; do
    OUT=$TB_WORKDIR/out-$mode
    # different patterns per pass, so that every backup of the second pass sees changes
    if [ $mode = z ]; then Z=(-z); COMP=2; H=c; else Z=(); COMP=false; H=4; fi

    tb_step "$mode: full backup of a running domain"
    tb_qemu_io "$DOM" vda "write -P 0x${H}2 64M 40M" # one extent larger than 32 MiB
    vb_backup -d "$DOM" -l full -o "$OUT" "${Z[@]}"
    snap "$mode-full"
    for d in vda vdb; do
        assert_meta "$OUT/$d.full.data" false virtnbdbackup.0 "" $COMP
    done
    tb_assert_eq "$(cat "$OUT/$DOM.cpt")" '["virtnbdbackup.0"]' ".cpt after full"
    [ -f "$OUT/checkpoints/virtnbdbackup.0.xml" ] || tb_fail "checkpoint XML not saved"
    [ -f "$OUT/vmconfig.virtnbdbackup.0.xml" ] || tb_fail "vmconfig not saved"
    [ -f "$OUT/vda.virtnbdbackup.0.qcow.json" ] || tb_fail "qcow.json not saved"
    jq -e '."virtual-size" == 167772160' "$OUT/vda.virtnbdbackup.0.qcow.json" >/dev/null ||
        tb_fail "qcow.json does not describe vda"
    ls "$OUT"/backup.full.*.log >/dev/null || tb_fail "no log file"
    ! ls "$OUT"/*.partial 2>/dev/null || tb_fail "partial files left"
    # the backup job ended, and a checkpoint exists in libvirt
    tb_virsh checkpoint-list "$DOM" --name | grep -qx virtnbdbackup.0 ||
        tb_fail "libvirt has no checkpoint virtnbdbackup.0"
    ! tb_virsh domjobinfo "$DOM" | grep -q Backup || tb_fail "backup job still running"

    tb_step "$mode: inc after new data, zeroing inside the big extent and a discard"
    tb_qemu_io "$DOM" vda "write -P 0x${H}4 2M 1M"
    tb_qemu_io "$DOM" vda "write -z 70M 8M"
    tb_qemu_io "$DOM" vda "discard 96M 4M"
    tb_qemu_io "$DOM" vdb "write -P 0x${H}5 10M 64k"
    vb_backup -d "$DOM" -l inc -o "$OUT" "${Z[@]}"
    snap "$mode-inc1"
    for d in vda vdb; do
        assert_meta "$OUT/$d.inc.virtnbdbackup.1.data" true virtnbdbackup.1 virtnbdbackup.0 $COMP
    done
    [ "$(zero_frames "$OUT/vda.inc.virtnbdbackup.1.data")" -ge 1 ] ||
        tb_fail "the zeroed/discarded ranges are not ZERO frames in the incremental"

    tb_step "$mode: -l auto continues the chain with an inc"
    tb_qemu_io "$DOM" vda "write -P 0x${H}6 130M 2M"
    vb_backup -d "$DOM" -l auto -o "$OUT" "${Z[@]}"
    snap "$mode-inc2"
    assert_meta "$OUT/vda.inc.virtnbdbackup.2.data" true virtnbdbackup.2 virtnbdbackup.1 $COMP
    tb_assert_eq "$(cat "$OUT/$DOM.cpt")" '["virtnbdbackup.0", "virtnbdbackup.1", "virtnbdbackup.2"]' ".cpt after two incs"

    tb_step "$mode: diff (changes since the last checkpoint, no new checkpoint)"
    tb_qemu_io "$DOM" vda "write -P 0x${H}7 5M 1M"
    tb_qemu_io "$DOM" vdb "write -z 1M 512k"
    vb_backup -d "$DOM" -l diff -o "$OUT" "${Z[@]}"
    snap "$mode-diff"
    diff_file=$(ls "$OUT"/vda.diff.*.data)
    assert_meta "$diff_file" true virtnbdbackup.3 virtnbdbackup.2 $COMP
    tb_assert_eq "$(cat "$OUT/$DOM.cpt")" '["virtnbdbackup.0", "virtnbdbackup.1", "virtnbdbackup.2"]' ".cpt unchanged by diff"

    tb_step "$mode: every point in time, applied by stream-apply, equals the disk then"
    for d in vda vdb; do
        files=("$OUT"/$d.*.data)
        apply_compare "$SNAP/$mode-diff-$d.raw" "$mode $d latest (with diff)" "${files[@]}"
        apply_compare "$SNAP/$mode-inc2-$d.raw" "$mode $d until inc 2" "${files[@]}" -- --until virtnbdbackup.2
        apply_compare "$SNAP/$mode-inc1-$d.raw" "$mode $d until inc 1" "${files[@]}" -- --until virtnbdbackup.1
        apply_compare "$SNAP/$mode-full-$d.raw" "$mode $d until full" "${files[@]}" -- --until virtnbdbackup.0
    done
    vr_restore_compare "$OUT" "$SNAP/$mode-diff-vda.raw" "$mode latest"
    vr_restore_compare "$OUT" "$SNAP/$mode-inc1-vda.raw" "$mode until inc 1" --until virtnbdbackup.1
    # the snapshots differ, so these comparisons can tell the points apart
    ! cmp -s "$SNAP/$mode-full-vda.raw" "$SNAP/$mode-inc1-vda.raw" || tb_fail "snapshots equal"

    tb_step "$mode: a full into a directory that holds a chain is refused"
    vb_backup_fails "already holds a backup" -d "$DOM" -l full -o "$OUT"
done


tb_step "the stream format of -z: lz4 framing, trailer, checksum (python-lz4 decodes it)"
/usr/bin/python3 - "$TB_WORKDIR/out-z/vda.full.data" <<'PY'
import json, sys, lz4.frame
data = open(sys.argv[1], "rb").read()
hdr = data[-40:]
assert hdr[:4] == b"comp", hdr
tlen = int(hdr.split(b" ")[2], 16)
trailer = json.loads(data[-42 - tlen:-42])
assert any(isinstance(e, dict) for e in trailer), trailer  # the 40 MiB extent is sliced
pos = 0
kind, start, length = data[:40].split(b" ")
pos = 40 + int(length, 16) + 2
i = 0
while True:
    kind, start, length = data[pos:pos + 40].decode().split()
    pos += 40
    if kind == "stop":
        break
    if kind == "zero":
        continue
    entry = trailer[i]; i += 1
    sizes = [entry] if isinstance(entry, int) else list(entry.values())[0]
    out = b""
    for s in sizes:
        out += lz4.frame.decompress(data[pos:pos + s]); pos += s
    assert len(out) == int(length, 16)
    assert data[pos:pos + 2] == b"\r\n"; pos += 2
print("python-lz4 decoded", i, "DATA frames")
PY
