#!/bin/bash
# Hostile backup input (virtbackup-stream(5), CHAINS) through the three ways a chain is read: `virtrestore -o verify`,
# a restore, and virtmap. A real chain (full + 2 incs, plain and -z) of a test domain is damaged
# one way at a time:
#   - truncated at every frame header, inside every header and inside every payload (with the
#     .chksum removed, so that only the structure can tell);
#   - one byte flipped in a header, the META JSON, a plain payload, LZ4 data, the -z trailer;
#   - chain damage: files in the wrong order (renamed), a missing middle incremental, an
#     incremental of an older chain of the same disk, another domain's file renamed, a .cpt
#     list that skips a checkpoint the files hold.
# Each must give exit 1 and an error naming the file (and, for structure, the byte offset); a
# restore must leave no image and no .partial; virtmap must not serve (or, for damage that
# only a read can find, fail the read with EIO and log file and offset; --verify finds it
# before serving). The undamaged chain is restored and mapped at the end and compared.
set -euo pipefail
source "$(dirname "$0")/../lib/testbed.sh"
source "$(dirname "$0")/../lib/chain.sh"
tb_init
export PATH="/usr/bin:$PATH" # nbdcopy/nbdsh with the distribution's python3
VIRTMAP="$VB_BUILD_DIR/src/map/virtmap"
for t in "$VIRTBACKUP" "$VIRTRESTORE" "$VIRTMAP"; do [ -x "$t" ] || tb_fail "$t not built"; done
export TMPDIR=$TB_WORKDIR/tmp
mkdir -p "$TMPDIR"
W=$TB_WORKDIR
CASES=0

tb_create_domain hc 48M
DOM=$TB_DOMAIN
tb_create_domain hcother 48M 16M
OTHER=$TB_DOMAIN

# chain DIR DOMAIN [ARGS...]: full + inc + inc, with the same writes on every call
chain() {
    local dir=$1 dom=$2
    shift 2
    tb_qemu_io "$dom" vda "write -P 0x41 0 3M"
    tb_qemu_io "$dom" vda "write -P 0x42 40M 5M" # > one 4 MiB piece, several LZ4 blocks
    vb_backup -d "$dom" -l full -o "$dir" "$@"
    tb_qemu_io "$dom" vda "write -P 0x43 8M 1M"
    tb_qemu_io "$dom" vda "write -z 1M 1M"
    vb_backup -d "$dom" -l inc -o "$dir" "$@"
    tb_qemu_io "$dom" vda "write -P 0x44 20M 64k"
    vb_backup -d "$dom" -l inc -o "$dir" "$@"
}

tb_step "chains: plain and -z of $DOM, plain of $OTHER (two disks)"
chain "$W/P" "$DOM"
tb_snapshot_image "$DOM" vda "$W/snap.raw"
chain "$W/Z" "$DOM" -z # the same writes again: the same final content
chain "$W/O" "$OTHER"
FULL=vda.full.data
INC1=vda.inc.virtnbdbackup.1.data
INC2=vda.inc.virtnbdbackup.2.data
for c in P Z O; do
    assert_meta "$W/$c/$FULL" false virtnbdbackup.0 "" "$([ $c = Z ] && echo 2 || echo false)"
    assert_meta "$W/$c/$INC2" true virtnbdbackup.2 virtnbdbackup.1 \
        "$([ $c = Z ] && echo 2 || echo false)"
done

# damaged SRC: a fresh copy of chain SRC in $D, to be damaged by the caller
damaged() {
    D=$W/case
    rm -rf "$D" "$W/r" "$W/map.raw"
    cp -a "$W/$1" "$D"
}

