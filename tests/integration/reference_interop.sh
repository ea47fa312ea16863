#!/bin/bash
# Reference interop: the reference tool virtnbdbackup 1.9.15 backs up a real running
# (paused) domain; our stream tools must read, apply and rewrite its streams, and the
# reference's virtnbdrestore must accept streams written by our writer.
#
# Disk content at every backup is kept as a raw snapshot (full.raw, inc1.raw, ...)
# taken through qemu-img, independently of both backup tools; every restore result is
# compared with those snapshots.
#
#   A: uncompressed chain  full -> inc1 -> inc2
#   B: compressed (-z, lz4 level 2) chain  full -> inc1   (taken after A, new base)
#
# virtmap then serves both chains at every point in time, compared with the snapshots.
#
# Our tools (built by cmake): $VB_BUILD_DIR/tests/{stream-check,stream-apply,stream-rewrite}.
# Set VB_REFERENCE_ONLY=1 to run only the reference part (when the tools are not built).
set -euo pipefail

# shellcheck source=../lib/testbed.sh
source "$(dirname "${BASH_SOURCE[0]}")/../lib/testbed.sh"
tb_init

MiB=$((1024 * 1024))
W="$TB_WORKDIR"
A="$W/A"
B="$W/B"
SNAP="$W/snap"
mkdir -p "$SNAP"

# ---------------------------------------------------------------------------
# helpers

# ref_backup LEVEL DIR [ARGS...]: one run of the reference backup. virtnbdbackup 1.9.15
# exits 1 if it logged an error; its log (in DIR) is shown on failure.
ref_backup() {
    local level="$1" dir="$2"
    shift 2
    local out rc=0
    # -S is --scratchdir in 1.9.15; socket and scratch file live in our work dir,
    # which qemu (libvirt-qemu, group kvm) can write to.
    out=$(virtnbdbackup -d "$DOM" -l "$level" -o "$dir" -S "$W" -f "$W/backup.sock" -n "$@" 2>&1) || rc=$?
    if [ "$rc" -ne 0 ]; then
        printf '%s\n' "$out" | tail -n 30 >&2
        tb_fail "virtnbdbackup -l $level -o $dir $* exited $rc"
    fi
    tb_log "virtnbdbackup -l $level $* -> $dir: ok"
}

# Independent frame lister for reference files (does not use our code): prints
# "kind start length" per frame, and for compressed files the trailer JSON last.
py_frames() {
    python3 - "$1" <<'EOF'
import json, sys
f = open(sys.argv[1], "rb")
hdr = f.read(40)
assert hdr[:4] == b"meta", hdr
meta = json.loads(f.read(int(hdr[22:38], 16)))
assert f.read(2) == b"\r\n"
comp = meta["compressed"] is not False
trailer = None
if comp:
    f.seek(-40, 2)
    tl = f.read(40)
    assert tl[:4] == b"comp", tl
    n = int(tl[22:38], 16)
    f.seek(-40 - 2 - n, 2)
    trailer = json.loads(f.read(n))
    f.seek(40 + int(hdr[22:38], 16) + 2)
i = 0
while True:
    h = f.read(40)
    kind, start, length = h[:4].decode(), int(h[5:21], 16), int(h[22:38], 16)
    print(kind, start, length)
    if kind == "stop":
        break
    if kind == "data":
        if comp:
            t = trailer[i]
            f.seek(t if isinstance(t, int) else int(list(t.keys())[0]), 1)
        else:
            f.seek(length, 1)
        assert f.read(2) == b"\r\n"
        i += 1
if comp:
    print("trailer", json.dumps(trailer))
EOF
}

# expect_files DIR NAME...: the set of files (not dirs) in DIR is exactly NAME...
expect_files() {
    local dir="$1"
    shift
    local got want
    got=$(cd "$dir" && find . -maxdepth 1 -type f ! -name 'backup.*.log' -printf '%f\n' | sort | xargs)
    want=$(printf '%s\n' "$@" | sort | xargs)
    tb_assert_eq "$want" "$got" "files in $dir (logs excluded)"
}

