#!/bin/bash
# virtbackup with the disk kinds it supports in one domain: a qcow2 file (vda), a raw file
# (vdb: only with --raw, as a full sparse copy), a qcow2 with a backing file (vdc: an
# external snapshot, backed up as the merged view), a qcow2 on a block device (vdd: a loop
# device), a qcow2 storage-pool volume (vde) and a cdrom (skipped). Also -i, -x, -w 1,
# -t raw. Every chain is compared with the disks.
set -euo pipefail
source "$(dirname "$0")/../lib/testbed.sh"
source "$(dirname "$0")/../lib/chain.sh"
tb_init

W=$TB_WORKDIR
DOM="vbtest-$$-disks"
POOL="vbtest-$$-pool"
SNAP=$W/snap
mkdir -p "$SNAP" "$W/pool"
chown root:kvm "$W/pool"
chmod 0770 "$W/pool"

tb_step "images: qcow2, raw, qcow2 over a backing file, qcow2 on a loop device, a pool volume"
qemu-img create -q -f qcow2 "$W/vda.qcow2" 64M
qemu-img create -q -f raw "$W/vdb.raw" 32M
qemu-io -f raw "$W/vdb.raw" -c "write -P 0x62 1M 2M" >/dev/null
qemu-img create -q -f qcow2 "$W/base.qcow2" 64M
qemu-io -f qcow2 "$W/base.qcow2" -c "write -P 0x63 0 4M" -c "write -P 0x64 20M 1M" >/dev/null
qemu-img create -q -f qcow2 -b "$W/base.qcow2" -F qcow2 "$W/vdc.qcow2"
qemu-img create -q -f qcow2 "$W/loop.qcow2" 48M
truncate -s 64M "$W/loop.img"
LOOP=$(losetup -f --show "$W/loop.img")
tb_on_exit "losetup -d $LOOP"
qemu-img convert -O qcow2 "$W/loop.qcow2" "$LOOP"
tb_virsh pool-create-as "$POOL" dir --target "$W/pool" >/dev/null
tb_on_exit "virsh -q pool-destroy $POOL"
# compat 1.1 (qcow2 v3): v2 images cannot hold persistent bitmaps
cat >"$W/vol.xml" <<XML
<volume><name>vol.qcow2</name><capacity unit='M'>40</capacity>
  <target><format type='qcow2'/><compat>1.1</compat></target></volume>
XML
tb_virsh vol-create "$POOL" "$W/vol.xml" >/dev/null

cat >"$W/dom.xml" <<XML
<domain type='$(tb_domain_type)'>
  <name>$DOM</name>
  <memory unit='MiB'>128</memory>
  <vcpu>1</vcpu>
  <os><type arch='x86_64'>hvm</type></os>
  <devices>
    <disk type='file' device='disk'><driver name='qemu' type='qcow2' discard='unmap'/>
      <source file='$W/vda.qcow2'/><target dev='vda' bus='virtio'/></disk>
    <disk type='file' device='disk'><driver name='qemu' type='raw'/>
      <source file='$W/vdb.raw'/><target dev='vdb' bus='virtio'/></disk>
    <disk type='file' device='disk'><driver name='qemu' type='qcow2'/>
      <source file='$W/vdc.qcow2'/><target dev='vdc' bus='virtio'/></disk>
    <disk type='block' device='disk'><driver name='qemu' type='qcow2'/>
      <source dev='$LOOP'/><target dev='vdd' bus='virtio'/></disk>
    <disk type='volume' device='disk'><driver name='qemu' type='qcow2'/>
      <source pool='$POOL' volume='vol.qcow2'/><target dev='vde' bus='virtio'/></disk>
    <disk type='file' device='cdrom'><driver name='qemu' type='raw'/>
      <target dev='sda' bus='sata'/><readonly/></disk>
    <graphics type='vnc' listen='127.0.0.1' autoport='yes'/>
  </devices>
</domain>
XML
tb_virsh define "$W/dom.xml" >/dev/null
tb_virsh start --paused "$DOM" >/dev/null
TB_DOMAIN=$DOM
for d in vda vdc vdd vde; do tb_qemu_io "$DOM" $d "write -P 0x7${d:2:1} 2M 3M"; done
tb_qemu_io "$DOM" vdc "write -z 20M 512k" # zero a region that the backing file holds
declare -A IMG=([vda]="$W/vda.qcow2" [vdc]="$W/vdc.qcow2" [vdd]="$LOOP" [vde]="$W/pool/vol.qcow2")
snap() { # snap NAME: every qcow2 disk as it is now (flushed, read from outside)
    local d
    for d in vda vdc vdd vde; do
        tb_qemu_io "$DOM" $d flush
        qemu-img convert -U -f qcow2 -O raw "${IMG[$d]}" "$SNAP/$1-$d.raw" ||
            tb_fail "cannot snapshot $d"
    done
}

