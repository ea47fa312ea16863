#!/bin/bash
# virtrepo export (virtrepo(1), EXPORT): a running domain with two disks (a zeroed range
# inside written data, a short last chunk) and a pflash loader with an nvram of its own,
# backed up with -l full into a repository of 1 MiB chunks. The snapshot exported plain and
# with -z: the directory holds the files a real `virtbackup -l full -o DIR` writes, less the
# chain's bookkeeping (<vm>.cpt, checkpoints/, the log); every stream passes stream-check with
# a full's META; virtrestore AND the reference's virtnbdrestore restore both disks equal to
# the source, virtrestore -c the loader and nvram byte for byte; virtmap serves both disks
# equal to the source; an incremental snapshot exports as a full of its point. The export
# starts no chain: -l inc and -l auto into it are refused (also the reference's -l inc),
# leaving it as it was. A non-empty target, a leftover <dir>.partial and a repository of two
# VMs without --vm are refused, as is a snapshot whose disk target is a path; a damaged chunk
# fails the export naming the chunk, and neither <dir> nor <dir>.partial remains.
set -euo pipefail

# shellcheck source=../lib/testbed.sh
source "$(dirname "${BASH_SOURCE[0]}")/../lib/testbed.sh"
# shellcheck source=../lib/chain.sh
source "$(dirname "${BASH_SOURCE[0]}")/../lib/chain.sh"
tb_init

VIRTREPO="$VB_BUILD_DIR/src/virtrepo/virtrepo"
VIRTMAP="$VB_BUILD_DIR/src/map/virtmap"
for t in "$VIRTREPO" "$VIRTMAP"; do [ -x "$t" ] || tb_fail "$t not built"; done
RAW=$(tb_tool repo-raw)
W=$TB_WORKDIR
R=$W/repo
LOADER=/usr/share/OVMF/OVMF_CODE_4M.fd
VARS=/usr/share/OVMF/OVMF_VARS_4M.fd
[ -f "$LOADER" ] && [ -f "$VARS" ] || tb_fail "OVMF is not installed ($LOADER, $VARS)"

# a qemu-nbd of the reference's restore whose client never came stays: end those of this test
tb_on_exit 'ps -C qemu-nbd -o pid=,args= | awk -v w="$W/" "index(\$0, w) { print \$1 }" | xargs -r kill'

# files DIR: the names in DIR (recursively), sorted, one line
files() { (cd "$1" && find . -mindepth 1 -printf '%P\n' | sort | tr '\n' ' '); }

# export_fails WANT ARGS...: virtrepo export must exit 1 saying WANT
export_fails() {
    local want="$1" rc=0 out
    shift
    out=$("$VIRTREPO" export "$@" 2>&1) || rc=$?
    [ "$rc" -eq 1 ] || tb_fail "virtrepo export $* exited $rc, expected 1; said: $out"
    grep -qF -- "$want" <<<"$out" || tb_fail "virtrepo export $* did not say '$want': $out"
    tb_log "refused as expected: $(grep -F -- "$want" <<<"$out" | head -1)"
}

