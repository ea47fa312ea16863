#!/bin/bash
# Garbage collection of a repository (virtrepo(1) gc; the protocol: virtbackup-repository(5)),
# with real domains and backups:
#  - snapshots forgotten: gc moves exactly their unique chunks (and their index) to the trash,
#    the other snapshots verify and restore; a second gc, no session alive, empties the trash;
#  - (debug builds) a backup held at its commit (chunks and index in, manifest not yet) while
#    gc moves chunks it found present and chunks it put: gc's trash waits for its session,
#    the snapshot it commits reads from the trash, and the next gc moves them back before it
#    empties the trash; verify and restore equal the disk;
#  - (debug builds) a backup held at its commit and stopped until its session is stale and a
#    gc has deleted the session object: continued, it fails without a manifest;
#  - backups of two VMs in a loop (new data each time, the oldest snapshots forgotten) while
#    gc runs in a loop, then every snapshot verifies and the last of each VM restores equal to
#    its disk;
#  - gc killed with -9 in the middle of its move: the next gc is refused while the killed
#    one's session lives, runs once it is stale, and everything verifies.
# The repository's sessions go stale after 4 seconds (virtrepo init --session-stale 4).
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
KiB=1024
MiB=$((1024 * 1024))
CHUNK=$((64 * KiB))

# digests FILE OFF LEN: the chunk names of FILE's bytes OFF..OFF+LEN, one per line, sorted
digests() {
    local i
    for ((i = $2 / CHUNK; i < ($2 + $3) / CHUNK; i++)); do
        dd if="$1" bs=$CHUNK skip=$i count=1 status=none | sha256sum | cut -d' ' -f1
    done | sort
}
trashed_chunks() {
    [ ! -d "$R/trash" ] || find "$R/trash" -path '*/chunks/*' -type f ! -name '.*' -printf '%f\n' | sort
}
trashed_objects() {
    if [ -d "$R/trash" ]; then find "$R/trash" -type f ! -name '.*' | wc -l; else echo 0; fi
}
snapshots_of() { "$VIRTREPO" snapshots "$R" --vm "$1" --json | jq -r '.[].id'; }
# to_image RAW IMAGE: the disk's content replaced while the domain is off
to_image() { qemu-img convert -f raw -O qcow2 -o compat=1.1 "$1" "$2"; }
gc_json() {
    "$VIRTREPO" gc "$R" --json >"$W/gc.json" 2>"$W/gc.err" ||
        tb_fail "virtrepo gc: $(cat "$W/gc.err")"
    cat "$W/gc.json"
}
verify_all() {
    "$VIRTREPO" verify "$R" >"$W/verify.out" 2>&1 || tb_fail "$1: virtrepo verify: $(cat "$W/verify.out")"
    grep -q "^verify: $2 snapshots, .*: ok (0 damaged snapshots, 0 damaged chunks)$" "$W/verify.out" ||
        tb_fail "$1: virtrepo verify says: $(cat "$W/verify.out")"
    tb_log "$1: $(tail -1 "$W/verify.out")"
}
# restore_vm VM RAW WHAT [ARGS...]: the VM's latest snapshot (or the one ARGS name) restored
# by virtrestore equals RAW
restore_vm() {
    local vm="$1" raw="$2" what="$3"
    shift 3
    vr_restore_compare "$R" "$raw" "$what" --vm "$vm" "$@"
}

tb_step "two domains (shut off), a repository of 64 KiB chunks, sessions stale after 4 s"
head -c $((3 * MiB)) /dev/urandom >"$W/rnd.raw"
# A, version 1: R1 (1 MiB random) then R2; version 2: R1 then R3; B: its own random MiB
for v in 1 2; do
    dd if="$W/rnd.raw" of="$W/a$v.raw" bs=1M count=1 status=none
    dd if="$W/rnd.raw" of="$W/a$v.raw" bs=1M skip=$v seek=1 count=1 status=none conv=notrunc
    truncate -s 4M "$W/a$v.raw"
done
head -c $((1 * MiB)) /dev/urandom >"$W/b.raw"
truncate -s 4M "$W/b.raw"
tb_create_domain gca 4M
DA=$TB_DOMAIN
IA=${TB_IMAGES[0]}
tb_create_domain gcb 4M
DB=$TB_DOMAIN
IB=${TB_IMAGES[0]}
tb_virsh destroy "$DA" >/dev/null
tb_virsh destroy "$DB" >/dev/null
"$VIRTREPO" init "$R" --chunk-size 64K --session-stale 4 >/dev/null
tb_assert_eq 4 "$(jq .session_stale_seconds "$R/config")" "session_stale_seconds in the config"

