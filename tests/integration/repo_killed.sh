#!/bin/bash
# Backups into a repository killed with -9 (virtbackup-repository(5): chunks and indexes are
# durable before the manifest, which is the commit; a crash leaves at most chunks no snapshot
# refers to):
#  - in the middle of its chunk puts (any build): a 64 MiB disk of random data, a repository of
#    1 MiB chunks, the run killed once more than a few chunks are in: no new snapshot, the
#    earlier one intact (virtrepo check and verify pass, temporary files of interrupted puts
#    are no damage), and the next full stores only the chunks the killed run did not put
#    (--json bytes_new), its export and its restore equal to the disk;
#  - (debug builds) held at the stall point "commit", after every chunk and index is in and
#    before the manifest: all chunks are on disk, no snapshot names them; killed there, the
#    next full stores nothing new (bytes_new 0) and equals the disk.
set -euo pipefail

# shellcheck source=../lib/testbed.sh
source "$(dirname "${BASH_SOURCE[0]}")/../lib/testbed.sh"
# shellcheck source=../lib/chain.sh
source "$(dirname "${BASH_SOURCE[0]}")/../lib/chain.sh"
tb_init

VIRTREPO="$VB_BUILD_DIR/src/virtrepo/virtrepo"
[ -x "$VIRTREPO" ] || tb_fail "$VIRTREPO not built"
RAW=$(tb_tool repo-raw)
W=$TB_WORKDIR
MiB=$((1024 * 1024))

# nchunks REPO: complete chunk objects (temporary files of puts start with '.')
nchunks() { find "$1/chunks" -type f ! -name '.*' 2>/dev/null | wc -l; }
nindexes() { find "$1/indexes" -type f ! -name '.*' 2>/dev/null | wc -l; }
ntemporary() { find "$1" -type f -name '.*.tmp' | wc -l; }
more_chunks_than() { [ "$(nchunks "$1")" -gt "$2" ]; }
snapshots_of() { "$VIRTREPO" snapshots "$1" --vm "$DOM" --json | jq -r '.[].id'; }
# export_compare REPO ID SNAPSHOT.raw WHAT
export_compare() {
    "$RAW" export "$1" "$2" vda "$W/export.raw" || tb_fail "$4: repo-raw export failed"
    cmp "$W/export.raw" "$3" || tb_fail "$4: vda of snapshot $2 differs from the disk"
    tb_log "identical: snapshot $2 vda == $(basename "$3") ($4)"
    rm -f "$W/export.raw"
}
# check_and_verify REPO SNAPSHOTS WHAT: both pass and count SNAPSHOTS snapshots
check_and_verify() {
    local cmd
    for cmd in check verify; do
        "$VIRTREPO" "$cmd" "$1" >"$W/$cmd.out" 2>&1 ||
            tb_fail "$3: virtrepo $cmd: $(cat "$W/$cmd.out")"
        grep -q "^$cmd: $2 snapshots, .*: ok (0 damaged snapshots, 0 damaged chunks)$" \
            "$W/$cmd.out" || tb_fail "$3: virtrepo $cmd says: $(cat "$W/$cmd.out")"
        tb_log "$3: $(tail -1 "$W/$cmd.out")"
    done
}
# killed_run PID: kills the backup PID with -9; it must not have ended before
killed_run() {
    local rc=0
    kill -9 "$1" 2>/dev/null || tb_fail "the backup ended before it was killed: $(cat "$W/killed.out")"
    wait "$1" || rc=$?
    tb_assert_eq 137 "$rc" "exit status of the killed backup (SIGKILL)"
}

tb_step "a domain whose 64 MiB disk is random data; a repository of 1 MiB chunks"
head -c $((64 * MiB)) /dev/urandom >"$W/v2.raw"
# its first version: the first 8 MiB of that, the rest zeroes
head -c $((8 * MiB)) "$W/v2.raw" >"$W/v1.raw"
truncate -s 64M "$W/v1.raw"
tb_create_domain kill 64M
DOM=$TB_DOMAIN
tb_virsh destroy "$DOM" >/dev/null
qemu-img convert -f raw -O qcow2 -o compat=1.1 "$W/v1.raw" "${TB_IMAGES[0]}"
# zstd level 19 makes each put slow, so that the run is surely killed among its puts
R=$W/repo
"$VIRTREPO" init "$R" --chunk-size 1M --compression zstd:19 >/dev/null
vb_backup -d "$DOM" -l copy -o "$R"
mapfile -t IDS < <(snapshots_of "$R")
tb_assert_eq 1 "${#IDS[@]}" "snapshots after the first copy"
tb_assert_eq 8 "$(nchunks "$R")" "chunks of the first copy"
export_compare "$R" "${IDS[0]}" "$W/v1.raw" "first copy"

tb_step "kill -9 in the middle of the chunk puts of a full"
qemu-img convert -f raw -O qcow2 -o compat=1.1 "$W/v2.raw" "${TB_IMAGES[0]}"
tb_virsh start --paused "$DOM" >/dev/null
"$VIRTBACKUP" -n -d "$DOM" -l full -o "$R" >"$W/killed.out" 2>&1 &
PID=$!
tb_wait_for "$PID" more_chunks_than "$R" 12 ||
    tb_fail "the run never put 5 chunks: $(cat "$W/killed.out")"