tb_step "a running domain: two disks, a zeroed range, a loader and an nvram of its own"
DOM="vbtest-$$-export"
TB_IMAGES=("$W/export-vda.qcow2" "$W/export-vdb.qcow2")
NVRAM=$W/export_VARS.fd
qemu-img create -q -f qcow2 -o compat=1.1 "${TB_IMAGES[0]}" 24M
# vdb's size is no multiple of the chunk size: its last chunk is short
qemu-img create -q -f qcow2 -o compat=1.1 "${TB_IMAGES[1]}" $((9 * 1048576 + 65536))
cp "$VARS" "$NVRAM"
head -c 4096 /dev/urandom | dd of="$NVRAM" bs=4096 seek=100 conv=notrunc status=none
tb_uefi_domain_xml "$DOM" "$LOADER" "$NVRAM" "${TB_IMAGES[0]}" "${TB_IMAGES[1]}" >"$W/export.xml"
# undefine refuses a domain with an nvram or checkpoints unless told what to do with them
tb_on_exit "tb_virsh destroy $DOM; tb_virsh undefine --nvram --checkpoints-metadata $DOM"
tb_virsh define "$W/export.xml" >/dev/null
tb_virsh start --paused "$DOM" >/dev/null
tb_qemu_io "$DOM" vda "write -P 0x5a 0 3M"
tb_qemu_io "$DOM" vda "write -z 1M 1M"
tb_qemu_io "$DOM" vda "write -P 0x11 5M 64k"
tb_qemu_io "$DOM" vda "write -P 0x77 20M 1M"
tb_qemu_io "$DOM" vdb "write -P 0x33 1M 2M"
tb_qemu_io "$DOM" vdb "write -P 0x44 9M 64k"
tb_snapshot_image "$DOM" vda "$W/vda.raw"
tb_snapshot_image "$DOM" vdb "$W/vdb.raw"
sha_loader=$(sha256sum <"$LOADER")
sha_nvram=$(sha256sum <"$NVRAM")

tb_step "-l full into a repository; the same domain's -l full into a directory (the layout)"
"$VIRTREPO" init "$R" --chunk-size 1M >/dev/null
vb_backup -d "$DOM" -l full -o "$R"
ID=$("$VIRTREPO" snapshots "$R" --json | jq -r '.[-1].id')
vb_backup -d "$DOM" -l full -o "$W/real"
# what a full's directory holds besides the chain's bookkeeping
want=$(cd "$W/real" && find . -mindepth 1 -printf '%P\n' |
    grep -vE "^($DOM\.cpt|checkpoints|checkpoints/.*|backup\.full\..*\.log)\$" | sort | tr '\n' ' ')
tb_log "a real full holds (less the chain's bookkeeping): $want"
grep -qF "$(basename "$NVRAM").virtnbdbackup.0 " <<<"$want" ||
    tb_fail "the real full saved no nvram: $want"