tb_step "forget a snapshot: gc moves exactly its unique chunks"
# (ids made in one second need not sort in the order of the backups: each is taken from
# the backup's --json)
A_IDS=()
for v in 1 2; do
    to_image "$W/a$v.raw" "$IA"
    vb_backup -d "$DA" -l copy -o "$R" --json="$W/a$v.json"
    A_IDS+=("$(jq -r .snapshot "$W/a$v.json")")
done
to_image "$W/b.raw" "$IB"
vb_backup -d "$DB" -l copy -o "$R"
tb_assert_eq 2 "$(snapshots_of "$DA" | wc -l)" "snapshots of $DA"
"$VIRTREPO" forget "$R" "${A_IDS[0]}" >/dev/null
"$VIRTREPO" gc "$R" --dry-run --json >"$W/dry.json"
tb_assert_eq 16 "$(jq .moved_chunks "$W/dry.json")" "chunks a dry run would move"
tb_assert_eq 0 "$(trashed_objects)" "objects in the trash after a dry run"
gc_json >"$W/gc1.json"
tb_assert_eq 16 "$(jq .moved_chunks "$W/gc1.json")" "chunks moved (R2's 16)"
tb_assert_eq 1 "$(jq .moved_indexes "$W/gc1.json")" "indexes moved (the forgotten snapshot's)"
tb_assert_eq "$(digests "$W/a1.raw" $MiB $MiB | xargs)" "$(trashed_chunks | xargs)" \
    "the trashed chunks are exactly the forgotten snapshot's unique ones"
tb_assert_eq $((16 + 1)) "$(trashed_objects)" "objects in the trash"
verify_all "after the first gc" 2
restore_vm "$DA" "$W/a2.raw" "$DA after the first gc"
restore_vm "$DB" "$W/b.raw" "$DB after the first gc"

tb_step "a second gc, no session alive, empties the trash"
gc_json >"$W/gc2.json"
tb_assert_eq true "$(jq '.trashes[0].emptied' "$W/gc2.json")" "the first trash emptied"
tb_assert_eq 17 "$(jq '.trashes[0].freed_objects' "$W/gc2.json")" "objects freed"
tb_assert_eq 0 "$(trashed_objects)" "objects in the trash after the second gc"
verify_all "after the second gc" 2

