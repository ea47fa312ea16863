#!/bin/bash
# virtrepo import (virtrepo(1), IMPORT): existing stream chains of a running domain with two
# disks become repository snapshots, one per point.
#  - chains of full + 2 incs (a zeroed range, vdb grown): ours plain, ours -z, ours as one zip
#    per backup (-o -), and the reference virtnbdbackup's; each imported into one repository
#    of 1 MiB chunks;
#  - for every point: the snapshot is level full (the first) or inc with the point before as
#    parent, records no checkpoint, and `virtrestore -i REPO --snapshot ID` gives each disk
#    equal to `virtrestore -i CHAIN --until POINT` and to the disk as of that backup;
#  - a second import of a chain commits nothing and says every point was skipped;
#  - a damaged chain (an inc's data changed, then an inc cut short): the error names the
#    file, nothing is committed for that point and later; the mended chain's import skips
#    the points in already and adds the rest;
#  - (debug builds) an import killed at its first commit (chunks and indexes in, no
#    manifest) leaves no snapshot, `virtrepo check` passes, the next import does every point;
#  - a backup into the repository after the imports reads every disk in full (the import
#    said so) and restores to the disks;
#  - a -l copy of a shut-off UEFI domain: a "copy" snapshot whose loader and nvram blobs
#    restore (virtrestore -c) byte-identical.
set -euo pipefail

# shellcheck source=../lib/testbed.sh
source "$(dirname "${BASH_SOURCE[0]}")/../lib/testbed.sh"
# shellcheck source=../lib/chain.sh
source "$(dirname "${BASH_SOURCE[0]}")/../lib/chain.sh"
tb_init

VIRTREPO="$VB_BUILD_DIR/src/virtrepo/virtrepo"
VR="$VB_BUILD_DIR/src/restore/virtrestore"
for t in "$VIRTREPO" "$VR" "$VIRTBACKUP"; do [ -x "$t" ] || tb_fail "$t not built"; done
command -v virtnbdbackup >/dev/null || tb_fail "the reference virtnbdbackup is not installed"
W=$TB_WORKDIR
R=$W/repo
MiB=1048576
export TMPDIR=$W/tmp
mkdir -p "$TMPDIR"

tb_create_domain imp 16M 4M
DOM=$TB_DOMAIN
UUID=$(tb_virsh domuuid "$DOM")
VDA=$(basename "${TB_IMAGES[0]}")
VDB=$(basename "${TB_IMAGES[1]}")
"$VIRTREPO" init "$R" --chunk-size 1M >/dev/null