killed_run "$PID"
PUT=$(nchunks "$R")
tb_log "killed with $((PUT - 8)) of the 56 new chunks put, $(ntemporary "$R") temporary files left"
[ "$PUT" -lt 64 ] || tb_fail "every chunk was put before the kill: not a kill among the puts"
tb_assert_eq "${IDS[*]}" "$(snapshots_of "$R" | xargs)" "snapshots after the killed run"
tb_assert_eq 1 "$(nindexes "$R")" "indexes after the killed run (the first copy's)"
# A put killed while writing leaves its temporary file (objstore_local.c: .<name>.XXXXXX.tmp
# in the object's directory); the kill above may have missed that moment, so one is made as
# such a put leaves it, half a chunk the next full needs.
for ((i = 8; i < 64; i++)); do
    sum=$(dd if="$W/v2.raw" bs=1M skip=$i count=1 status=none | sha256sum | cut -d' ' -f1)
    [ -e "$R/chunks/${sum:0:2}/$sum" ] || break
done
mkdir -p "$R/chunks/${sum:0:2}"
dd if="$W/v2.raw" bs=512k skip=$((2 * i)) count=1 status=none >"$R/chunks/${sum:0:2}/.$sum.Kq3ZrT.tmp"
tb_log "temporary files: $(find "$R" -name '.*.tmp' -printf '%P ')"
check_and_verify "$R" 1 "after a kill among the puts"

tb_step "the next full stores only the chunks the killed run did not put"
tb_snapshot_image "$DOM" vda "$W/v2.now.raw"
cmp "$W/v2.now.raw" "$W/v2.raw" || tb_fail "the disk changed under the test"
vb_backup -d "$DOM" -l full -o "$R" --json="$W/next.json"
tb_assert_eq $(((64 - PUT) * MiB)) "$(jq '.disks[0].bytes_new' "$W/next.json")" \
    "bytes_new of the full after the killed run (64 chunks, $PUT held already)"
tb_assert_eq 64 "$(nchunks "$R")" "chunks after the next full"
[ -s "$R/chunks/${sum:0:2}/$sum" ] || tb_fail "chunk $sum, whose put was interrupted, is missing"
ID=$(snapshots_of "$R" | tail -1)
export_compare "$R" "$ID" "$W/v2.raw" "full after a kill among the puts"
vr_restore_compare "$R" "$W/v2.raw" "full after a kill among the puts"
check_and_verify "$R" 2 "after the next full"

if strings "$VIRTBACKUP" | grep -x VIRTBACKUP_DEBUG_STALL >/dev/null; then
    tb_step "kill -9 after every chunk and index is in, before the manifest (the commit)"
    # four new chunks, distinct from each other and from the random ones
    for i in 1 2 3 4; do
        tb_qemu_io "$DOM" vda "write -P 0x$i$i $((i * 10))M 1M"
    done
    tb_snapshot_image "$DOM" vda "$W/v3.raw"
    STALL=$W/commit.gate
    touch "$STALL"
    tmp_before=$(ntemporary "$R")
    VIRTBACKUP_DEBUG_STALL=commit=$STALL "$VIRTBACKUP" -n -d "$DOM" -l full -o "$R" \
        >"$W/killed.out" 2>&1 &
    PID=$!
    tb_wait_for "$PID" test -e "$STALL.stalled" ||
        tb_fail "the run never reached its commit: $(cat "$W/killed.out")"
    tb_assert_eq 68 "$(nchunks "$R")" "chunks held before the commit (64 + the 4 new ones)"
    tb_assert_eq 3 "$(nindexes "$R")" "indexes before the commit (the new snapshot's is in)"
    tb_assert_eq 2 "$(snapshots_of "$R" | wc -l)" "snapshots before the commit"
    killed_run "$PID"
    rm -f "$STALL" "$STALL.stalled"
    tb_assert_eq 2 "$(snapshots_of "$R" | wc -l)" "snapshots after the run killed at its commit"
    tb_assert_eq "$tmp_before" "$(ntemporary "$R")" "temporary files after the run killed at its commit"
    check_and_verify "$R" 2 "after a kill at the commit"

    tb_step "the next full after the kill at the commit stores nothing new"
    vb_backup -d "$DOM" -l full -o "$R" --json="$W/after-commit.json"
    tb_assert_eq 0 "$(jq '.disks[0].bytes_new' "$W/after-commit.json")" \
        "bytes_new of the full after the run killed at its commit"
    tb_assert_eq 68 "$(nchunks "$R")" "chunks after the next full"
    ID=$(snapshots_of "$R" | tail -1)
    export_compare "$R" "$ID" "$W/v3.raw" "full after a kill at the commit"
    vr_restore_compare "$R" "$W/v3.raw" "full after a kill at the commit"
    check_and_verify "$R" 3 "after the full that followed the kill at the commit"
else
    tb_log "release build (no VIRTBACKUP_DEBUG_STALL): the kill at the commit is skipped"
fi

tb_pass "repository backups killed with -9"