adler32() {
    python3 -c 'import sys, zlib
a = 1
with open(sys.argv[1], "rb") as f:
    for b in iter(lambda: f.read(1 << 20), b""):
        a = zlib.adler32(b, a)
print(a)' "$1"
}

# ref_restore IN OUT [ARGS...]: reference restore. virtnbdrestore 1.9.15 can exit 0
# after a failed disk (it only logs an error): check its log too. Prints the image path.
ref_restore() {
    local in="$1" out="$2"
    shift 2
    local log="$out.log" rc=0
    virtnbdrestore -i "$in" -o "$out" -n -f "$W/restore.sock" -L "$log" "$@" >"$out.stdout" 2>&1 || rc=$?
    if [ "$rc" -ne 0 ] || grep -qE 'ERROR|CRITICAL|FATAL|Traceback' "$log" "$out.stdout"; then
        tail -n 30 "$out.stdout" >&2
        tb_fail "virtnbdrestore -i $in -o $out $* failed (exit $rc)"
    fi
    # The image is named after the source file in the saved domain XML.
    local img
    img="$out/$(basename "${TB_IMAGES[0]}")"
    [ -f "$img" ] || tb_fail "virtnbdrestore made no $img (files: $(ls "$out"))"
    # virtnbdrestore returns while its qemu-nbd (--fork, exits when the client has
    # gone) may still hold the image's write lock: wait for qemu-nbd to let go.
    TB_WAIT_LIMIT=120 tb_wait_for "" eval 'qemu-img info "$img" >/dev/null 2>&1' ||
        tb_fail "$img still locked 120 s after virtnbdrestore ended"
    echo "$img"
}

compare_qcow_raw() {
    local out
    out=$(qemu-img compare -f qcow2 -F raw "$1" "$2" 2>&1) ||
        tb_fail "$3: $1 differs from $2: $out"
    tb_log "identical: $(basename "$1") == $(basename "$2") ($3)"
}

# ---------------------------------------------------------------------------
tb_step "create a paused domain with a 256 MiB qcow2 disk"
tb_create_domain interop 256M
DOM="$TB_DOMAIN"

tb_step "full state: small extents, a zeroed range, a 70 MiB data region (> 2 x 32 MiB)"
io() { tb_qemu_io "$DOM" vda "$1"; }
io "write -P 0x11 0 64k"
io "write -P 0x12 1M 192k"
io "write -P 0x13 5M 4k"               # sub-cluster write: extent rounds to 64 KiB
io "write -P 0x5a 64M 24M"             # 64M..134M contiguous, written in 3 requests
io "write -P 0x5b 88M 24M"
io "write -P 0x5c 112M 22M"
io "write -z 140M 1M"                  # zero cluster: not data in the full
io "write -P 0x14 200M 64k"
io "write -P 0x15 255M 1M"             # last MiB of the disk
tb_snapshot_image "$DOM" vda "$SNAP/full.raw"

tb_step "A: reference full backup (uncompressed)"
ref_backup full "$A"

tb_step "inc1 state: overwrite, zero a written range, discard, a new 40 MiB region"
io "write -P 0x21 0 64k"
io "write -z 1M 128k"                  # was 0x12 data: must become zero
io "discard 64M 1M"                    # inside the big region
io "write -P 0x22 150M 40M"
tb_snapshot_image "$DOM" vda "$SNAP/inc1.raw"
ref_backup inc "$A"

tb_step "inc2 state: more changes"
io "write -P 0x31 200M 64k"
io "discard 100M 2M"
io "write -z 255M 512k"
io "write -P 0x32 30M 4k"
tb_snapshot_image "$DOM" vda "$SNAP/inc2.raw"
ref_backup inc "$A"