# expect_refused WHAT FILE [offset] [--read-fails|--verify-only]: all three readers refuse $D
# naming FILE (and, with "offset", the byte offset in it). Damage in the data itself is found
# by virtmap only where it is read: with --read-fails reading the whole export must fail; with
# --verify-only (uncompressed data) it is served; either way --verify refuses before serving.
expect_refused() {
    local what=$1 file=$2 offset=${3:-} mapmode=${4:-} rc out
    CASES=$((CASES + 1))
    # verify
    rc=0
    out=$("$VIRTRESTORE" -n -i "$D" -o verify 2>&1) || rc=$?
    check_refusal "$what: verify" "$rc" "$out" "$file" "$offset"
    tb_log "$what: $(grep -m1 -E 'FAILED|error' <<<"$out" | sed "s|$D/||g")"
    # restore
    rc=0
    out=$("$VIRTRESTORE" -n -i "$D" -o "$W/r" -d vda 2>&1) || rc=$?
    check_refusal "$what: restore" "$rc" "$out" "$file" "$offset"
    if [ -d "$W/r" ] && [ -n "$(find "$W/r" -name '*.qcow2*' -o -name '*.partial')" ]; then
        tb_fail "$what: restore left $(find "$W/r" -name '*.qcow2*' -o -name '*.partial')"
    fi
    # virtmap: reading everything must not succeed
    local rc0=0 out0
    # shellcheck disable=SC2016 # $uri is for the --run shell
    out0=$("$VIRTMAP" -d none -r --socket "$W/map.sock" -i "$D" \
        --run 'nbdcopy "$uri" "'"$W/map.raw"'"' 2>&1) || rc0=$?
    if [ -n "$mapmode" ]; then
        # damage that only reading the data can find: --verify refuses before serving
        rc=0
        out=$("$VIRTMAP" -d none -r --socket "$W/map.sock" -i "$D" --verify --run true 2>&1) ||
            rc=$?
        check_refusal "$what: virtmap --verify" "$rc" "$out" "$file" ""
    fi
    if [ "$mapmode" = --read-fails ]; then # LZ4: reading the damaged block fails (EIO)
        [ "$rc0" -ne 0 ] || tb_fail "$what: the whole export of the damaged chain was read: $out0"
        grep -qF -- "$file" <<<"$out0" || tb_fail "$what: virtmap did not name $file: $out0"
    elif [ "$mapmode" = --verify-only ]; then
        # uncompressed data has no checksum of its own: without --verify virtmap serves it
        [ "$rc0" -eq 0 ] || tb_fail "$what: virtmap without --verify failed: $out0"
    else
        check_refusal "$what: virtmap" "$rc0" "$out0" "$file" "$offset"
    fi
}

# check_refusal WHAT RC OUTPUT FILE OFFSET
check_refusal() {
    [ "$2" -eq 1 ] || tb_fail "$1: exit $2, expected 1: $3"
    grep -qF -- "$4" <<<"$3" || tb_fail "$1: the error does not name $4: $3"
    if [ -n "$5" ]; then # structural damage: the error names the byte offset
        grep -qE -- "$4: offset [0-9]+" <<<"$3" || tb_fail "$1: the error names no offset: $3"
    fi
}

# headers FILE: byte offsets of the frame headers
headers() {
    python3 - "$1" <<'PY'
import re, sys
data = open(sys.argv[1], "rb").read()
for m in re.finditer(rb"(meta|data|zero|stop|comp) [0-9a-f]{16} [0-9a-f]{16}\r\n", data):
    print(m.start(), m.group(1).decode(), int(m.group(0)[22:38], 16))
PY
}

# ---------------------------------------------------------------------------------------------
for c in P Z; do
    for f in $FULL $INC1 $INC2; do
        tb_step "$c/$f truncated at every frame header, inside each header and each payload"
        size=$(stat -c %s "$W/$c/$f")
        offsets=()
        while read -r off kind _; do
            offsets+=("$off" $((off + 17)))
            # inside a payload: META's JSON, a DATA frame's first bytes; the payload ends where
            # the next header starts (compressed sizes are not in the header)
            [ "$kind" = meta ] || [ "$kind" = data ] && offsets+=($((off + 40 + 7)))
        done < <(headers "$W/$c/$f")
        offsets+=($((size - 1)))
        for off in "${offsets[@]}"; do
            [ "$off" -lt "$size" ] || continue
            damaged "$c"
            rm "$D/$f.chksum"
            truncate -s "$off" "$D/$f"
            expect_refused "$c/$f cut at $off of $size" "$f" offset
        done
        tb_log "$c/$f: ${#offsets[@]} truncations refused by verify, restore and virtmap"
    done
done

tb_step "one flipped byte: header kind, header length digit, META JSON, trailer"
flip() { # flip FILE OFFSET: xor 0x20 at OFFSET (keeps ASCII ASCII, changes it)
    python3 - "$1" "$2" <<'PY'
import sys
p, o = sys.argv[1], int(sys.argv[2])
with open(p, "r+b") as f:
    f.seek(o); b = f.read(1); f.seek(o); f.write(bytes([b[0] ^ 0x20]))
PY
}
for c in P Z; do
    for f in $FULL $INC1; do
        read -r doff _ < <(headers "$W/$c/$f" | awk '$2 == "data"' | head -1)
        for spot in "kind:$doff" "length:$((doff + 30))" "json-brace:40" "json-key:44"; do
            damaged "$c"
            rm "$D/$f.chksum"
            flip "$D/$f" "${spot#*:}"
            expect_refused "$c/$f ${spot%%:*} flipped" "$f" offset
        done
    done
    damaged "$c"
    read -r soff _ < <(headers "$W/$c/$FULL" | awk '$2 == "stop"' | tail -1)
    if [ $c = Z ]; then # the trailer: JSON of the compressed sizes after the stop frame
        rm "$D/$FULL.chksum"
        flip "$D/$FULL" $((soff + 40 + 1))
        expect_refused "$c trailer flipped" "$FULL" offset
    fi
