#!/bin/bash
# A fragmented disk (4 KiB clusters, thousands of 4 KiB extents with 4-8 KiB holes): reads
# are merged across small holes, so the writer takes several extents from one buffer. The
# chain (plain and -z, full and inc) must still equal the disk byte for byte.
set -euo pipefail
source "$(dirname "$0")/../lib/testbed.sh"
source "$(dirname "$0")/../lib/chain.sh"
tb_init

W=$TB_WORKDIR
DOM="vbtest-$$-frag"
IMG=$W/frag.qcow2
qemu-img create -q -f qcow2 -o cluster_size=4096 "$IMG" 64M
# 2000 extents of 4 KiB at irregular distances (holes of 4 or 8 KiB), with distinct content
/usr/bin/python3 - "$IMG" <<'PY'
import subprocess, sys
cmds, off = [], 0
for i in range(2000):
    cmds += ["-c", "write -P %d %d 4096" % (i % 251 + 1, off)]
    off += 8192 if i % 3 else 12288
subprocess.run(["qemu-io", "-f", "qcow2", sys.argv[1]] + cmds, check=True, stdout=subprocess.DEVNULL)
PY
cat >"$W/dom.xml" <<XML
<domain type='$(tb_domain_type)'>
  <name>$DOM</name>
  <memory unit='MiB'>128</memory>
  <vcpu>1</vcpu>
  <os><type arch='x86_64'>hvm</type></os>
  <devices>
    <disk type='file' device='disk'><driver name='qemu' type='qcow2'/>
      <source file='$IMG'/><target dev='vda' bus='virtio'/></disk>
  </devices>
</domain>
XML
tb_virsh define "$W/dom.xml" >/dev/null
tb_virsh start --paused "$DOM" >/dev/null
TB_DOMAIN=$DOM

for z in "" -z; do
    OUT=$W/out$z
    tb_step "full and inc of the fragmented disk ${z:-plain}"
    vb_backup -d "$DOM" -l full -o "$OUT" $z
    n=$("$STREAM_CHECK" "$OUT/vda.full.data" | jq .data_frames)
    [ "$n" -ge 1500 ] || tb_fail "expected thousands of DATA frames, got $n"
    tb_snapshot_image "$DOM" vda "$W/full.raw"
    apply_compare "$W/full.raw" "fragmented full ${z:-plain}" "$OUT/vda.full.data"
    tb_qemu_io "$DOM" vda "write -P 0xee 8192 4096"
    tb_qemu_io "$DOM" vda "write -z 40960 4096"
    vb_backup -d "$DOM" -l inc -o "$OUT" $z
    tb_snapshot_image "$DOM" vda "$W/inc.raw"
    apply_compare "$W/inc.raw" "fragmented full + inc ${z:-plain}" "$OUT"/vda.*.data
done