tb_step "B: reference full + inc backup, compressed (-z = lz4 level 2)"
ref_backup full "$B" -z
cp --sparse=always "$SNAP/inc2.raw" "$SNAP/B-full.raw"
io "write -P 0x41 10M 33M"             # one 33 MiB extent: two lz4 frames in the inc
io "write -z 0 64k"
io "write -P 0x42 220M 128k"
tb_snapshot_image "$DOM" vda "$SNAP/B-inc1.raw"
ref_backup inc "$B" -z

tb_step "the reference wrote the expected files"
cpt="$DOM.cpt"
expect_files "$A" vda.full.data vda.inc.virtnbdbackup.1.data vda.inc.virtnbdbackup.2.data "$cpt" \
    vmconfig.virtnbdbackup.0.xml vmconfig.virtnbdbackup.1.xml vmconfig.virtnbdbackup.2.xml \
    vda.virtnbdbackup.0.qcow.json vda.virtnbdbackup.1.qcow.json vda.virtnbdbackup.2.qcow.json
expect_files "$B" vda.full.data vda.inc.virtnbdbackup.1.data "$cpt" \
    vmconfig.virtnbdbackup.0.xml vmconfig.virtnbdbackup.1.xml \
    vda.virtnbdbackup.0.qcow.json vda.virtnbdbackup.1.qcow.json
tb_assert_eq '["virtnbdbackup.0","virtnbdbackup.1","virtnbdbackup.2"]' "$(jq -c . "$A/$cpt")" "A .cpt"
tb_assert_eq '["virtnbdbackup.0","virtnbdbackup.1"]' "$(jq -c . "$B/$cpt")" "B .cpt"
tb_assert_eq "virtnbdbackup.0.xml virtnbdbackup.1.xml virtnbdbackup.2.xml" \
    "$(find "$A/checkpoints" -type f -printf '%f\n' | sort | xargs)" "A checkpoints/"
[ -z "$(find "$A" "$B" -name '*.chksum' -o -name '*.partial')" ] ||
    tb_fail "1.9.15 must write no .chksum and leave no .partial files"
tb_log "A: $(find "$A" -maxdepth 1 -printf '%f\n' | sort | xargs)"

tb_step "the reference streams cover the cases we want (independent python frame parser)"
frames_full=$(py_frames "$A/vda.full.data")
printf '%s\n' "$frames_full" | sed 's/^/  A full: /' >&2
awk '$1 == "data" && $3 >= 32 * 1048576 {f = 1} END {exit !f}' <<<"$frames_full" ||
    tb_fail "A full has no DATA frame >= 32 MiB"
awk '$1 == "zero" {f = 1} END {exit !f}' <<<"$frames_full" || tb_fail "A full has no ZERO frame"
frames_inc1=$(py_frames "$A/vda.inc.virtnbdbackup.1.data")
printf '%s\n' "$frames_inc1" | sed 's/^/  A inc1: /' >&2
! awk '$1 == "zero" {f = 1} END {exit !f}' <<<"$frames_inc1" || tb_fail "1.9.15 inc holds ZERO frames"
grep -q "^data $MiB " <<<"$frames_inc1" || tb_fail "A inc1 does not carry the zeroed range at 1 MiB as DATA"
frames_binc=$(py_frames "$B/vda.inc.virtnbdbackup.1.data")
printf '%s\n' "$frames_binc" | sed 's/^/  B inc1: /' >&2
grep -q '^trailer .*{"' <<<"$frames_binc" || tb_fail "B inc1 trailer has no chunked (dict) entry"

tb_step "baseline: virtnbdrestore restores the reference's own chains to the snapshots"
# Baseline first: the reference restores its own directories.
img=$(ref_restore "$A" "$W/rA")
compare_qcow_raw "$img" "$SNAP/inc2.raw" "virtnbdrestore of reference A"
img=$(ref_restore "$A" "$W/rA1" --until virtnbdbackup.1)
compare_qcow_raw "$img" "$SNAP/inc1.raw" "virtnbdrestore of reference A --until virtnbdbackup.1"
img=$(ref_restore "$B" "$W/rB")
compare_qcow_raw "$img" "$SNAP/B-inc1.raw" "virtnbdrestore of reference B (compressed)"

