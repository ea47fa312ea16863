#!/bin/bash
# virtrestore -i REPO (virtrestore(1), REPOSITORY INPUT): a real domain's two disks imported
# as raw images into a repository (tests/tools/repo-raw) at two points, the domain's XML and
# saved qcow2 options in the manifest; restores of the latest snapshot, of --snapshot ID, of
# --until a local time between the two and of --until a checkpoint name, each disk compared
# with the image it came from; -c writes a config that points at the restored images; -d
# restores one disk; errors name what was asked and list what exists; with a second VM in
# the repository --vm is needed, and works, unless --snapshot ID names the snapshot (an id
# two VMs share is refused, listing them); a damaged chunk gives exit 1 naming it, no image
# and no .partial, and -o verify names the same chunk.
set -euo pipefail

# shellcheck source=../lib/testbed.sh
source "$(dirname "${BASH_SOURCE[0]}")/../lib/testbed.sh"
tb_init

VIRTREPO="$VB_BUILD_DIR/src/virtrepo/virtrepo"
VR="$VB_BUILD_DIR/src/restore/virtrestore"
for t in "$VIRTREPO" "$VR"; do [ -x "$t" ] || tb_fail "$t not built"; done
RAW=$(tb_tool repo-raw)
W=$TB_WORKDIR
R=$W/repo
export TMPDIR=$W/tmp
mkdir -p "$TMPDIR"

# same_disk IMAGE RAW WHAT: the restored image (any format) holds the raw file's content
same_disk() {
    local out
    out=$(qemu-img compare -F raw "$1" "$2" 2>&1) || tb_fail "$3: $1 differs from $2: $out"
    tb_log "identical: $1 == $2 ($3)"
}
# no_leftovers DIR: nothing but what is listed after it (no image, no .partial)
only_files() {
    local dir="$1" got want
    shift
    got=$(cd "$dir" 2>/dev/null && find . -mindepth 1 -printf '%P\n' | sort | tr '\n' ' ')
    want=$(printf '%s\n' "$@" | sed '/^$/d' | sort | tr '\n' ' ')
    tb_assert_eq "$got" "$want" "files in $dir"
}

tb_step "a domain with two disks, its data at two points"
tb_create_domain rr 24M 9M
DOM=$TB_DOMAIN
UUID=$(tb_virsh domuuid "$DOM")
VDA=$(basename "${TB_IMAGES[0]}")
VDB=$(basename "${TB_IMAGES[1]}")
tb_virsh dumpxml --inactive "$DOM" >"$W/dom.xml"
# the image options of vda's original: a cluster size qemu-img would not choose by itself
qemu-img create -q -f qcow2 -o compat=1.1,cluster_size=131072 "$W/opts.qcow2" 24M
qemu-img info --output=json "$W/opts.qcow2" >"$W/vda.qcow.json"
tb_qemu_io "$DOM" vda "write -P 0x5a 0 3M"
tb_qemu_io "$DOM" vda "write -P 0x11 5M 64k"
tb_qemu_io "$DOM" vda "write -P 0x77 20M 1M"
tb_qemu_io "$DOM" vdb "write -P 0x33 1M 2M"
tb_snapshot_image "$DOM" vda "$W/vda1.raw"
tb_snapshot_image "$DOM" vdb "$W/vdb1.raw"

"$VIRTREPO" init "$R" --chunk-size 1M
IMPORT=("$RAW" import --domain-xml "$W/dom.xml" --qcow-json "vda=$W/vda.qcow.json")
ID1=$("${IMPORT[@]}" --checkpoint virtnbdbackup.0 "$R" "$DOM" "$UUID" vda="$W/vda1.raw" \
    vdb="$W/vdb1.raw")
# snapshot ids carry their time to the second: a time strictly between the two snapshots
sleep 1.1
BETWEEN=$(date '+%Y-%m-%d %H:%M:%S')
BEFORE=$(date -d '-1 hour' '+%Y-%m-%d %H:%M')
sleep 1.1
tb_qemu_io "$DOM" vda "write -P 0x99 2M 2M"
tb_qemu_io "$DOM" vda "write -z 20M 1M"
tb_qemu_io "$DOM" vdb "write -P 0x44 8M 512k"
tb_snapshot_image "$DOM" vda "$W/vda2.raw"
tb_snapshot_image "$DOM" vdb "$W/vdb2.raw"
! cmp -s "$W/vda1.raw" "$W/vda2.raw" || tb_fail "the two points of vda must differ"
ID2=$("${IMPORT[@]}" --checkpoint virtnbdbackup.1 "$R" "$DOM" "$UUID" vda="$W/vda2.raw" \
    vdb="$W/vdb2.raw")
tb_log "snapshots $ID1, $ID2; between them: $BETWEEN"