if strings "$VIRTREPO" | grep -x VIRTBACKUP_DEBUG_STALL >/dev/null; then
    tb_step "a backup held at its commit while gc trashes chunks it uses: moved back"
    # A, version 3: R1 (held only by the snapshot forgotten next) then R4 (new)
    head -c $((1 * MiB)) /dev/urandom >"$W/r4.raw"
    dd if="$W/rnd.raw" of="$W/a3.raw" bs=1M count=1 status=none
    cat "$W/r4.raw" >>"$W/a3.raw"
    truncate -s 4M "$W/a3.raw"
    to_image "$W/a3.raw" "$IA"
    "$VIRTREPO" forget "$R" "${A_IDS[1]}" >/dev/null
    STALL=$W/commit.gate
    touch "$STALL"
    VIRTBACKUP_DEBUG_STALL=commit=$STALL "$VIRTBACKUP" -n -d "$DA" -l copy -o "$R" \
        >"$W/held.out" 2>&1 &
    PID=$!
    tb_wait_for "$PID" test -e "$STALL.stalled" ||
        tb_fail "the backup never reached its commit: $(cat "$W/held.out")"
    SESSION=$(find "$R/sessions" -type f ! -name '.*' -printf '%f\n')
    [ -n "$SESSION" ] || tb_fail "the held backup has no session object"
    gc_json >"$W/gc3.json"
    # R1 and R3 (both forgotten), R4 (no manifest yet); the held backup's new index
    tb_assert_eq 48 "$(jq .moved_chunks "$W/gc3.json")" "chunks moved while the backup is held"
    tb_assert_eq 2 "$(jq .moved_indexes "$W/gc3.json")" \
        "indexes moved while the backup is held (the forgotten snapshot's, the held backup's)"
    tb_assert_eq "$SESSION" "$(jq -r '.waiting_for | join(" ")' "$W/gc3.json")" \
        "the sessions the trash waits for (the held backup's)"
    rm -f "$STALL"
    wait "$PID" || tb_fail "the held backup failed: $(cat "$W/held.out")"
    rm -f "$STALL.stalled"
    tb_assert_eq 1 "$(snapshots_of "$DA" | wc -l)" "snapshots of $DA after the held backup"
    # its chunks are in the trash: readers find them there
    verify_all "snapshot committed with its chunks in the trash" 2
    restore_vm "$DA" "$W/a3.raw" "$DA read from the trash"
    gc_json >"$W/gc4.json"
    tb_assert_eq 33 "$(jq '[.trashes[] | select(.emptied) | .rescued] | add' "$W/gc4.json")" \
        "objects moved back (R1's and R4's chunks, the held backup's index)"
    tb_assert_eq 0 "$(trashed_objects)" "objects in the trash after the rescue"
    verify_all "after the rescue" 2
    restore_vm "$DA" "$W/a3.raw" "$DA after the rescue"

    tb_step "a backup whose session went stale (stopped) commits nothing"
    touch "$STALL"
    VIRTBACKUP_DEBUG_STALL=commit=$STALL "$VIRTBACKUP" -n -d "$DA" -l copy -o "$R" \
        >"$W/stale.out" 2>&1 &
    PID=$!
    tb_wait_for "$PID" test -e "$STALL.stalled" ||
        tb_fail "the backup never reached its commit: $(cat "$W/stale.out")"
    SESSION=$(find "$R/sessions" -type f ! -name '.*' -printf '%f\n')
    kill -STOP "$PID"
    # its heartbeat stopped: once the session is stale a gc deletes its object
    session_gone() {
        "$VIRTREPO" gc "$R" >"$W/gc-stale.out" 2>&1 || return 1
        [ ! -e "$R/sessions/$SESSION" ]
    }
    tb_wait_for "" session_gone || tb_fail "gc never removed the stale session: $(cat "$W/gc-stale.out")"
    kill -CONT "$PID"
    rm -f "$STALL"
    rc=0
    wait "$PID" || rc=$?
    rm -f "$STALL.stalled"
    tb_assert_eq 1 "$rc" "exit status of the backup whose session went stale"
    grep -q "session went stale: the repository may have been garbage-collected meanwhile; nothing committed" \
        "$W/stale.out" || tb_fail "the stale backup says: $(cat "$W/stale.out")"
    tb_assert_eq 1 "$(snapshots_of "$DA" | wc -l)" "snapshots of $DA after the stale backup"
    verify_all "after the stale backup" 2
    cp "$W/a3.raw" "$W/a-last.raw"
else
    tb_log "release build (no VIRTBACKUP_DEBUG_STALL): the held backup is skipped"
fi

tb_step "backups of two VMs in a loop while gc runs in a loop"
# loop_backups DOM IMAGE N: new data (a random 64 KiB chunk), a backup, the oldest snapshot
# but two forgotten (its chunk that the disk no longer holds is left to gc), N times. Ids made
# in one second need not sort by time: the order is kept in $W/ids-DOM, from each --json.
loop_backups() {
    local dom="$1" img="$2" i ids
    for ((i = 1; i <= $3; i++)); do
        head -c 65536 /dev/urandom >"$W/chunk-$dom"
        qemu-io -f qcow2 -c "write -s $W/chunk-$dom $((RANDOM % 4 * 64))k 64k" "$img" >/dev/null
        "$VIRTBACKUP" -n -d "$dom" -l copy -o "$R" --json="$W/loop-$dom.json" \
            >>"$W/loop-$dom.out" 2>&1 || return 1
        jq -r .snapshot "$W/loop-$dom.json" >>"$W/ids-$dom"
        mapfile -t ids <"$W/ids-$dom"
        if [ "${#ids[@]}" -gt 2 ]; then
            "$VIRTREPO" forget "$R" "${ids[0]}" >/dev/null || return 1
            printf '%s\n' "${ids[@]:1}" >"$W/ids-$dom"
        fi
        echo "$i" >>"$W/loop-$dom.n"
    done
}
END=$((SECONDS + 30))
(
    n=0
    while [ "$SECONDS" -lt "$END" ]; do
        # one gc at a time: a second one that meets a live gc session is refused; none here
        "$VIRTREPO" gc "$R" >>"$W/loop-gc.out" 2>&1 || exit 1
        n=$((n + 1))
    done
    echo "$n" >"$W/loop-gc.count"
) &
GC_PID=$!
(
    while [ "$SECONDS" -lt "$END" ]; do loop_backups "$DA" "$IA" 3 || exit 1; done
) &
A_PID=$!
(
    while [ "$SECONDS" -lt "$END" ]; do loop_backups "$DB" "$IB" 3 || exit 1; done
) &
B_PID=$!
wait "$A_PID" || tb_fail "the backups of $DA failed: $(tail -5 "$W/loop-$DA.out")"
wait "$B_PID" || tb_fail "the backups of $DB failed: $(tail -5 "$W/loop-$DB.out")"
wait "$GC_PID" || tb_fail "a gc in the loop failed: $(tail -5 "$W/loop-gc.out")"
MOVES=$(grep -c 'marked; [1-9][0-9]* chunks' "$W/loop-gc.out" || true)
BACK=$(grep -o '[0-9]* moved back' "$W/loop-gc.out" | awk '{n += $1} END {print n + 0}')
tb_log "$(cat "$W/loop-gc.count") gc runs, $MOVES of them moved chunks, $BACK objects moved back;" \
    "$(wc -l <"$W/loop-$DA.n") + $(wc -l <"$W/loop-$DB.n") backups"