# The snapshots differ pairwise, so each comparison above tells the points in time apart.
for pair in "full inc1" "inc1 inc2" "full inc2" "inc2 B-inc1"; do
    set -- $pair
    ! cmp -s "$SNAP/$1.raw" "$SNAP/$2.raw" || tb_fail "snapshots $1 and $2 are identical"
done
# virtnbdrestore 1.9.15 exits 0 after a failed disk: ref_restore must still notice.
mkdir -p "$W/Abad"
cp -a "$A"/. "$W/Abad/"
truncate -s $(($(stat -c %s "$A/vda.inc.virtnbdbackup.1.data") / 2)) "$W/Abad/vda.inc.virtnbdbackup.1.data"
touch -r "$A/vda.inc.virtnbdbackup.1.data" "$W/Abad/vda.inc.virtnbdbackup.1.data"
if (ref_restore "$W/Abad" "$W/rAbad") >/dev/null 2>&1; then
    tb_fail "ref_restore accepted a chain with a truncated inc"
fi
rc=0
virtnbdrestore -i "$W/Abad" -o "$W/rAbad2" -n -f "$W/restore.sock" -L "$W/rAbad2.log" >/dev/null 2>&1 || rc=$?
tb_log "virtnbdrestore of a chain with a truncated inc exited $rc but logged:" \
    "'$(grep -m1 ERROR "$W/rAbad2.log" | sed 's/.*\]: //')'; ref_restore caught it"

if [ "${VB_REFERENCE_ONLY:-0}" = 1 ]; then
    tb_pass "reference part only (VB_REFERENCE_ONLY=1): backups made and checked"
    exit 0
fi

CHECK=$(tb_tool stream-check)
APPLY=$(tb_tool stream-apply)
REWRITE=$(tb_tool stream-rewrite)

A_FILES=("$A/vda.full.data" "$A/vda.inc.virtnbdbackup.1.data" "$A/vda.inc.virtnbdbackup.2.data")
B_FILES=("$B/vda.full.data" "$B/vda.inc.virtnbdbackup.1.data")

