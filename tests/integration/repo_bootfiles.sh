#!/bin/bash
# Boot files in a repository (virtbackup-repository(5): loader and nvram are chunked blobs of
# the snapshot): a shut-off domain with OVMF as its pflash loader and an nvram of its own,
# -l copy into a repository of 1 MiB chunks (the loader spans four chunks, the last one
# short): the manifest lists both blobs with their paths and sizes; virtrestore -c puts
# byte-identical copies next to the restored image, its config points at them, the image
# equals the disk; virtrepo verify passes. A flipped byte in the nvram's chunk: virtrepo
# verify names the snapshot, the chunk and its blob, virtrestore -o verify the nvram.
set -euo pipefail

# shellcheck source=../lib/testbed.sh
source "$(dirname "${BASH_SOURCE[0]}")/../lib/testbed.sh"
# shellcheck source=../lib/chain.sh
source "$(dirname "${BASH_SOURCE[0]}")/../lib/chain.sh"
tb_init

VIRTREPO="$VB_BUILD_DIR/src/virtrepo/virtrepo"
[ -x "$VIRTREPO" ] || tb_fail "$VIRTREPO not built"
W=$TB_WORKDIR
R=$W/repo
LOADER=/usr/share/OVMF/OVMF_CODE_4M.fd
VARS=/usr/share/OVMF/OVMF_VARS_4M.fd
[ -f "$LOADER" ] && [ -f "$VARS" ] || tb_fail "OVMF is not installed ($LOADER, $VARS)"

tb_step "a shut-off domain with a pflash loader and an nvram of its own"
DOM="vbtest-$$-uefi"
IMG=$W/uefi-vda.qcow2
NVRAM=$W/uefi_VARS.fd
qemu-img create -q -f qcow2 -o compat=1.1 "$IMG" 16M
qemu-io -f qcow2 "$IMG" -c "write -P 0x7e 0 2M" -c "write -P 0x7f 9M 64k" >/dev/null
qemu-img convert -f qcow2 -O raw "$IMG" "$W/vda.raw"
# the template with a stamp of its own, so that a copy of the template is told apart
cp "$VARS" "$NVRAM"
head -c 4096 /dev/urandom | dd of="$NVRAM" bs=4096 seek=100 conv=notrunc status=none
tb_uefi_domain_xml "$DOM" "$LOADER" "$NVRAM" "$IMG" >"$W/uefi.xml"
# undefine refuses a domain with an nvram unless told what to do with it
tb_on_exit "tb_virsh undefine --nvram $DOM"
tb_virsh define "$W/uefi.xml" >/dev/null
sha_loader=$(sha256sum <"$LOADER")
sha_nvram=$(sha256sum <"$NVRAM")

tb_step "-l copy into a repository of 1 MiB chunks: the manifest lists loader and nvram"
"$VIRTREPO" init "$R" --chunk-size 1M >/dev/null
vb_backup -d "$DOM" -l copy -o "$R"
"$VIRTRESTORE" -n -i "$R" -o dump >"$W/dump.json" 2>"$W/dump.log" ||
    tb_fail "virtrestore -o dump: $(cat "$W/dump.log")"
ID=$(jq -r .id "$W/dump.json")
jq -e --arg loader "$LOADER" --arg nvram "$NVRAM" \
    --argjson lsize "$(stat -c %s "$LOADER")" --argjson nsize "$(stat -c %s "$NVRAM")" '
    .level == "copy" and (.blobs | length) == 2
    and (.blobs | map(select(.kind == "loader")) | .[0] | .path == $loader and .size == $lsize)
    and (.blobs | map(select(.kind == "nvram")) | .[0] | .path == $nvram and .size == $nsize)' \
    "$W/dump.json" >/dev/null || tb_fail "the manifest's blobs: $(jq -c .blobs "$W/dump.json")"
tb_log "blobs of snapshot $ID: $(jq -c '[.blobs[] | {kind, size}]' "$W/dump.json")"
# their chunks are in: the loader's first 1 MiB and the whole nvram, by their SHA-256
chunk_of() { echo "$R/chunks/${1:0:2}/$1"; }
first=$(head -c 1048576 "$LOADER" | sha256sum | cut -d' ' -f1)
[ -s "$(chunk_of "$first")" ] || tb_fail "no chunk $first (the loader's first MiB)"
nv=$(sha256sum "$NVRAM" | cut -d' ' -f1)
[ -s "$(chunk_of "$nv")" ] || tb_fail "no chunk $nv (the nvram)"
"$VIRTREPO" verify "$R" >"$W/verify.out" 2>&1 || tb_fail "verify: $(cat "$W/verify.out")"
tb_log "$(tail -1 "$W/verify.out")"

