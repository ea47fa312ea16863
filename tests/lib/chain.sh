# shellcheck shell=bash
# Helpers for backup chain tests, on top of testbed.sh: run our tools, assert each file's
# metadata (so that a silent fallback to a full cannot pass), apply a chain and compare it
# with a snapshot of the disk.

VIRTBACKUP="$VB_BUILD_DIR/src/backup/virtbackup"
STREAM_CHECK="$VB_BUILD_DIR/tests/stream-check"
STREAM_APPLY="$VB_BUILD_DIR/tests/stream-apply"

# vb_backup ARGS...: runs virtbackup; fails the test on a non-zero exit.
vb_backup() {
    local rc=0 out
    out=$("$VIRTBACKUP" -n "$@" 2>&1) || rc=$?
    printf '%s\n' "$out" | sed 's/^/    | /' >&2
    [ "$rc" -eq 0 ] || tb_fail "virtbackup $* exited $rc"
}

# vb_backup_fails EXPECTED_TEXT ARGS...: virtbackup must exit 1 saying EXPECTED_TEXT.
vb_backup_fails() {
    local want="$1" rc=0 out
    shift
    out=$("$VIRTBACKUP" -n "$@" 2>&1) || rc=$?
    [ "$rc" -eq 1 ] || tb_fail "virtbackup $* exited $rc, expected 1; said: $out"
    grep -qF -- "$want" <<<"$out" || tb_fail "virtbackup $* did not say '$want'; said: $out"
    tb_log "refused as expected: $(grep -F -- "$want" <<<"$out" | head -1)"
}

# assert_meta FILE INCREMENTAL CHECKPOINT PARENT COMPRESSED: the file passes the full
# structural check (frames, lz4, .chksum) and its META says what the level promises.
assert_meta() {
    local file="$1" inc="$2" cp="$3" parent="$4" comp="$5" line
    [ -f "$file" ] || tb_fail "missing $file (have: $(ls "$(dirname "$file")" | tr '\n' ' '))"
    [ -f "$file.chksum" ] || tb_fail "missing $file.chksum"
    line=$("$STREAM_CHECK" "$file") || tb_fail "stream-check rejects $file"
    local got
    got=$(jq -r '[.meta.incremental, .meta.checkpointName, .meta.parentCheckpoint,
                   .meta.compressed, .meta.streamVersion, (.checksum != null)] | map(tostring) | join(" ")' <<<"$line")
    tb_assert_eq "$got" "$inc $cp $parent $comp 2 true" "metadata of $(basename "$file")"
}

# zero_frames FILE: number of ZERO frames.
zero_frames() { "$STREAM_CHECK" "$1" | jq -r .zero_frames; }

# apply_compare SNAPSHOT.raw WHAT FILES... [-- --until NAME]: applies the chain with
# stream-apply and compares the result with the snapshot.
apply_compare() {
    local snap="$1" what="$2" out="$TB_WORKDIR/apply.$$.raw"
    shift 2
    local -a files=() extra=()
    while [ $# -gt 0 ] && [ "$1" != "--" ]; do
        files+=("$1")
        shift
    done
    [ $# -gt 0 ] && shift && extra=("$@")
    rm -f "$out"
    "$STREAM_APPLY" "${extra[@]}" "$out" "${files[@]}" 2>"$out.log" ||
        tb_fail "$what: stream-apply failed: $(cat "$out.log")"
    tb_compare_raw "$out" "$snap" "$what"
    rm -f "$out" "$out.log"
}

# ref_restore IN OUT [ARGS...]: the reference's restore (virtnbdrestore 1.9.15). It can exit
# 0 after a failed disk (it only logs an error), so its log is checked too. Prints the path
# of the restored image of the first disk (named after the source file in vmconfig).
ref_restore() {
    local in="$1" out="$2"
    shift 2
    local log="$out.log" rc=0
    virtnbdrestore -i "$in" -o "$out" -n -f "$TB_WORKDIR/restore.$$.sock" -L "$log" "$@" \
        >"$out.stdout" 2>&1 || rc=$?
    if [ "$rc" -ne 0 ] || grep -qE 'ERROR|CRITICAL|FATAL|Traceback' "$log" "$out.stdout"; then
        tail -n 30 "$out.stdout" >&2
        tb_fail "virtnbdrestore -i $in -o $out $* failed (exit $rc)"
    fi
    local img
    img="$out/$(basename "${TB_IMAGES[0]}")"
    [ -f "$img" ] || tb_fail "virtnbdrestore made no $img (files: $(ls "$out"))"
    # its qemu-nbd may still hold the image's lock for a moment after it returns
    TB_WAIT_LIMIT=120 tb_wait_for "" eval 'qemu-img info "$img" >/dev/null 2>&1' ||
        tb_fail "$img still locked 120 s after virtnbdrestore ended"
    echo "$img"
}

# compare_qcow_raw IMAGE.qcow2 SNAPSHOT.raw WHAT
compare_qcow_raw() {
    local out
    out=$(qemu-img compare -f qcow2 -F raw "$1" "$2" 2>&1) ||
        tb_fail "$3: $1 differs from $2: $out"
    tb_log "identical: $(basename "$1") == $(basename "$2") ($3)"
}

VIRTRESTORE="$VB_BUILD_DIR/src/restore/virtrestore"

# vr_restore_compare INPUT SNAPSHOT.raw WHAT [ARGS...]: virtrestore of disk vda (the chain in
# INPUT, a directory or zip list) into a fresh directory, compared with the snapshot.
vr_restore_compare() {
    local in="$1" snap="$2" what="$3" out rc=0
    shift 3
    out=$(mktemp -d "$TB_WORKDIR/vr.XXXXXX")
    "$VIRTRESTORE" -n -i "$in" -o "$out" -d vda "$@" >"$out.log" 2>&1 || rc=$?
    [ "$rc" -eq 0 ] || tb_fail "$what: virtrestore exited $rc: $(tail -5 "$out.log")"
    local img
    img=$(ls "$out"/*.qcow2 2>/dev/null | head -1)
    [ -n "$img" ] || tb_fail "$what: virtrestore made no image (files: $(ls "$out"))"
    compare_qcow_raw "$img" "$snap" "$what (virtrestore)"
    rm -rf "$out" "$out.log"
}