# ---------------------------------------------------------------------------
tb_step "a. stream-check accepts every reference file and reports its metadata"
# check_meta FILE INCREMENTAL CHECKPOINT PARENT COMPRESSED(false|2)
check_meta() {
    local file="$1" json
    json=$("$CHECK" "$file") || tb_fail "stream-check rejected reference file $file"
    tb_assert_eq 1 "$(printf '%s\n' "$json" | grep -c .)" "stream-check lines for $file"
    tb_assert_eq "$file" "$(jq -r .file <<<"$json")" "file of $file"
    tb_assert_eq "$2" "$(jq -r .meta.incremental <<<"$json")" "incremental of $file"
    tb_assert_eq "$3" "$(jq -r .meta.checkpointName <<<"$json")" "checkpointName of $file"
    tb_assert_eq "$4" "$(jq -r .meta.parentCheckpoint <<<"$json")" "parentCheckpoint of $file"
    tb_assert_eq "$5" "$(jq -r .meta.compressed <<<"$json")" "meta.compressed of $file"
    tb_assert_eq "$([ "$5" = false ] && echo false || echo true)" "$(jq -r .compressed <<<"$json")" \
        "compressed flag of $file"
    tb_assert_eq 2 "$(jq -r .meta.streamVersion <<<"$json")" "streamVersion of $file"
    tb_assert_eq vda "$(jq -r .meta.diskName <<<"$json")" "diskName of $file"
    tb_assert_eq $((256 * MiB)) "$(jq -r .meta.virtualSize <<<"$json")" "virtualSize of $file"
    # dataSize in META = data bytes counted by our reader = sum of DATA frames (python).
    tb_assert_eq "$(jq -r .meta.dataSize <<<"$json")" "$(jq -r .data_bytes <<<"$json")" "data_bytes of $file"
    tb_assert_eq "$(py_frames "$file" | awk '$1 == "data" {n++; s += $3} END {print n + 0, s + 0}')" \
        "$(jq -r '"\(.data_frames) \(.data_bytes)"' <<<"$json")" "data frames/bytes of $file vs python"
    tb_log "ok: $(basename "$file"): $(jq -c '{data_frames, zero_frames, data_bytes, zero_bytes, compressed}' <<<"$json")"
}
check_meta "$A/vda.full.data" false virtnbdbackup.0 "" false
check_meta "$A/vda.inc.virtnbdbackup.1.data" true virtnbdbackup.1 virtnbdbackup.0 false
check_meta "$A/vda.inc.virtnbdbackup.2.data" true virtnbdbackup.2 virtnbdbackup.1 false
check_meta "$B/vda.full.data" false virtnbdbackup.0 "" 2
check_meta "$B/vda.inc.virtnbdbackup.1.data" true virtnbdbackup.1 virtnbdbackup.0 2
# Several files in one call: one JSON line each, exit 0.
tb_assert_eq 5 "$("$CHECK" "${A_FILES[@]}" "${B_FILES[@]}" | grep -c '^{')" "stream-check lines for 5 files"
"$CHECK" -q "${A_FILES[@]}" "${B_FILES[@]}" || tb_fail "stream-check -q rejected reference files"

# ---------------------------------------------------------------------------
tb_step "b. stream-apply of the reference chains equals the disk at each point in time"
# apply_cmp EXPECTED.raw WHAT APPLY-ARGS...
apply_cmp() {
    local exp="$1" what="$2"
    shift 2
    local t="$W/applied.raw"
    rm -f "$t"
    "$APPLY" "$@" 2>"$W/apply.err" || { cat "$W/apply.err" >&2; tb_fail "stream-apply $* ($what)"; }
    tb_log "stream-apply order: $(tr '\n' ' ' <"$W/apply.err")"
    cmp "$t" "$exp" || tb_fail "$what: applied image differs from $(basename "$exp") (cmp)"
    tb_compare_raw "$t" "$exp" "$what"
}
# Files are given newest first: the order must come from the metadata.
apply_cmp "$SNAP/inc2.raw" "A latest" "$W/applied.raw" "${A_FILES[2]}" "${A_FILES[1]}" "${A_FILES[0]}"
apply_cmp "$SNAP/inc1.raw" "A --until virtnbdbackup.1" --until virtnbdbackup.1 "$W/applied.raw" "${A_FILES[@]}"
apply_cmp "$SNAP/full.raw" "A --until virtnbdbackup.0" --until virtnbdbackup.0 "$W/applied.raw" "${A_FILES[@]}"
apply_cmp "$SNAP/B-inc1.raw" "B (compressed) latest" "$W/applied.raw" "${B_FILES[1]}" "${B_FILES[0]}"
apply_cmp "$SNAP/B-full.raw" "B (compressed) --until virtnbdbackup.0" \
    --until virtnbdbackup.0 "$W/applied.raw" "${B_FILES[@]}"
# An existing, larger target is truncated to the virtual size.
head -c $((300 * MiB)) /dev/zero | tr '\0' '\377' >"$W/applied.raw"
"$APPLY" "$W/applied.raw" "${A_FILES[@]}" 2>/dev/null || tb_fail "stream-apply onto an existing file"
cmp "$W/applied.raw" "$SNAP/inc2.raw" || tb_fail "stream-apply onto an existing 300 MiB file of 0xff"
tb_log "an existing larger target full of 0xff is truncated and overwritten correctly"