tb_step "virtrestore -c: loader and nvram next to the image, the config points at them"
OUT=$W/restored
"$VIRTRESTORE" -n -i "$R" -o "$OUT" -c >"$W/restore.log" 2>&1 ||
    tb_fail "virtrestore -c: $(tail -5 "$W/restore.log")"
compare_qcow_raw "$OUT/$(basename "$IMG")" "$W/vda.raw" "restored image"
tb_assert_eq "$sha_loader" "$(sha256sum <"$OUT/$(basename "$LOADER")")" "restored loader"
tb_assert_eq "$sha_nvram" "$(sha256sum <"$OUT/$(basename "$NVRAM")")" "restored nvram"
tb_log "identical: restored $(basename "$LOADER") and $(basename "$NVRAM")"
cfg=$(ls "$OUT"/vmconfig*.xml 2>/dev/null | head -1)
[ -n "$cfg" ] || tb_fail "no config restored: $(ls "$OUT")"
read -r got_loader got_nvram got_disk < <(python3 -c '
import sys, xml.etree.ElementTree as E
d = E.parse(sys.argv[1]).getroot()
print(d.find("os/loader").text, d.find("os/nvram").text,
      d.find("devices/disk/source").get("file"))' "$cfg")
tb_assert_eq "$got_loader" "$OUT/$(basename "$LOADER")" "the restored config's loader"
tb_assert_eq "$got_nvram" "$OUT/$(basename "$NVRAM")" "the restored config's nvram"
tb_assert_eq "$got_disk" "$OUT/$(basename "$IMG")" "the restored config's disk"
tb_assert_eq "$sha_nvram" "$(sha256sum <"$NVRAM")" "the original nvram after the restore"

tb_step "a flipped byte in the nvram's chunk: verify names the snapshot, the chunk and the nvram"
# the object's payload starts after its 24-byte header (virtbackup-repository(5))
python3 - "$(chunk_of "$nv")" <<'PY'
import sys
with open(sys.argv[1], "r+b") as f:
    f.seek(24 + 5)
    b = f.read(1)
    f.seek(24 + 5)
    f.write(bytes([b[0] ^ 0x40]))
PY
rc=0
"$VIRTREPO" verify "$R" >"$W/verify.out" 2>&1 || rc=$?
tb_assert_eq 1 "$rc" "virtrepo verify's exit status on a damaged nvram chunk ($(cat "$W/verify.out"))"
grep -q "^damaged snapshot $ID (VM $DOM, " "$W/verify.out" ||
    tb_fail "verify does not name the damaged snapshot: $(cat "$W/verify.out")"
grep -q "^  chunk $nv: .* (in nvram blob)$" "$W/verify.out" ||
    tb_fail "verify does not name the nvram's chunk $nv and its blob: $(cat "$W/verify.out")"
grep -q "^verify: 1 snapshots, .*: DAMAGED (1 damaged snapshots, 1 damaged chunks)$" \
    "$W/verify.out" || tb_fail "verify's summary: $(cat "$W/verify.out")"
tb_log "virtrepo verify: $(grep -F "chunk $nv" "$W/verify.out")"
rc=0
"$VIRTRESTORE" -n -i "$R" -o verify >"$W/rverify.log" 2>&1 || rc=$?
[ "$rc" -ne 0 ] || tb_fail "virtrestore -o verify passed a damaged nvram: $(cat "$W/rverify.log")"
grep -qF "nvram $NVRAM: 1 of 1 stored chunks damaged or missing" "$W/rverify.log" ||
    tb_fail "virtrestore -o verify does not name the nvram: $(cat "$W/rverify.log")"
grep -qF "loader $LOADER: ok" "$W/rverify.log" ||
    tb_fail "virtrestore -o verify does not pass the loader: $(cat "$W/rverify.log")"
tb_log "virtrestore -o verify: $(grep -F "nvram $NVRAM" "$W/rverify.log" | head -1)"

tb_pass "loader and nvram as blobs of a repository snapshot"