tb_step "latest (the default), with -c and --json"
"$VR" -i "$R" -o "$W/latest" -n -c --json="$W/latest.json"
same_disk "$W/latest/$VDA" "$W/vda2.raw" "latest vda"
same_disk "$W/latest/$VDB" "$W/vdb2.raw" "latest vdb"
cs=$(qemu-img info --output=json "$W/latest/$VDA" | jq '."cluster-size"')
tb_assert_eq "$cs" 131072 "cluster size of the restored vda (the saved options)"
only_files "$W/latest" "$VDA" "$VDB" vmconfig.xml
python3 - "$W/latest/vmconfig.xml" "$W/latest" "$DOM" <<'PY' || tb_fail "adjusted config wrong"
import sys, xml.etree.ElementTree as ET
root = ET.parse(sys.argv[1]).getroot()
assert root.findtext("name") == "restore_" + sys.argv[3], root.findtext("name")
assert root.find("uuid") is None
srcs = sorted(d.find("source").get("file") for d in root.iter("disk"))
assert all(s.startswith(sys.argv[2] + "/") for s in srcs) and len(srcs) == 2, srcs
PY
jq -e --arg cp virtnbdbackup.1 '.exit_code == 0 and ([.disks[].disk] | sort) == ["vda","vdb"]
    and all(.disks[]; .checkpoint == $cp and .status == "ok")' "$W/latest.json" >/dev/null ||
    tb_fail "--json summary: $(cat "$W/latest.json")"

tb_step "--snapshot ID, --until a time between the snapshots, --until a checkpoint"
"$VR" -i "$R" -o "$W/first" -n --snapshot "$ID1"
same_disk "$W/first/$VDA" "$W/vda1.raw" "--snapshot $ID1 vda"
same_disk "$W/first/$VDB" "$W/vdb1.raw" "--snapshot $ID1 vdb"
"$VR" -i "$R" -o "$W/until" -n --until "$BETWEEN"
same_disk "$W/until/$VDA" "$W/vda1.raw" "--until '$BETWEEN' vda"
same_disk "$W/until/$VDB" "$W/vdb1.raw" "--until '$BETWEEN' vdb"
"$VR" -i "$R" -o "$W/cp" -n --until virtnbdbackup.0 -d vda
same_disk "$W/cp/$VDA" "$W/vda1.raw" "--until virtnbdbackup.0 -d vda"
only_files "$W/cp" "$VDA" vmconfig.xml
"$VR" -i "$R" -o "$W/snapl" -n --snapshot latest -d vdb
same_disk "$W/snapl/$VDB" "$W/vdb2.raw" "--snapshot latest -d vdb"

tb_step "what does not exist is named, with what does"
out=$("$VR" -i "$R" -o "$W/e1" -n --until "$BEFORE" 2>&1) && tb_fail "--until before every snapshot"
grep -q -- "--until $BEFORE: no snapshot of $DOM .*$ID1.*$ID2" <<<"$out" || tb_fail "message: $out"
out=$("$VR" -i "$R" -o "$W/e2" -n --snapshot 20200101T000000Z-00000000 2>&1) && tb_fail "bad id"
grep -q "20200101T000000Z-00000000: no such snapshot of $DOM .*$ID2" <<<"$out" ||
    tb_fail "message: $out"
out=$("$VR" -i "$R" -o "$W/e3" -n --until nosuch.7 2>&1) && tb_fail "unknown checkpoint"
grep -q "nosuch.7: not a time .*virtnbdbackup.1, virtnbdbackup.0" <<<"$out" ||
    tb_fail "message: $out"
out=$("$VR" -i "$R" -o "$W/e4" -n -d vdz 2>&1) && tb_fail "unknown disk"
grep -q "vdz: snapshot $ID2 has no such disk; it has vda, vdb" <<<"$out" || tb_fail "message: $out"
tb_expect_fail "--snapshot with a directory" "$VR" -i "$W" -o "$W/e5" --snapshot latest
for d in e1 e2 e3 e4; do [ ! -e "$W/$d" ] || only_files "$W/$d"; done

tb_step "a second VM in the repository: --vm is needed"
"$RAW" import "$R" other 66666666-7777-8888-9999-aaaaaaaaaaaa vda="$W/vdb1.raw" >/dev/null
out=$("$VR" -i "$R" -o "$W/e6" -n 2>&1) && tb_fail "a restore without --vm"
grep -q "2 VMs: .*$DOM ($UUID).*other (66666666-.*choose one with --vm" <<<"$out" ||
    tb_fail "message: $out"
out=$("$VR" -i "$R" -o "$W/e7" -n --vm nosuch 2>&1) && tb_fail "--vm of no VM"
grep -q -- "--vm nosuch: .* no snapshot of such a VM; it holds $DOM" <<<"$out" ||
    tb_fail "message: $out"
