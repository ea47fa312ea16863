#!/bin/bash
# Proves the test harness itself: a paused domain can be created, HMP qemu-io
# changes reach its disks (write -P, write -z, discard), tb_snapshot_image sees
# them, and the harness notices a change that did not happen or a wrong pattern.
set -euo pipefail

# shellcheck source=../lib/testbed.sh
source "$(dirname "${BASH_SOURCE[0]}")/../lib/testbed.sh"
tb_init

MiB=$((1024 * 1024))

tb_step "create a paused domain with two disks"
tb_create_domain smoke 64M 8M
dom="$TB_DOMAIN"
tb_assert_eq "paused" "$(tb_virsh domstate "$dom")" "domain state"
tb_assert_eq "vda vdb" "$(tb_disks "$dom" | xargs)" "disk targets"

tb_step "write patterns, zeroes and a discard through qemu-io"
tb_qemu_io "$dom" vda "write -P 0x11 0 4M"
tb_qemu_io "$dom" vda "write -P 0x22 8M 1M"
tb_qemu_io "$dom" vda "write -z 1M 1M"         # zero inside the 0x11 region
tb_qemu_io "$dom" vda "discard 3M 1M"          # discard the end of the 0x11 region
tb_qemu_io "$dom" vdb "write -P 0x33 64k 64k"  # second disk, second QOM path

tb_step "read the patterns back inside qemu"
tb_qemu_io "$dom" vda "read -P 0x11 0 1M"
tb_qemu_io "$dom" vda "read -P 0 1M 1M"
tb_qemu_io "$dom" vda "read -P 0x11 2M 1M"
tb_qemu_io "$dom" vda "read -P 0 3M 1M"
tb_qemu_io "$dom" vda "read -P 0x22 8M 1M"
tb_qemu_io "$dom" vdb "read -P 0x33 64k 64k"

tb_step "snapshot the running images and compare with an expected image"
tb_snapshot_image "$dom" vda "$TB_WORKDIR/vda.raw"
tb_snapshot_image "$dom" vdb "$TB_WORKDIR/vdb.raw"
exp="$TB_WORKDIR/expected-vda.qcow2"
qemu-img create -q -f qcow2 "$exp" 64M
qemu-io -f qcow2 "$exp" -c "write -P 0x11 0 1M" -c "write -P 0x11 2M 1M" \
    -c "write -P 0x22 8M 1M" >/dev/null
out=$(qemu-img compare -f raw -F qcow2 "$TB_WORKDIR/vda.raw" "$exp" 2>&1) ||
    tb_fail "snapshot of vda differs from the expected image: $out"
tb_log "vda snapshot == expected image ($out)"
tb_assert_eq $((64 * MiB)) "$(stat -c %s "$TB_WORKDIR/vda.raw")" "size of vda snapshot"
# Independent byte-level check with plain tools, for the second disk.
tb_assert_eq "$(printf '\x33%.0s' $(seq 65536) | md5sum)" \
    "$(dd if="$TB_WORKDIR/vdb.raw" bs=64k skip=1 count=1 status=none | md5sum)" "vdb block 1"
tb_assert_eq "$(head -c 65536 /dev/zero | md5sum)" \
    "$(dd if="$TB_WORKDIR/vdb.raw" bs=64k count=1 status=none | md5sum)" "vdb block 0"
tb_qemu_io "$dom" vda "read -P 0x22 8M 1M"
qemu-io -f raw -r "$TB_WORKDIR/vda.raw" -c "read -P 0x22 8M 1M" | grep -q '^read 1048576/1048576' ||
    tb_fail "qemu-io read -P on the snapshot"

tb_step "the harness detects a change that did not happen"
# A read with the wrong pattern must make tb_qemu_io fail (run in a subshell
# so that its tb_fail does not end this test).
if (tb_qemu_io "$dom" vda "read -P 0x99 0 64k") 2>/dev/null; then
    tb_fail "tb_qemu_io accepted a read with a wrong pattern"
fi
tb_log "wrong pattern detected by tb_qemu_io"
# A write beyond the end of the disk fails inside qemu: the harness must notice.
if (tb_qemu_io "$dom" vdb "write -P 0x44 16M 64k") 2>/dev/null; then
    tb_fail "tb_qemu_io accepted a write beyond the end of the disk"
fi
tb_log "failed write detected by tb_qemu_io"
# A wrong device must fail too.
if (tb_qemu_io "$dom" vdc "write -P 0x44 0 64k") 2>/dev/null; then
    tb_fail "tb_qemu_io accepted a non-existent disk"
fi
tb_log "non-existent disk detected by tb_qemu_io"
# qemu-img compare notices a one-byte difference.
cp --sparse=always "$TB_WORKDIR/vda.raw" "$TB_WORKDIR/vda-bad.raw"
printf '\x12' | dd of="$TB_WORKDIR/vda-bad.raw" bs=1 seek=$((8 * MiB + 4097)) conv=notrunc status=none
if qemu-img compare -f raw -F qcow2 "$TB_WORKDIR/vda-bad.raw" "$exp" >/dev/null 2>&1; then
    tb_fail "qemu-img compare missed a one-byte change"
fi
tb_log "one-byte change detected by qemu-img compare"

tb_pass "harness: domain, qemu-io writes/zeroes/discard, snapshots and failure detection work"