tb_step "full without --raw: raw disk and cdrom skipped with a notice"
out=$("$VIRTBACKUP" -n -d "$DOM" -l full -o "$W/A" 2>&1) || tb_fail "full failed: $out"
grep -q "vdb: raw disk, skipped" <<<"$out" || tb_fail "no notice for the raw disk: $out"
grep -q "sda: cdrom device, skipped" <<<"$out" || tb_fail "no notice for the cdrom: $out"
snap full
for d in vda vdc vdd vde; do
    assert_meta "$W/A/$d.full.data" false virtnbdbackup.0 "" false
    apply_compare "$SNAP/full-$d.raw" "full $d" "$W/A/$d.full.data"
    # qemu-img info runs in a thread during the copy: each disk's file must describe its image
    tb_assert_eq "$(jq -r .filename "$W/A/$d.virtnbdbackup.0.qcow.json")" "${IMG[$d]}" "image of $d's qcow.json"
done
[ ! -e "$W/A/vdb.virtnbdbackup.0.qcow.json" ] || tb_fail "qcow.json for the skipped raw disk"
[ ! -e "$W/A/vdb.full.data" ] && [ ! -e "$W/A/vdb.copy.data" ] || tb_fail "raw disk backed up without --raw"
# the backup holds what only the backing file has (0x64 at 20.5 MiB) and the zeroed half
tb_assert_eq "$(xxd -s $((20 * 1048576 + 524288)) -l 1 -p "$SNAP/full-vdc.raw")" 64 "backing data in vdc"
tb_assert_eq "$(xxd -s $((20 * 1048576)) -l 1 -p "$SNAP/full-vdc.raw")" 00 "zeroed backing data in vdc"

tb_step "inc of every kind of qcow2 disk"
for d in vda vdc vdd vde; do tb_qemu_io "$DOM" $d "write -P 0x8${d:2:1} 10M 1M"; done
tb_qemu_io "$DOM" vdc "write -z 0 1M" # zero what the backing file holds
vb_backup -d "$DOM" -l inc -o "$W/A" -w 1
snap inc1
for d in vda vdc vdd vde; do
    assert_meta "$W/A/$d.inc.virtnbdbackup.1.data" true virtnbdbackup.1 virtnbdbackup.0 false
    apply_compare "$SNAP/inc1-$d.raw" "inc $d" "$W/A"/$d.*.data
done
vr_restore_compare "$W/A" "$SNAP/inc1-vda.raw" "vda of the multi-disk chain"

tb_step "--raw: the raw disk as a full sparse copy (plain image, no stream)"
vb_backup -d "$DOM" -l full -o "$W/B" --raw -i vdb
[ -f "$W/B/vdb.copy.data" ] || tb_fail "no vdb.copy.data"
cmp "$W/B/vdb.copy.data" "$W/vdb.raw" || tb_fail "the raw copy differs from the raw disk"
[ "$(du -k "$W/B/vdb.copy.data" | cut -f1)" -lt 8192 ] || tb_fail "the raw copy is not sparse"

tb_step "-i and -x select disks"
vb_backup -d "$DOM" -l copy -o "$W/C" -i vdc
tb_assert_eq "$(cd "$W/C" && ls -- *.data | tr '\n' ' ')" "vdc.copy.data " "files with -i vdc"
vb_backup -d "$DOM" -l copy -o "$W/D" -x vda,vdd
tb_assert_eq "$(cd "$W/D" && ls -- *.data | tr '\n' ' ')" "vdc.copy.data vde.copy.data " "files with -x vda,vdd"

tb_step "-t raw: plain images of the qcow2 disks"
vb_backup -d "$DOM" -l copy -t raw -o "$W/E" -i vda
snap now
cmp "$W/E/vda.copy.data" "$SNAP/now-vda.raw" || tb_fail "-t raw image differs from the disk"
# its .chksum is the adler32 of the whole image, holes included (computed independently)
tb_assert_eq "$(python3 -c 'import sys, zlib
a = 1
with open(sys.argv[1], "rb") as f:
    for b in iter(lambda: f.read(1 << 20), b""):
        a = zlib.adler32(b, a)
print(a)' "$W/E/vda.copy.data")" "$(cat "$W/E/vda.copy.data.chksum")" "the raw image's .chksum"

tb_step "virtrestore -r copies the raw disk's image; without -r it is skipped"
rc=0
"$VIRTRESTORE" -n -i "$W/B" -o "$W/RB" >"$W/rb.log" 2>&1 || rc=$?
grep -q "vdb: raw disk, skipped" "$W/rb.log" || tb_fail "no notice for the skipped raw disk: $(cat "$W/rb.log")"
"$VIRTRESTORE" -n -i "$W/B" -o "$W/RB2" -r >"$W/rb2.log" 2>&1 || tb_fail "restore -r failed: $(cat "$W/rb2.log")"
cmp "$W/RB2/vdb.raw" "$W/vdb.raw" || tb_fail "the raw disk restored with -r differs"

tb_step "virtrestore -A: a fully preallocated image with the same content"
"$VIRTRESTORE" -n -i "$W/A" -o "$W/RA" -d vda -A >"$W/ra.log" 2>&1 || tb_fail "restore -A failed: $(cat "$W/ra.log")"
compare_qcow_raw "$W/RA/vda.qcow2" "$SNAP/inc1-vda.raw" "restore -A"
alloc=$(qemu-img info --output=json "$W/RA/vda.qcow2" | jq '."actual-size"')
[ "$alloc" -ge 60000000 ] || tb_fail "-A image is not preallocated (actual size $alloc)"