for mode in plain z; do
    E=$W/export-$mode
    args=()
    [ "$mode" = z ] && args=(-z)
    tb_step "export $ID ($mode): the files of a full, stream-check passes, a full's META"
    "$VIRTREPO" export "${args[@]}" "$R" "$ID" "$E" >"$W/export-$mode.log" 2>&1 ||
        tb_fail "virtrepo export: $(cat "$W/export-$mode.log")"
    grep -qF "it starts no chain" "$W/export-$mode.log" ||
        tb_fail "export does not say that it starts no chain: $(cat "$W/export-$mode.log")"
    tb_assert_eq "$(files "$E")" "$want" "the files of the export ($mode)"
    comp=false
    [ "$mode" = z ] && comp=2
    for dev in vda vdb; do
        assert_meta "$E/$dev.full.data" false virtnbdbackup.0 "" "$comp"
        tb_assert_eq "$("$STREAM_CHECK" "$E/$dev.full.data" | jq -r .meta.diskName)" "$dev" \
            "the META's disk name"
    done
    # vda's zeroed MiB and the unwritten MiBs are ZERO frames, not data
    [ "$(zero_frames "$E/vda.full.data")" -ge 2 ] ||
        tb_fail "vda's export has fewer than 2 ZERO frames: $("$STREAM_CHECK" "$E/vda.full.data")"
    cmp -s "$E/vmconfig.virtnbdbackup.0.xml" "$W/real/vmconfig.virtnbdbackup.0.xml" ||
        tb_log "note: the config differs from the later full's (the live XML may change)"
    tb_assert_eq "$sha_nvram" "$(sha256sum <"$E/$(basename "$NVRAM").virtnbdbackup.0")" \
        "the exported nvram"
    tb_assert_eq "$sha_loader" "$(sha256sum <"$E/$(basename "$LOADER").virtnbdbackup.0")" \
        "the exported loader"

    tb_step "virtrestore -i the export ($mode): both disks equal the source, -c the boot files"
    O=$W/vr-$mode
    "$VIRTRESTORE" -n -i "$E" -o "$O" -c >"$O.log" 2>&1 ||
        tb_fail "virtrestore: $(tail -5 "$O.log")"
    compare_qcow_raw "$O/$(basename "${TB_IMAGES[0]}")" "$W/vda.raw" "vda, virtrestore ($mode)"
    compare_qcow_raw "$O/$(basename "${TB_IMAGES[1]}")" "$W/vdb.raw" "vdb, virtrestore ($mode)"
    tb_assert_eq "$sha_nvram" "$(sha256sum <"$O/$(basename "$NVRAM")")" "restored nvram ($mode)"
    tb_assert_eq "$sha_loader" "$(sha256sum <"$O/$(basename "$LOADER")")" \
        "restored loader ($mode)"

    tb_step "the reference's virtnbdrestore -i the export ($mode): both disks equal the source"
    # one disk per run: virtnbdrestore 1.9.15 serves every disk on the same socket path, and
    # its client may reach the previous disk's qemu-nbd, not yet gone, and fail
    img=$(ref_restore "$E" "$W/ref-$mode" -d vda)
    compare_qcow_raw "$img" "$W/vda.raw" "vda, virtnbdrestore ($mode)"
    ref_restore "$E" "$W/ref-$mode" -d vdb >/dev/null
    img=$W/ref-$mode/$(basename "${TB_IMAGES[1]}")
    TB_WAIT_LIMIT=120 tb_wait_for "" eval 'qemu-img info "$img" >/dev/null 2>&1' ||
        tb_fail "$img still locked 120 s after virtnbdrestore ended"
    compare_qcow_raw "$img" "$W/vdb.raw" "vdb, virtnbdrestore ($mode)"

    tb_step "virtmap -i the export ($mode): both disks served equal the source"
    sock=$W/map.sock
    "$VIRTMAP" -d none --socket "$sock" -r -i "$E" --run \
        "qemu-img compare -f raw -F raw 'nbd+unix:///vda?socket=$sock' '$W/vda.raw' &&
         qemu-img compare -f raw -F raw 'nbd+unix:///vdb?socket=$sock' '$W/vdb.raw'" \
        >"$W/map-$mode.log" 2>&1 || tb_fail "virtmap ($mode): $(tail -5 "$W/map-$mode.log")"
    tb_log "identical: vda and vdb served by virtmap ($mode)"
done

tb_step "the export starts no chain: -l inc and -l auto into it are refused, nothing changes"
E=$W/export-plain
# (a refused run leaves its log, backup.<level>.<time>.log, as every run does)
sums() { (cd "$1" && find . -type f ! -name 'backup.*.log' -exec sha256sum {} + | sort); }
before=$(sums "$E")
vb_backup_fails "no checkpoints in $E/$DOM.cpt" -d "$DOM" -l inc -o "$E"
vb_backup_fails "no checkpoints in $E/$DOM.cpt" -d "$DOM" -l auto -o "$E"
# the reference's -l inc refuses it too
rc=0
out=$(virtnbdbackup -d "$DOM" -l inc -o "$E" -S "$W" -f "$W/refinc.sock" -n 2>&1) || rc=$?
[ "$rc" -ne 0 ] || tb_fail "virtnbdbackup -l inc into the export succeeded: $out"
grep -qF "No existing checkpoints found" <<<"$out" ||
    tb_fail "virtnbdbackup -l inc into the export: $(tail -3 <<<"$out")"
tb_log "the reference refused: $(grep -F "No existing checkpoints found" <<<"$out" | head -1)"
tb_assert_eq "$(sums "$E")" "$before" "the export's files after the refused incs"