"$VR" -i "$R" -o "$W/vm2" -n --vm other
same_disk "$W/vm2/vda" "$W/vdb1.raw" "--vm other"
"$VR" -i "$R" -o "$W/vm1" -n --vm "$UUID" -d vda
same_disk "$W/vm1/$VDA" "$W/vda2.raw" "--vm UUID"
"$VR" -i "$R" --vm "$DOM" -o verify

tb_step "--snapshot ID names its VM: no --vm needed; an id two VMs share is refused"
ID3=$("$RAW" import "$R" other 66666666-7777-8888-9999-aaaaaaaaaaaa vda="$W/vda1.raw")
"$VR" -i "$R" -o "$W/byid" -n --snapshot "$ID3"
same_disk "$W/byid/vda" "$W/vda1.raw" "--snapshot $ID3 of other, no --vm"
"$VR" -i "$R" -o "$W/byid1" -n --snapshot "$ID1" -d vdb
same_disk "$W/byid1/$VDB" "$W/vdb1.raw" "--snapshot $ID1 of $DOM, no --vm"
out=$("$VR" -i "$R" -o "$W/e8" -n --snapshot 20200101T000000Z-00000000 2>&1) &&
    tb_fail "an id no VM has"
grep -q "20200101T000000Z-00000000: no snapshot of that id in $R" <<<"$out" ||
    tb_fail "message: $out"
# a third VM given a copy of $ID1's manifest: one id, two VMs (only an accident makes this)
TWIN=bbbbbbbb-cccc-dddd-eeee-ffffffffffff
mkdir -p "$R/snapshots/$TWIN"
jq --arg u "$TWIN" '.uuid = $u | .vm = "twin"' "$R/snapshots/$UUID/$ID1.json" \
    >"$R/snapshots/$TWIN/$ID1.json"
out=$("$VR" -i "$R" -o "$W/e9" -n --snapshot "$ID1" 2>&1) && tb_fail "an id of two VMs"
# listed in the order of their uuids
for vm in "$DOM ($UUID)" "twin ($TWIN)"; do
    grep -qF -- "$vm" <<<"$out" || tb_fail "message without $vm: $out"
done
grep -q -- "--snapshot $ID1: 2 VMs in $R have a snapshot of that id: .*choose one with --vm" \
    <<<"$out" || tb_fail "message: $out"
"$VR" -i "$R" -o "$W/twin" -n --snapshot "$ID1" --vm twin -d vdb
same_disk "$W/twin/$VDB" "$W/vdb1.raw" "--snapshot $ID1 --vm twin"
rm -r "$R/snapshots/$TWIN"
for d in e8 e9; do [ ! -e "$W/$d" ] || only_files "$W/$d"; done

tb_step "a damaged chunk: exit 1 naming it, no image, no .partial; verify finds it"
# vda's chunk at 2 MiB is in the latest snapshot only (0x99); its stored payload's last byte
HEX=$(dd if="$W/vda2.raw" bs=1M skip=2 count=1 status=none | sha256sum | cut -c1-64)
CHUNK=$R/chunks/${HEX:0:2}/$HEX
[ -f "$CHUNK" ] || tb_fail "$CHUNK missing"
size=$(stat -c %s "$CHUNK")
byte=$(dd if="$CHUNK" bs=1 skip=$((size - 1)) count=1 status=none | od -An -tu1 | tr -d ' ')
printf "\\x$(printf %02x $((byte ^ 1)))" | dd of="$CHUNK" bs=1 seek=$((size - 1)) conv=notrunc \
    status=none
rc=0
out=$("$VR" -i "$R" --vm "$DOM" -o "$W/bad" -n -d vda 2>&1) || rc=$?
tb_assert_eq "$rc" 1 "exit status of a restore with a damaged chunk"
# vda's 3 MiB chunk is the same 0x99 content: the readers fetch both at once, either may
# fail first
grep -Eq "vda: .*disk offset (2097152|3145728): chunk $HEX" <<<"$out" || tb_fail "message: $out"
only_files "$W/bad"
rc=0
out=$("$VR" -i "$R" --vm "$DOM" -o verify 2>&1) || rc=$?
tb_assert_eq "$rc" 1 "exit status of -o verify with a damaged chunk"
grep -q "vda: offset 2097152: chunk $HEX" <<<"$out" || tb_fail "verify message: $out"
grep -q "vdb: ok" <<<"$out" || tb_fail "verify of the sound vdb: $out"
# the first snapshot does not use that chunk: still restorable and sound
"$VR" -i "$R" --vm "$DOM" --snapshot "$ID1" -o verify
"$VR" -i "$R" --vm "$DOM" --snapshot "$ID1" -o "$W/first2" -n -d vda
same_disk "$W/first2/$VDA" "$W/vda1.raw" "the first snapshot beside a damaged chunk"

tb_pass "virtrestore -i REPO: latest, --snapshot, --until time and checkpoint, -c, -d, --vm, damage"