# ---------------------------------------------------------------------------
tb_step "c. stream-rewrite of uncompressed reference files is byte-identical, with .chksum"
mkdir -p "$W/rw"
for f in "${A_FILES[@]}"; do
    out="$W/rw/$(basename "$f")"
    "$REWRITE" "$f" "$out" || tb_fail "stream-rewrite $f"
    cmp "$f" "$out" || tb_fail "stream-rewrite output differs from the reference file $(basename "$f")"
    [ -f "$out.chksum" ] || tb_fail "no $out.chksum"
    tb_assert_eq "$(adler32 "$out")" "$(cat "$out.chksum")" "adler32 in $(basename "$out").chksum"
    [ -z "$(tail -c 1 "$out.chksum" | tr -d '0-9')" ] || tb_fail "$out.chksum must hold only digits"
    [ ! -e "$out.partial" ] || tb_fail "$out.partial left behind"
    tb_log "identical rewrite + chksum $(cat "$out.chksum"): $(basename "$f")"
done
# Compressed reference files rewritten uncompressed still apply to the same disks.
mkdir -p "$W/rwB"
for f in "${B_FILES[@]}"; do
    "$REWRITE" "$f" "$W/rwB/$(basename "$f")" || tb_fail "stream-rewrite (decompress) $f"
done
"$CHECK" "$W/rwB/vda.full.data" | jq -e '.compressed == false and .meta.compressed == false' >/dev/null ||
    tb_fail "rewritten B full must be uncompressed"