tb_step "a non-empty target and a leftover <dir>.partial are refused"
mkdir "$W/busy"
echo keep >"$W/busy/mine"
export_fails "$W/busy is not empty" "$R" latest "$W/busy"
tb_assert_eq "$(files "$W/busy")" "mine " "the non-empty target after the refusal"
mkdir "$W/again.partial"
export_fails "$W/again.partial exists" "$R" latest "$W/again"
[ ! -e "$W/again" ] || tb_fail "a refused export made $W/again"
rmdir "$W/again.partial"

tb_step "two VMs in the repository: --vm is needed, and chooses"
head -c 1048576 /dev/urandom >"$W/other.raw"
"$RAW" import "$R" vbtest-other 7f0a6c1e-0000-4000-8000-0000000000aa vda="$W/other.raw" \
    >/dev/null
export_fails "choose one with --vm" "$R" latest "$W/two"
[ ! -e "$W/two" ] || tb_fail "a refused export made $W/two"
"$VIRTREPO" -q export --vm "$DOM" "$R" latest "$W/two"
compare_qcow_raw "$(ref_restore "$W/two" "$W/ref-two" -d vda)" "$W/vda.raw" "vda of --vm $DOM"

tb_step "a snapshot whose disk target is a path: refused, nothing written beside the target"
H=$W/hostile
"$VIRTREPO" init "$H" --chunk-size 1M >/dev/null
mkdir "$W/h"
"$RAW" import "$H" vbtest-hostile 7f0a6c1e-0000-4000-8000-0000000000cc \
    "../escaped=$W/other.raw" >/dev/null 2>&1
export_fails "disk target '../escaped' is not a file name" "$H" latest "$W/h/out"
tb_assert_eq "$(files "$W/h")" "" "the target's parent after the refusal"

tb_step "an incremental snapshot exports as a full of its point"
tb_qemu_io "$DOM" vda "write -P 0x66 6M 1M"
tb_snapshot_image "$DOM" vda "$W/vda2.raw"
vb_backup -d "$DOM" -l inc -o "$R"
tb_assert_eq "$("$VIRTREPO" snapshots "$R" --vm "$DOM" --json | jq -r '.[-1].level')" inc \
    "the newest snapshot's level"
"$VIRTREPO" -q export --vm "$DOM" "$R" latest "$W/inc"
assert_meta "$W/inc/vda.full.data" false virtnbdbackup.0 "" false
O=$W/vr-inc
"$VIRTRESTORE" -n -i "$W/inc" -o "$O" >"$O.log" 2>&1 || tb_fail "virtrestore: $(tail -5 "$O.log")"
compare_qcow_raw "$O/$(basename "${TB_IMAGES[0]}")" "$W/vda2.raw" "vda at the inc's point"
compare_qcow_raw "$O/$(basename "${TB_IMAGES[1]}")" "$W/vdb.raw" "vdb at the inc's point"

tb_step "a damaged chunk: the export fails naming it; no <dir>, no <dir>.partial"
# vdb's chunk at 1 MiB: 1 MiB of 0x33 (the object's payload follows its 24-byte header)
bad=$(head -c 1048576 /dev/zero | tr '\0' '\063' | sha256sum | cut -d' ' -f1)
[ -f "$R/chunks/${bad:0:2}/$bad" ] || tb_fail "no chunk $bad (vdb's 0x33 MiB)"
python3 - "$R/chunks/${bad:0:2}/$bad" <<'PY'
import sys
with open(sys.argv[1], "r+b") as f:
    f.seek(24 + 5)
    b = f.read(1)
    f.seek(24 + 5)
    f.write(bytes([b[0] ^ 0x40]))
PY
export_fails "chunk $bad" --vm "$DOM" "$R" "$ID" "$W/damaged"
[ ! -e "$W/damaged" ] || tb_fail "a failed export left $W/damaged: $(files "$W/damaged")"
[ ! -e "$W/damaged.partial" ] || tb_fail "a failed export left $W/damaged.partial"

tb_pass "a repository snapshot exported as a full that both restores read; it starts no chain"