# disks NAME: the disks as of now into $W/NAME.vd[ab].raw
disks() {
    tb_snapshot_image "$DOM" vda "$W/$1.vda.raw"
    tb_snapshot_image "$DOM" vdb "$W/$1.vdb.raw"
}
# ref_backup LEVEL DIR [ARGS...]: the reference's backup (it exits 1 when it logged an error)
ref_backup() {
    local level=$1 dir=$2 out rc=0
    shift 2
    out=$(virtnbdbackup -d "$DOM" -l "$level" -o "$dir" -S "$W" -f "$W/backup.sock" -n "$@" 2>&1) ||
        rc=$?
    if [ "$rc" -ne 0 ]; then
        printf '%s\n' "$out" | tail -n 30 >&2
        tb_fail "virtnbdbackup -l $level -o $dir $* exited $rc"
    fi
}
# chain NAME KIND: full, change, inc, change (a zeroed range, vdb grown), inc; KIND is dir,
# z (ours -z), zip (ours, -o - per backup) or ref. The disks as of each backup in
# $W/NAME.{0,1,2}.vd[ab].raw. vdb starts at 4 MiB each time (the chain before grew it).
chain() {
    local name=$1 kind=$2 dir=$W/$1 i
    local -a levels=(full inc inc)
    mkdir -p "$dir"
    tb_virsh blockresize "$DOM" vdb 4M >/dev/null 2>&1 || true
    for i in 0 1 2; do
        case $i in
        0)
            tb_qemu_io "$DOM" vda "write -P 0x1$((RANDOM % 9)) 0 6M"
            tb_qemu_io "$DOM" vdb "write -P 0x2$((RANDOM % 9)) 0 1M"
            ;;
        1)
            tb_qemu_io "$DOM" vda "write -P 0x33 3100k 64k"
            tb_qemu_io "$DOM" vda "write -P 0x44 12M 4k"
            ;;
        2)
            tb_qemu_io "$DOM" vda "write -z 0 1M"
            tb_virsh blockresize "$DOM" vdb 6M >/dev/null
            tb_qemu_io "$DOM" vdb "write -P 0x55 5M 64k"
            ;;
        esac
        disks "$name.$i"
        case $kind in
        dir) vb_backup -d "$DOM" -l "${levels[$i]}" -o "$dir" ;;
        z) vb_backup -d "$DOM" -l "${levels[$i]}" -z -o "$dir" ;;
        zip)
            (cd "$dir" && "$VIRTBACKUP" -n -d "$DOM" -l "${levels[$i]}" -o - >"$dir/$i.zip") ||
                tb_fail "virtbackup -l ${levels[$i]} -o - failed"
            ;;
        ref) ref_backup "${levels[$i]}" "$dir" ;;
        esac
    done
    tb_log "chain $name ($kind): full + 2 incs"
}
input_of() {
    case $1 in
    zip) echo "$W/zip/0.zip,$W/zip/1.zip,$W/zip/2.zip" ;;
    *) echo "$W/$1" ;;
    esac
}
snapshot_count() { find "$R/snapshots/$UUID" -name '*.json' 2>/dev/null | wc -l; }

# import_check NAME: imports chain NAME; each point's snapshot against the chain's restore
# --until the point and the disks as of its backup
import_check() {
    local name=$1 in out rc=0 k point id prev="" m
    in=$(input_of "$name")
    "$VIRTREPO" import "$in" "$R" --json >"$W/$name.import.json" 2>"$W/$name.import.err" || rc=$?
    sed 's/^/    | /' "$W/$name.import.err" >&2
    [ "$rc" -eq 0 ] || tb_fail "virtrepo import $name exited $rc"
    tb_assert_eq "3 0" "$(jq -r '"\(.imported) \(.skipped)"' "$W/$name.import.json")" \
        "$name: points imported and skipped"
    grep -q "the next backup of $DOM into the repository reads every disk in full" \
        "$W/$name.import.err" || tb_fail "$name: the import did not say the next backup is full"
    for k in 0 1 2; do
        point=virtnbdbackup.$k
        tb_assert_eq "$point" "$(jq -r ".points[$k].point" "$W/$name.import.json")" "$name: point $k"
        id=$(jq -r ".points[$k].snapshot" "$W/$name.import.json")
        m=$R/snapshots/$UUID/$id.json
        [ -f "$m" ] || tb_fail "$name: no manifest $m"
        if [ "$k" = 0 ]; then
            tb_assert_eq "full null" "$(jq -r '"\(.level) \(.parent)"' "$m")" "$name: the full's level"
        else
            tb_assert_eq "inc $prev" "$(jq -r '"\(.level) \(.parent)"' "$m")" "$name: point $k's level"
        fi
        tb_assert_eq "null $DOM" "$(jq -r '"\(.checkpoint) \(.vm)"' "$m")" "$name: point $k's checkpoint"
        jq -e '.source | startswith("'"$point"'@")' "$m" >/dev/null ||
            tb_fail "$name: point $k's manifest has no source"
        out=$W/r.$name.$k
        rm -rf "$out.repo" "$out.chain"
        "$VR" -i "$R" -o "$out.repo" -n --snapshot "$id" || tb_fail "virtrestore --snapshot $id failed"
        "$VR" -i "$in" -o "$out.chain" -n --until "$point" ||
            tb_fail "virtrestore -i $in --until $point failed"
        for d in vda vdb; do
            local img=$VDA
            [ $d = vda ] || img=$VDB
            qemu-img compare "$out.repo/$img" "$out.chain/$img" >/dev/null ||
                tb_fail "$name: $d of snapshot $id differs from the chain's restore --until $point"
            qemu-img compare -F raw "$out.repo/$img" "$W/$name.$k.$d.raw" >/dev/null ||
                tb_fail "$name: $d of snapshot $id differs from the disk as of $point"
        done
        rm -rf "$out.repo" "$out.chain"
        tb_log "identical: $name $point: snapshot $id == restore --until $point == the disks then"
        prev=$id
    done
    tb_assert_eq $((6 * MiB)) "$(jq '.disks[] | select(.target == "vdb") | .virtual_size' "$m")" \
        "$name: vdb's size at the last point"
}