apply_cmp "$SNAP/B-inc1.raw" "B rewritten uncompressed" "$W/applied.raw" "$W"/rwB/*.data

# ---------------------------------------------------------------------------
tb_step "d. the reference virtnbdrestore restores chains written by our (compressing) writer"
# A copy of A whose data files are rewritten by our writer with lz4 level 2.
AZ="$W/A-ourz"
mkdir -p "$AZ"
cp -a "$A/checkpoints" "$AZ/"
cp -p "$A"/*.cpt "$A"/vmconfig*.xml "$AZ/"
cp -p "$A"/*.qcow.json "$AZ/" 2>/dev/null || true
for f in "${A_FILES[@]}"; do
    out="$AZ/$(basename "$f")"
    "$REWRITE" --compress=2 "$f" "$out" || tb_fail "stream-rewrite --compress=2 $f"
    # virtnbdrestore 1.9.15 orders data files by mtime: keep the reference's.
    touch -r "$f" "$out"
    "$CHECK" "$out" | jq -e --argjson m "$("$CHECK" "$f" | jq -c .meta)" \
        '.compressed == true and .meta.compressed == 2 and
         (.meta | del(.compressed)) == ($m | del(.compressed))' >/dev/null ||
        tb_fail "our compressed rewrite of $(basename "$f") must keep the META except compressed"
done
tb_log "our compressed chain: $(cd "$AZ" && ls -l --time-style=+%T.%N *.data | awk '{print $5, $7}' | xargs)"
py_frames "$AZ/vda.full.data" | grep -q '^trailer .*{"' ||
    tb_fail "our compressed full has no chunked trailer entry for its > 32 MiB extent"
img=$(ref_restore "$AZ" "$W/rAZ")
compare_qcow_raw "$img" "$SNAP/inc2.raw" "virtnbdrestore of our compressed chain"
img=$(ref_restore "$AZ" "$W/rAZ1" --until virtnbdbackup.1)
compare_qcow_raw "$img" "$SNAP/inc1.raw" "virtnbdrestore of our compressed chain --until virtnbdbackup.1"
img=$(ref_restore "$AZ" "$W/rAZ0" --until virtnbdbackup.0)
compare_qcow_raw "$img" "$SNAP/full.raw" "virtnbdrestore of our compressed chain --until virtnbdbackup.0"

# ---------------------------------------------------------------------------
tb_step "e. negative checks: damaged input must be rejected"
size=$(stat -c %s "${A_FILES[0]}")
head -c $((size / 2)) "${A_FILES[0]}" >"$W/truncated.data"
tb_expect_fail "stream-check of a file truncated in the middle" "$CHECK" "$W/truncated.data"
err=$("$CHECK" "$W/truncated.data" 2>&1 >/dev/null || true)
grep -q "^stream-check: $W/truncated.data: offset [0-9]*: " <<<"$err" ||
    tb_fail "stream-check error line has the wrong form: $err"
tb_expect_fail "stream-apply of a chain missing the middle inc" \
    "$APPLY" "$W/gap.raw" "${A_FILES[0]}" "${A_FILES[2]}"
tb_expect_fail "stream-apply --until an unknown checkpoint" \
    "$APPLY" --until virtnbdbackup.7 "$W/gap.raw" "${A_FILES[@]}"
# One flipped byte in the middle of an lz4 payload (lz4 checksums must catch it).
cp "$AZ/vda.full.data" "$W/flipped.data"
pos=$(($(stat -c %s "$W/flipped.data") / 2))
printf '%02x' $((0x$(xxd -p -s "$pos" -l 1 "$W/flipped.data") ^ 0x01)) | xxd -r -p |
    dd of="$W/flipped.data" bs=1 seek="$pos" conv=notrunc status=none
tb_expect_fail "stream-check of a compressed file with one flipped payload byte" "$CHECK" "$W/flipped.data"

# ---------------------------------------------------------------------------
tb_step "f. virtmap serves the reference's chains at every point (B: linked LZ4 blocks)"
VIRTMAP="$VB_BUILD_DIR/src/map/virtmap"
[ -x "$VIRTMAP" ] || tb_fail "virtmap not built"
# python-lz4 (the reference) links the blocks of a frame: virtmap must decode such a slice
# whole, reading it a window at a time. A frame's FLG byte says which kind it is (liblz4
# marks frames of a single block independent whatever it was asked).
python3 - "$B/vda.full.data" <<'EOF2' || tb_fail "B full: none of the reference's LZ4 frames is linked"
import sys
d = open(sys.argv[1], "rb").read()
i = d.find(b"\x04\x22\x4d\x18")
while i > 0 and d[i + 4] & 0x20:
    i = d.find(b"\x04\x22\x4d\x18", i + 1)
sys.exit(0 if i > 0 else 1)
EOF2
# map_cmp EXPECTED.raw WHAT VIRTMAP-ARGS...: the export equals the snapshot (qemu-img compare)
map_cmp() {
    local exp="$1" what="$2"
    shift 2
    "$VIRTMAP" -d none -r --socket "$W/map.sock" "$@" \
        --run "qemu-img compare -f raw -F raw \"\$uri\" '$exp'" 2>>"$W/virtmap.log" ||
        tb_fail "virtmap $*: $what differs from $(basename "$exp") ($(tail -2 "$W/virtmap.log"))"
    tb_log "virtmap serves $what identical to $(basename "$exp")"
}
map_cmp "$SNAP/inc2.raw" "A latest" -i "$A"
map_cmp "$SNAP/inc1.raw" "A --until virtnbdbackup.1" -i "$A" --until virtnbdbackup.1
map_cmp "$SNAP/full.raw" "A --until virtnbdbackup.0" -i "$A" --until virtnbdbackup.0
map_cmp "$SNAP/B-inc1.raw" "B (compressed) latest" -i "$B"
map_cmp "$SNAP/B-full.raw" "B (compressed) --until virtnbdbackup.0" -i "$B" --until virtnbdbackup.0
# the smallest cache: whole 32 MiB slices evicted and decoded again
map_cmp "$SNAP/B-inc1.raw" "B (compressed) with --cache-size 1" -i "$B" --cache-size 1

tb_pass "reference streams are read, applied and rewritten correctly; the reference restores ours"