done

tb_step "one flipped payload byte: plain (only the .chksum can tell) and LZ4 (its checksums)"
for c in P Z; do
    read -r doff _ < <(headers "$W/$c/$FULL" | awk '$2 == "data"' | tail -1)
    damaged "$c"
    flip "$D/$FULL" $((doff + 40 + 3000))
    expect_refused "$c payload flipped" "$FULL" "" \
        "$([ $c = Z ] && echo --read-fails || echo --verify-only)"
    if [ $c = Z ]; then
        damaged Z
        rm "$D/$FULL.chksum"
        flip "$D/$FULL" $((doff + 40 + 3000))
        expect_refused "Z LZ4 data flipped, no .chksum" "$FULL" offset --read-fails
    fi
done

tb_step "a raw image (-l copy -t raw) with a flipped byte: the restore checks its .chksum"
vb_backup -d "$DOM" -l copy -t raw -o "$W/R"
[ -f "$W/R/vda.copy.data.chksum" ] || tb_fail "no .chksum for the raw image"
damaged R
flip "$D/vda.copy.data" $((40 << 20))
rc=0
out=$("$VIRTRESTORE" -n -i "$D" -o "$W/r" -d vda --raw 2>&1) || rc=$?
check_refusal "raw image flipped: restore" "$rc" "$out" vda.copy.data ""
[ -z "$(find "$W/r" -type f 2>/dev/null | grep -v vmconfig)" ] ||
    tb_fail "the refused raw restore left $(find "$W/r" -type f)"
rc=0
out=$("$VIRTRESTORE" -n -i "$D" -o verify 2>&1) || rc=$?
check_refusal "raw image flipped: verify" "$rc" "$out" vda.copy.data ""
CASES=$((CASES + 1))

tb_step "chain damage"
damaged P
rm "$D/$INC1" "$D/$INC1.chksum"
expect_refused "missing middle incremental" virtnbdbackup.1
damaged P
mv "$D/$INC1" "$W/tmp.data"
mv "$D/$INC2" "$D/$INC1"
mv "$W/tmp.data" "$D/$INC2"
expect_refused "incrementals swapped by name" "$INC1"
damaged P
# checkpoint names repeat in every chain: an incremental of an older chain of this disk fits
# the links; its date (before the file it would continue) gives it away
rm "$D/$INC2" "$D/$INC2.chksum"
"$(tb_tool stream-rewrite)" --date 2020-02-02T20:20:20.202020 "$W/P/$INC2" "$D/$INC2"
assert_meta "$D/$INC2" true virtnbdbackup.2 virtnbdbackup.1 false
expect_refused "an incremental of an older chain" "$INC2"
damaged P
cp "$W/O/vdb.inc.virtnbdbackup.2.data" "$D/$INC2"
cp "$W/O/vdb.inc.virtnbdbackup.2.data.chksum" "$D/$INC2.chksum"
expect_refused "an incremental of another domain's disk, renamed" "$INC2"
damaged P
# the chain's .cpt list disagrees with the files' metadata (virtbackup-stream(5))
jq -c 'del(.[1])' "$W/P/$DOM.cpt" >"$D/$DOM.cpt"
expect_refused "a .cpt list that skips a checkpoint the files hold" "$DOM.cpt"

tb_step "the undamaged chains restore and map to the disk"
for c in P Z; do
    vr_restore_compare "$W/$c" "$W/snap.raw" "$c undamaged"
    rm -f "$W/map.raw"
    # shellcheck disable=SC2016 # $uri is for the --run shell
    "$VIRTMAP" -d none -r --socket "$W/map.sock" -i "$W/$c" --verify \
        --run 'nbdcopy "$uri" "'"$W/map.raw"'"' >/dev/null 2>&1 || tb_fail "virtmap of $c failed"
    tb_compare_raw "$W/map.raw" "$W/snap.raw" "$c through virtmap"
done
tb_pass "$CASES damaged chains refused by verify, restore and virtmap; undamaged ones equal the disk"