tb_step "our chain, plain: imported, every point restores as the chain --until it"
chain dir dir
import_check dir

tb_step "a second import skips every point"
before=$(snapshot_count)
"$VIRTREPO" import "$W/dir" "$R" --json >"$W/again.json" 2>"$W/again.err" ||
    tb_fail "the second import failed: $(cat "$W/again.err")"
sed 's/^/    | /' "$W/again.err" >&2
tb_assert_eq "0 3" "$(jq -r '"\(.imported) \(.skipped)"' "$W/again.json")" "the second import"
tb_assert_eq "$before" "$(snapshot_count)" "snapshots after the second import"
tb_assert_eq 3 "$(grep -c "imported already as snapshot .*, skipped" "$W/again.err")" \
    "skipped lines of the second import"

tb_step "our chain, -z"
chain z z
import_check z

tb_step "our chain as zips (-o -)"
chain zip zip
ls "$W"/zip/*.data 2>/dev/null && tb_fail "data files outside the zips: the test would not read zips"
import_check zip

tb_step "the reference virtnbdbackup's chain"
chain ref ref
import_check ref

tb_step "a damaged chain: nothing committed for the damaged point and later"
R2=$W/repo2
"$VIRTREPO" init "$R2" --chunk-size 1M >/dev/null
cp -a "$W/dir" "$W/bad"
inc1=$W/bad/vda.inc.virtnbdbackup.1.data
# a byte in the middle of the file, inside the 64 KiB written at 3100k: only the .chksum
# can tell
off=$(($(stat -c %s "$inc1") / 2))
printf '\x5a' | dd of="$inc1" bs=1 seek="$off" conv=notrunc status=none
rc=0
"$VIRTREPO" import "$W/bad" "$R2" 2>"$W/bad.err" || rc=$?
sed 's/^/    | /' "$W/bad.err" >&2
tb_assert_eq 1 "$rc" "import of the damaged chain"
tb_assert_eq 1 "$(grep -c "import stopped" "$W/bad.err")" "error lines"
grep "import stopped" "$W/bad.err" | grep -q "vda.inc.virtnbdbackup.1.data" ||
    tb_fail "the error does not name the damaged file"
tb_assert_eq 1 "$(find "$R2/snapshots" -name '*.json' | wc -l)" "snapshots after the damaged inc1"
cp "$W/dir/vda.inc.virtnbdbackup.1.data" "$inc1"
truncate -s -100 "$W/bad/vdb.inc.virtnbdbackup.2.data"
rc=0
"$VIRTREPO" import "$W/bad" "$R2" 2>"$W/bad2.err" || rc=$?
sed 's/^/    | /' "$W/bad2.err" >&2
tb_assert_eq 1 "$rc" "import of the chain with a cut inc2"
grep "import stopped" "$W/bad2.err" | grep -q "vdb.inc.virtnbdbackup.2.data" ||
    tb_fail "the error does not name the cut file"
grep -q "imported already as snapshot .*, skipped" "$W/bad2.err" || tb_fail "the full was not skipped"
tb_assert_eq 2 "$(find "$R2/snapshots" -name '*.json' | wc -l)" "snapshots after the cut inc2"
cp "$W/dir/vdb.inc.virtnbdbackup.2.data" "$W/bad/vdb.inc.virtnbdbackup.2.data"
"$VIRTREPO" import "$W/bad" "$R2" --json >"$W/mended.json" 2>"$W/mended.err" ||
    tb_fail "the mended chain's import failed: $(cat "$W/mended.err")"
tb_assert_eq "1 2" "$(jq -r '"\(.imported) \(.skipped)"' "$W/mended.json")" "the mended chain's import"
id=$(jq -r '.points[2].snapshot' "$W/mended.json")
rm -rf "$W/r.mended"
"$VR" -i "$R2" -o "$W/r.mended" -n --snapshot "$id" || tb_fail "virtrestore --snapshot $id failed"
qemu-img compare -F raw "$W/r.mended/$VDA" "$W/dir.2.vda.raw" >/dev/null ||
    tb_fail "vda of the mended chain's last point differs"
qemu-img compare -F raw "$W/r.mended/$VDB" "$W/dir.2.vdb.raw" >/dev/null ||
    tb_fail "vdb of the mended chain's last point differs"
"$VIRTREPO" check "$R2" >/dev/null || tb_fail "virtrepo check of the second repository failed"

if strings "$VIRTREPO" | grep -x VIRTBACKUP_DEBUG_STALL >/dev/null; then
    tb_step "an import killed at its first commit: no snapshot, the next import does all"
    R3=$W/repo3
    "$VIRTREPO" init "$R3" --chunk-size 1M >/dev/null
    STALL=$W/commit.gate
    touch "$STALL"
    VIRTBACKUP_DEBUG_STALL=commit=$STALL "$VIRTREPO" import "$W/dir" "$R3" >"$W/killed.out" 2>&1 &
    PID=$!
    tb_wait_for "$PID" test -e "$STALL.stalled" ||
        tb_fail "the import never reached its commit: $(cat "$W/killed.out")"
    kill -9 "$PID"
    wait "$PID" || true
    rm -f "$STALL" "$STALL.stalled"
    [ -n "$(find "$R3/indexes" -type f)" ] || tb_fail "the killed import put no index: not killed at its commit"
    tb_assert_eq 0 "$(find "$R3/snapshots" -name '*.json' 2>/dev/null | wc -l)" "snapshots after the kill"
    "$VIRTREPO" check "$R3" >/dev/null || tb_fail "virtrepo check failed after the killed import"
    "$VIRTREPO" import "$W/dir" "$R3" --json >"$W/after_kill.json" 2>/dev/null ||
        tb_fail "the import after the kill failed"
    tb_assert_eq "3 0" "$(jq -r '"\(.imported) \(.skipped)"' "$W/after_kill.json")" "the import after the kill"
else
    tb_log "release build (no VIRTBACKUP_DEBUG_STALL): the kill at the commit is skipped"
fi

tb_step "a backup into the repository after the imports reads every disk in full"
tb_qemu_io "$DOM" vda "write -P 0x77 8M 64k"
disks after
"$VIRTBACKUP" -n -d "$DOM" -l auto -o "$R" --json="$W/after.json" >"$W/after.out" 2>&1 ||
    tb_fail "virtbackup -l auto into the repository failed: $(cat "$W/after.out")"
sed 's/^/    | /' "$W/after.out" >&2
id=$(jq -r .snapshot "$W/after.json")
tb_assert_eq full "$(jq -r .level "$R/snapshots/$UUID/$id.json")" "the backup's level"
r=$(jq '.disks[] | select(.disk == "vda") | .bytes_read' "$W/after.json")
# vda holds 5 MiB and 64 KiB of data (its first MiB zeroed): every byte of it read
[ "$r" -ge $((5 * MiB + 64 * 1024)) ] || tb_fail "the backup read $r bytes of vda, not all its data"
tb_assert_eq 0 "$(jq '[.disks[] | .chunks_copied] | add' "$W/after.json")" \
    "chunks the backup took from an imported snapshot"
rm -rf "$W/r.after"
"$VR" -i "$R" -o "$W/r.after" -n --snapshot "$id" || tb_fail "virtrestore --snapshot $id failed"
qemu-img compare -F raw "$W/r.after/$VDA" "$W/after.vda.raw" >/dev/null || tb_fail "vda of the backup differs"
qemu-img compare -F raw "$W/r.after/$VDB" "$W/after.vdb.raw" >/dev/null || tb_fail "vdb of the backup differs"
"$VIRTREPO" check "$R" >/dev/null || tb_fail "virtrepo check failed"

tb_step "a copy of a shut-off UEFI domain: loader and nvram imported as blobs"
LOADER=/usr/share/OVMF/OVMF_CODE_4M.fd
VARS=/usr/share/OVMF/OVMF_VARS_4M.fd
[ -f "$LOADER" ] && [ -f "$VARS" ] || tb_fail "OVMF is not installed ($LOADER, $VARS)"
UDOM="vbtest-$$-impuefi"
UIMG=$W/impuefi-vda.qcow2
NVRAM=$W/impuefi_VARS.fd
qemu-img create -q -f qcow2 -o compat=1.1 "$UIMG" 8M
qemu-io -f qcow2 "$UIMG" -c "write -P 0x7e 0 2M" >/dev/null
qemu-img convert -f qcow2 -O raw "$UIMG" "$W/uefi.raw"
cp "$VARS" "$NVRAM"
head -c 4096 /dev/urandom | dd of="$NVRAM" bs=4096 seek=10 conv=notrunc status=none
tb_uefi_domain_xml "$UDOM" "$LOADER" "$NVRAM" "$UIMG" >"$W/impuefi.xml"
# undefine refuses a domain with an nvram unless told what to do with it
tb_on_exit "tb_virsh undefine --nvram $UDOM"
tb_virsh define "$W/impuefi.xml" >/dev/null
vb_backup -d "$UDOM" -l copy -o "$W/uefi"
R4=$W/repo4
"$VIRTREPO" init "$R4" --chunk-size 1M >/dev/null
"$VIRTREPO" import "$W/uefi" "$R4" --json >"$W/uefi.json" 2>"$W/uefi.err" ||
    tb_fail "the import of the copy failed: $(cat "$W/uefi.err")"
id=$(jq -r '.points[0].snapshot' "$W/uefi.json")
m=$R4/snapshots/$(tb_virsh domuuid "$UDOM")/$id.json
jq -e --arg loader "$LOADER" --arg nvram "$NVRAM" '.level == "copy" and (.blobs | length) == 2
    and (.blobs | map(select(.kind == "loader")) | .[0].path == $loader)
    and (.blobs | map(select(.kind == "nvram")) | .[0].path == $nvram)' "$m" >/dev/null ||
    tb_fail "the copy's snapshot: $(jq -c '{level, blobs}' "$m")"
rm -rf "$W/r.uefi"
"$VR" -n -i "$R4" -o "$W/r.uefi" -c >"$W/r.uefi.log" 2>&1 ||
    tb_fail "virtrestore -c of the imported copy: $(tail -5 "$W/r.uefi.log")"
qemu-img compare -F raw "$W/r.uefi/$(basename "$UIMG")" "$W/uefi.raw" >/dev/null ||
    tb_fail "the imported copy's disk differs"
tb_assert_eq "$(sha256sum <"$LOADER")" "$(sha256sum <"$W/r.uefi/$(basename "$LOADER")")" "restored loader"
tb_assert_eq "$(sha256sum <"$NVRAM")" "$(sha256sum <"$W/r.uefi/$(basename "$NVRAM")")" "restored nvram"
tb_log "identical: the imported copy's disk, loader and nvram"

tb_pass "imports of ours (plain, -z, zips) and the reference's chains restore every point"
