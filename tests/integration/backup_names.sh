#!/bin/bash
# Names from domain XML survive every path: a domain called with spaces, quotes, a comma and
# non-ASCII letters, images in a directory with the same kind of name. Backup (plain and
# zip), restore with -c, and the files and config they write.
set -euo pipefail
source "$(dirname "$0")/../lib/testbed.sh"
source "$(dirname "$0")/../lib/chain.sh"
tb_init

NAME="vbtest-$$-it's a \"vm\", été"
DIR="$TB_WORKDIR/dir with 'quotes', commas"
install -d -o root -g kvm -m 0770 "$DIR"
IMG="$DIR/disk one,two.qcow2"
qemu-img create -q -f qcow2 "$IMG" 32M
qemu-io -f qcow2 "$IMG" -c "write -P 0x5c 0 2M" >/dev/null
# XML-escape what goes into attributes and text
xe() { sed -e 's/&/\&amp;/g' -e "s/'/\&apos;/g" -e 's/"/\&quot;/g' -e 's/</\&lt;/g' <<<"$1"; }
cat >"$TB_WORKDIR/dom.xml" <<XML
<domain type='$(tb_domain_type)'>
  <name>$(xe "$NAME")</name>
  <memory unit='MiB'>128</memory>
  <vcpu>1</vcpu>
  <os><type arch='x86_64'>hvm</type></os>
  <devices>
    <disk type='file' device='disk'><driver name='qemu' type='qcow2'/>
      <source file='$(xe "$IMG")'/><target dev='vda' bus='virtio'/></disk>
  </devices>
</domain>
XML
tb_virsh define "$TB_WORKDIR/dom.xml" >/dev/null
tb_virsh start --paused "$NAME" >/dev/null
TB_DOMAIN=$NAME

OUT="$TB_WORKDIR/out $NAME"
tb_step "full + inc of a domain with an awkward name"
vb_backup -d "$NAME" -l full -o "$OUT"
tb_qemu_io "$NAME" vda "write -P 0x5d 4M 1M"
vb_backup -d "$NAME" -l inc -o "$OUT"
[ -f "$OUT/$NAME.cpt" ] || tb_fail "no .cpt named after the domain"
assert_meta "$OUT/vda.inc.virtnbdbackup.1.data" true virtnbdbackup.1 virtnbdbackup.0 false
tb_qemu_io "$NAME" vda flush
qemu-img convert -U -f qcow2 -O raw "$IMG" "$TB_WORKDIR/now.raw"
apply_compare "$TB_WORKDIR/now.raw" "awkward names, stream-apply" "$OUT"/vda.*.data

tb_step "restore with a rewritten config"
R="$TB_WORKDIR/restore $NAME"
"$VIRTRESTORE" -n -i "$OUT" -o "$R" -c >"$TB_WORKDIR/r.log" 2>&1 || tb_fail "restore failed: $(cat "$TB_WORKDIR/r.log")"
compare_qcow_raw "$R/disk one,two.qcow2" "$TB_WORKDIR/now.raw" "restore of awkward names"
xmllint --xpath 'string(/domain/name)' "$R/vmconfig.xml" | grep -qF "restore_$NAME" ||
    tb_fail "the restored config's name is not restore_<name>: $(xmllint --xpath 'string(/domain/name)' "$R/vmconfig.xml")"
xmllint --xpath 'string(/domain/devices/disk/source/@file)' "$R/vmconfig.xml" | grep -qF "$R/disk one,two.qcow2" ||
    tb_fail "the restored config does not point at the restored image"

tb_step "zip output (bookkeeping in the current directory, named after the domain)"
(cd "$OUT" && "$VIRTBACKUP" -n -d "$NAME" -l inc -o - >"$TB_WORKDIR/b.zip") || tb_fail "zip failed"
/usr/bin/python3 -c 'import sys, zipfile; z = zipfile.ZipFile(sys.argv[1]); assert z.testzip() is None; print(" ".join(z.namelist()))' \
    "$TB_WORKDIR/b.zip" | grep -qF "$NAME.cpt" || tb_fail "the zip lacks the domain's .cpt"
