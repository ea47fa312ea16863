#!/bin/bash
# An incremental into a repository killed with -9 among its chunk puts (virtbackup-repository(5):
# the manifest is the commit; virtbackup(1), REPOSITORY OUTPUT: a repository checkpoint newer
# than the domain's newest snapshot is an orphan the next run deletes). A running domain whose
# 64 MiB disk holds 8 MiB of random data, a repository of 1 MiB chunks compressed with zstd
# level 19 (each put slow, so the kill surely lands among the puts):
#  - full; 48 MiB more random data written; the inc killed once some of its new chunks are
#    in: no new snapshot, the killed run's checkpoint left in libvirt beside the full's,
#    virtrepo check and verify pass;
#  - the next inc deletes the killed run's checkpoint (naming it), is an inc of the full
#    (copies the full's 8 chunks, reads the 48 changed ones), stores only the chunks the
#    killed run did not put (--json bytes_new), restores equal to the disk, leaves one
#    repository checkpoint, and check and verify pass.
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
MiB=$((1024 * 1024))

# nchunks: complete chunk objects (temporary files of puts start with '.')
nchunks() { find "$R/chunks" -type f ! -name '.*' 2>/dev/null | wc -l; }
more_chunks_than() { [ "$(nchunks)" -gt "$1" ]; }
snapshots() { "$VIRTREPO" snapshots "$R" --vm "$DOM" --json | jq -r '.[].id' | xargs; }
repo_checkpoints() { tb_virsh checkpoint-list "$DOM" --name | grep "^virtnbdbackup\.$RID\." | xargs; }
# check_and_verify SNAPSHOTS WHAT: virtrepo check and verify pass and count SNAPSHOTS
check_and_verify() {
    local cmd
    for cmd in check verify; do
        "$VIRTREPO" "$cmd" "$R" >"$W/$cmd.out" 2>&1 || tb_fail "$2: virtrepo $cmd: $(cat "$W/$cmd.out")"
        grep -q "^$cmd: $1 snapshots, .*: ok (0 damaged snapshots, 0 damaged chunks)$" \
            "$W/$cmd.out" || tb_fail "$2: virtrepo $cmd says: $(cat "$W/$cmd.out")"
        tb_log "$2: $(tail -1 "$W/$cmd.out")"
    done
}

tb_step "a running domain, 8 MiB of random data; a repository of 1 MiB chunks, zstd:19; full"
head -c $((8 * MiB)) /dev/urandom >"$W/v1.raw"
truncate -s 64M "$W/v1.raw"
tb_create_domain kinc 64M
DOM=$TB_DOMAIN
tb_virsh destroy "$DOM" >/dev/null
qemu-img convert -f raw -O qcow2 -o compat=1.1 "$W/v1.raw" "${TB_IMAGES[0]}"
tb_virsh start --paused "$DOM" >/dev/null
"$VIRTREPO" init "$R" --chunk-size 1M --compression zstd:19 >/dev/null
RID=$(jq -r .id "$R/config")
vb_backup -d "$DOM" -l full -o "$R" --json="$W/full.json"
FULL=$(jq -r .snapshot "$W/full.json")
tb_assert_eq 8 "$(nchunks)" "chunks of the full"
FULL_CP=$(repo_checkpoints)
[ -n "$FULL_CP" ] || tb_fail "the full made no repository checkpoint"

tb_step "48 MiB of new random data; the inc killed with -9 among its chunk puts"
head -c $((48 * MiB)) /dev/urandom >"$W/new.raw"
chmod 0644 "$W/new.raw"
tb_qemu_io "$DOM" vda "write -s $W/new.raw 8M 48M"
tb_snapshot_image "$DOM" vda "$W/v2.raw"
cmp -n $((48 * MiB)) -i $((8 * MiB)):0 "$W/v2.raw" "$W/new.raw" ||
    tb_fail "the disk does not hold the new data"
"$VIRTBACKUP" -n -d "$DOM" -l inc -o "$R" >"$W/killed.out" 2>&1 &
PID=$!
tb_wait_for "$PID" more_chunks_than 12 || tb_fail "the inc never put 5 chunks: $(cat "$W/killed.out")"
kill -9 "$PID" 2>/dev/null || tb_fail "the inc ended before it was killed: $(cat "$W/killed.out")"
rc=0
wait "$PID" || rc=$?
tb_assert_eq 137 "$rc" "exit status of the killed inc (SIGKILL)"
sed 's/^/    | /' "$W/killed.out" >&2
PUT=$(nchunks)
tb_log "killed with $((PUT - 8)) of the 48 new chunks put"
[ "$PUT" -lt 56 ] || tb_fail "every chunk was put before the kill: not a kill among the puts"
tb_assert_eq "$FULL" "$(snapshots)" "snapshots after the killed inc"
ORPHAN=$(repo_checkpoints | tr ' ' '\n' | grep -vx "$FULL_CP" || true)
[ -n "$ORPHAN" ] || tb_fail "the killed inc left no checkpoint of its own: $(repo_checkpoints)"
tb_log "the killed inc's checkpoint: $ORPHAN"
check_and_verify 1 "after the killed inc"

tb_step "the next inc deletes the orphan checkpoint and is an inc of the full"
rc=0
"$VIRTBACKUP" -n -d "$DOM" -l inc -o "$R" --json="$W/next.json" >"$W/next.out" 2>&1 || rc=$?
sed 's/^/    | /' "$W/next.out" >&2
[ "$rc" -eq 0 ] || tb_fail "the inc after the killed one exited $rc"
grep -q "removing checkpoint $ORPHAN.* no snapshot" "$W/next.out" ||
    tb_fail "the next inc did not say it removes the orphan checkpoint $ORPHAN"
NEXT=$(jq -r .snapshot "$W/next.json")
tb_assert_eq "inc $FULL" "$(jq -r '"\(.level) \(.parent)"' "$R/snapshots/$(tb_virsh domuuid "$DOM")/$NEXT.json")" \
    "level and parent of the next inc"
tb_assert_eq 8 "$(jq '.disks[0].chunks_copied' "$W/next.json")" "chunks copied from the full"
tb_assert_eq $((48 * MiB)) "$(jq '.disks[0].bytes_read' "$W/next.json")" "bytes read by the next inc"
tb_assert_eq $(((56 - PUT) * MiB)) "$(jq '.disks[0].bytes_new' "$W/next.json")" \
    "bytes_new of the next inc (48 new chunks, $((PUT - 8)) put by the killed run)"
tb_assert_eq 56 "$(nchunks)" "chunks after the next inc"
cps=$(repo_checkpoints)
tb_assert_eq 1 "$(wc -w <<<"$cps")" "the repository's checkpoints after the next inc ($cps)"
vr_restore_compare "$R" "$W/v2.raw" "the inc after the killed one"
check_and_verify 2 "after the next inc"

tb_pass "a repository inc killed among its puts: nothing committed, the next inc cleans up and is sound"