[ "$MOVES" -gt 0 ] || tb_fail "no gc of the loop moved a chunk: $(tail -3 "$W/loop-gc.out")"
NA=$(snapshots_of "$DA" | wc -l)
NB=$(snapshots_of "$DB" | wc -l)
verify_all "after the loop" $((NA + NB))
qemu-img convert -U -f qcow2 -O raw "$IA" "$W/a-last.raw"
qemu-img convert -U -f qcow2 -O raw "$IB" "$W/b-last.raw"
restore_vm "$DA" "$W/a-last.raw" "$DA's last snapshot after the loop" --snapshot "$(tail -1 "$W/ids-$DA")"
restore_vm "$DB" "$W/b-last.raw" "$DB's last snapshot after the loop" --snapshot "$(tail -1 "$W/ids-$DB")"

if strings "$VIRTREPO" | grep -x VIRTBACKUP_DEBUG_STALL >/dev/null; then
    tb_step "gc killed with -9 in the middle of its move"
    # something to move: a snapshot of a random MiB, forgotten
    head -c $((1 * MiB)) /dev/urandom >"$W/r5.raw"
    qemu-io -f qcow2 -c "write -s $W/r5.raw 2M 1M" "$IA" >/dev/null
    vb_backup -d "$DA" -l copy -o "$R" --json="$W/garbage.json"
    "$VIRTREPO" forget "$R" "$(jq -r .snapshot "$W/garbage.json")" >/dev/null
    STALL=$W/move.gate
    touch "$STALL"
    VIRTBACKUP_DEBUG_STALL=gc-move=$STALL "$VIRTREPO" gc "$R" >"$W/killed-gc.out" 2>&1 &
    PID=$!
    tb_wait_for "$PID" test -e "$STALL.stalled" ||
        tb_fail "gc never moved a first object: $(cat "$W/killed-gc.out")"
    kill -9 "$PID"
    rc=0
    wait "$PID" || rc=$?
    tb_assert_eq 137 "$rc" "exit status of the killed gc"
    rm -f "$STALL" "$STALL.stalled"
    [ "$(trashed_objects)" -ge 1 ] || tb_fail "the killed gc moved nothing"
    verify_all "after gc was killed" $((NA + NB))
    rc=0
    "$VIRTREPO" gc "$R" >"$W/refused.out" 2>&1 || rc=$?
    tb_assert_eq 1 "$rc" "exit status of a gc while the killed one's session lives"
    grep -q "another gc is running" "$W/refused.out" ||
        tb_fail "the second gc says: $(cat "$W/refused.out")"
    # the killed gc's session goes stale (4 s without a heartbeat): then gc runs
    gc_ok() { "$VIRTREPO" gc "$R" >"$W/after-kill.out" 2>&1; }
    tb_wait_for "" gc_ok || tb_fail "gc never ran after the kill: $(cat "$W/after-kill.out")"
    gc_json >/dev/null
    tb_assert_eq 0 "$(trashed_objects)" "objects in the trash after two gc runs"
    verify_all "after gc runs following the kill" $((NA + NB))
    restore_vm "$DA" "$W/a-last.raw" "$DA after the killed gc" --snapshot "$(tail -1 "$W/ids-$DA")"
else
    tb_log "release build (no VIRTBACKUP_DEBUG_STALL): the kill mid-move is skipped"
fi

tb_pass "repository garbage collection"
