#!/bin/bash
# The checkpoints of backups into a repository (virtbackup(1), REPOSITORY OUTPUT): each
# repository keeps one libvirt checkpoint per domain, virtnbdbackup.<repo id>.<n>, recorded in
# its newest snapshot's manifest (virtbackup-repository(5)), and stream directories leave it
# alone. A running domain:
#  - repo full: virtnbdbackup.<id>.0 exists; the manifest records its name, XML and libvirt's
#    creation time; a second full makes .1 and removes .0;
#  - libvirt forgets the repository's checkpoint: its bitmap is left by a directory full
#    and removed by the repository's next full;
#  - a stream-directory chain interleaved (dir full, repo full, dir inc, repo full, dir inc):
#    the directory's incs stay incremental (their files and META), its restore equals the disk,
#    and the repository's checkpoint survives every directory run;
#  - libvirt forgets the directory chain's checkpoints: the next inc redefines them from their
#    saved XML (whose parents were repository checkpoints deleted since) and stays incremental;
#  - two repositories for one domain keep one checkpoint each;
#  - (debug builds) a run killed at its commit leaves its checkpoint; the next run removes it,
#    naming it, and ends with exactly one checkpoint of that repository;
#  - -l copy makes none; a shut-off domain's full (started paused) makes one;
#  - the reference tool: its inc of the directory chain works with repository checkpoints
#    present (also when it must redefine the chain's checkpoints) and leaves them; its full
#    removes them, and the repository's next full makes a new one;
#  - a directory inc whose parent's bitmap was lost becomes a new base and leaves the
#    repositories' checkpoints and bitmaps alone.
# Each snapshot's disk is exported and compared with the disk.
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
R1=$W/repo1
R2=$W/repo2
DIR=$W/chain

# checkpoints [PATTERN]: the domain's checkpoint names matching the extended regex, sorted
checkpoints() { tb_virsh checkpoint-list "$DOM" --name | { grep -E "^${1:-.}" || true; } | sorted; }
# sorted [NAMES...]: the names (arguments, or lines of stdin), sorted, on one line
sorted() {
    if [ $# -gt 0 ]; then printf '%s\n' "$@"; else cat; fi | LC_ALL=C sort | xargs
}
repo_id() { jq -r .id "$1/config"; }
# bitmaps: the running domain's dirty bitmaps (qemu's, as query-block lists them), sorted
bitmaps() {
    tb_virsh qemu-monitor-command "$DOM" '{"execute":"query-block"}' |
        jq -r '.return[].inserted."dirty-bitmaps"[]?.name' | sorted
}
# repo_run REPO LEVEL [ARGS...]: virtbackup -l LEVEL into REPO, its output in $W/run.out; the
# snapshot it committed (--json) becomes REPO's latest (two of one second sort at random)
repo_run() {
    local repo=$1 level=$2 rc=0
    shift 2
    "$VIRTBACKUP" -n -d "$DOM" -l "$level" -o "$repo" --json="$W/run.json" "$@" \
        >"$W/run.out" 2>&1 || rc=$?
    sed 's/^/    | /' "$W/run.out" >&2
    [ "$rc" -eq 0 ] || tb_fail "virtbackup -l $level -o $repo exited $rc"
    jq -r .snapshot "$W/run.json" >"$repo.latest"
}
# latest REPO: the manifest of the snapshot the last run into REPO committed
latest() { echo "$1/snapshots/$(tb_virsh domuuid "$DOM")/$(cat "$1.latest").json"; }
# export_compare REPO SNAPSHOT.raw WHAT: vda of REPO's latest snapshot equals the disk
export_compare() {
    local id
    id=$(jq -r .id "$(latest "$1")")
    "$RAW" export "$1" "$id" vda "$W/export.raw" || tb_fail "$3: repo-raw export failed"
    cmp "$W/export.raw" "$2" || tb_fail "$3: vda of snapshot $id differs from the disk"
    tb_log "identical: snapshot $id vda == $(basename "$2") ($3)"
    rm -f "$W/export.raw"
}
# repo_full REPO WHAT [ARGS...]: virtbackup -l full into REPO, its output in $W/run.out;
# the disk as of the run compared with the snapshot
repo_full() {
    local repo=$1 what=$2
    shift 2
    tb_snapshot_image "$DOM" vda "$W/now.raw"
    repo_run "$repo" full "$@"
    export_compare "$repo" "$W/now.raw" "$what"
}
# assert_recorded REPO NAME: REPO's latest manifest records checkpoint NAME as libvirt has it
assert_recorded() {
    local m xml
    m=$(latest "$1")
    tb_assert_eq "$2" "$(jq -r '.checkpoint.name' "$m")" "checkpoint named in $(basename "$m")"
    tb_assert_eq full "$(jq -r .level "$m")" "level in $(basename "$m")"
    jq -r .checkpoint.xml "$m" >"$W/cp.xml"
    xmllint --noout "$W/cp.xml" || tb_fail "the manifest's checkpoint XML does not parse"
    tb_assert_eq "$2" "$(xmllint --xpath 'string(/domaincheckpoint/name)' "$W/cp.xml")" \
        "name in the manifest's checkpoint XML"
    xml=$(tb_virsh checkpoint-dumpxml "$DOM" "$2")
    tb_assert_eq "$(xmllint --xpath 'string(/domaincheckpoint/creationTime)' - <<<"$xml")" \
        "$(jq -r .checkpoint.creation_time "$m")" "creation_time in the manifest and libvirt's"
}

tb_step "a running domain, a repository of 1 MiB chunks"
tb_create_domain rc 8M
DOM=$TB_DOMAIN
tb_qemu_io "$DOM" vda "write -P 0x11 0 2M"
"$VIRTREPO" init "$R1" --chunk-size 1M >/dev/null
ID1=$(repo_id "$R1")
C1="virtnbdbackup\\.$ID1\\."

tb_step "repo full: virtnbdbackup.<id>.0, recorded in the manifest"
repo_full "$R1" "first repo full"
tb_assert_eq "virtnbdbackup.$ID1.0" "$(checkpoints)" "checkpoints after the first repo full"
assert_recorded "$R1" "virtnbdbackup.$ID1.0"

tb_step "second repo full: .1 made, .0 removed"
tb_qemu_io "$DOM" vda "write -P 0x12 2M 1M"
repo_full "$R1" "second repo full"
tb_assert_eq "virtnbdbackup.$ID1.1" "$(checkpoints)" "checkpoints after the second repo full"
assert_recorded "$R1" "virtnbdbackup.$ID1.1"
grep -q "removed checkpoint virtnbdbackup.$ID1.0" "$W/run.out" ||
    tb_fail "the run did not name the checkpoint it replaced: $(cat "$W/run.out")"
tb_assert_eq "virtnbdbackup.$ID1.1" "$(bitmaps)" "bitmaps after the second repo full"
# libvirt forgets it, its bitmap stays: kept by the directory runs, removed by the next full
tb_virsh checkpoint-delete "$DOM" "virtnbdbackup.$ID1.1" --metadata >/dev/null

tb_step "interleaved with a stream directory: dir full, repo full, dir inc, repo full, dir inc"
vb_backup -d "$DOM" -l full -o "$DIR"
tb_assert_eq "virtnbdbackup.0" "$(checkpoints)" "checkpoints after the directory full"
tb_assert_eq "$(sorted "virtnbdbackup.0" "virtnbdbackup.$ID1.1")" "$(bitmaps)" \
    "bitmaps after the directory full (the repository's left alone)"
tb_qemu_io "$DOM" vda "write -P 0x13 3M 64k"
repo_full "$R1" "repo full after the directory full"
tb_assert_eq "$(sorted "virtnbdbackup.0" "virtnbdbackup.$ID1.2")" "$(checkpoints)" \
    "checkpoints after the repo full (the directory's left alone)"
tb_assert_eq "$(sorted "virtnbdbackup.0" "virtnbdbackup.$ID1.2")" "$(bitmaps)" \
    "bitmaps after the repo full (the forgotten checkpoint's removed)"
assert_recorded "$R1" "virtnbdbackup.$ID1.2"
tb_qemu_io "$DOM" vda "write -P 0x14 4M 64k"
tb_snapshot_image "$DOM" vda "$W/inc1.raw"
vb_backup -d "$DOM" -l inc -o "$DIR"
assert_meta "$DIR/vda.inc.virtnbdbackup.1.data" true virtnbdbackup.1 virtnbdbackup.0 false
tb_assert_eq "$(sorted "virtnbdbackup.0" "virtnbdbackup.1" "virtnbdbackup.$ID1.2")" "$(checkpoints)" \
    "checkpoints after the directory inc"
vr_restore_compare "$DIR" "$W/inc1.raw" "directory chain, first inc"
tb_qemu_io "$DOM" vda "write -P 0x15 5M 64k"
repo_full "$R1" "repo full between directory incs"
tb_assert_eq "$(sorted "virtnbdbackup.0" "virtnbdbackup.1" "virtnbdbackup.$ID1.3")" "$(checkpoints)" \
    "checkpoints after the second interleaved repo full"
tb_qemu_io "$DOM" vda "write -P 0x16 6M 64k"
tb_snapshot_image "$DOM" vda "$W/inc2.raw"
vb_backup -d "$DOM" -l inc -o "$DIR"
assert_meta "$DIR/vda.inc.virtnbdbackup.2.data" true virtnbdbackup.2 virtnbdbackup.1 false
tb_assert_eq '["virtnbdbackup.0","virtnbdbackup.1","virtnbdbackup.2"]' \
    "$(jq -c . "$DIR/$DOM.cpt")" "the directory chain's list"
tb_assert_eq "$(sorted "virtnbdbackup.0" "virtnbdbackup.1" "virtnbdbackup.2" "virtnbdbackup.$ID1.3")" \
    "$(checkpoints)" "checkpoints after the second directory inc"
vr_restore_compare "$DIR" "$W/inc2.raw" "directory chain, second inc"

tb_step "libvirt forgets the directory's checkpoints: the next inc redefines them, stays inc"
# (their saved XML names no repository checkpoint as parent: those are deleted by now)
forget_chain() {
    local c
    for c in $(tb_virsh checkpoint-list "$DOM" --name | grep -E '^virtnbdbackup\.[0-9]+$'); do
        tb_virsh checkpoint-delete "$DOM" "$c" --metadata >/dev/null
    done
}
forget_chain
tb_assert_eq "virtnbdbackup.$ID1.3" "$(checkpoints)" "checkpoints once libvirt forgot the chain's"
tb_qemu_io "$DOM" vda "write -P 0x1a 2M 64k"
tb_snapshot_image "$DOM" vda "$W/inc3.raw"
out=$("$VIRTBACKUP" -n -d "$DOM" -l inc -o "$DIR" 2>&1) || tb_fail "inc after the forgetting: $out"
printf '%s\n' "$out" | sed 's/^/    | /' >&2
assert_meta "$DIR/vda.inc.virtnbdbackup.3.data" true virtnbdbackup.3 virtnbdbackup.2 false
tb_assert_eq "$(sorted virtnbdbackup.0 virtnbdbackup.1 virtnbdbackup.2 virtnbdbackup.3 \
    "virtnbdbackup.$ID1.3")" "$(checkpoints)" "checkpoints after the inc that redefined them"
vr_restore_compare "$DIR" "$W/inc3.raw" "directory chain, inc after the redefinition"

tb_step "two repositories for one domain: one checkpoint each"
"$VIRTREPO" init "$R2" --chunk-size 1M >/dev/null
ID2=$(repo_id "$R2")
C2="virtnbdbackup\\.$ID2\\."
repo_full "$R2" "first full into the second repository"
tb_assert_eq "virtnbdbackup.$ID2.0" "$(checkpoints "$C2")" "the second repository's checkpoints"
tb_assert_eq "virtnbdbackup.$ID1.3" "$(checkpoints "$C1")" \
    "the first repository's checkpoints after a full into the second"
assert_recorded "$R2" "virtnbdbackup.$ID2.0"
tb_qemu_io "$DOM" vda "write -P 0x17 7M 64k"
repo_full "$R1" "full into the first repository again"
tb_assert_eq "virtnbdbackup.$ID1.4" "$(checkpoints "$C1")" "the first repository's checkpoints"
tb_assert_eq "virtnbdbackup.$ID2.0" "$(checkpoints "$C2")" \
    "the second repository's checkpoints after a full into the first"

if strings "$VIRTBACKUP" | grep -x VIRTBACKUP_DEBUG_STALL >/dev/null; then
    tb_step "a run killed at its commit leaves its checkpoint; the next run removes it"
    STALL=$W/commit.gate
    touch "$STALL"
    VIRTBACKUP_DEBUG_STALL=commit=$STALL "$VIRTBACKUP" -n -d "$DOM" -l full -o "$R1" \
        >"$W/killed.out" 2>&1 &
    PID=$!
    tb_wait_for "$PID" test -e "$STALL.stalled" ||
        tb_fail "the run never reached its commit: $(cat "$W/killed.out")"
    kill -9 "$PID"
    wait "$PID" || true
    rm -f "$STALL" "$STALL.stalled"
    tb_assert_eq "$(sorted "virtnbdbackup.$ID1.4" "virtnbdbackup.$ID1.5")" "$(checkpoints "$C1")" \
        "the first repository's checkpoints after the kill (.5 orphaned)"
    tb_assert_eq "virtnbdbackup.$ID1.4" "$(jq -r .checkpoint.name "$(latest "$R1")")" \
        "checkpoint of the newest snapshot after the kill"
    repo_full "$R1" "full after the kill at the commit"
    grep -q "removing checkpoint virtnbdbackup.$ID1.5: no snapshot" "$W/run.out" ||
        tb_fail "the orphan was not named: $(cat "$W/run.out")"
    tb_assert_eq "virtnbdbackup.$ID1.5" "$(checkpoints "$C1")" \
        "the first repository's checkpoints after the next run"
    assert_recorded "$R1" "virtnbdbackup.$ID1.5"
    NEXT=6
else
    tb_log "release build (no VIRTBACKUP_DEBUG_STALL): the kill at the commit is skipped"
    NEXT=5
fi
NOW=$((NEXT - 1))

tb_step "-l copy makes no checkpoint"
before=$(checkpoints)
repo_run "$R1" copy
tb_assert_eq null "$(jq -c .checkpoint "$(latest "$R1")")" "the copy's manifest checkpoint"
tb_assert_eq "$before" "$(checkpoints)" "checkpoints after the copy"

if command -v virtnbdbackup >/dev/null; then
    tb_step "the reference: its inc of the directory chain with repository checkpoints present"
    forget_chain # the reference redefines them from the chain's checkpoints/ too
    tb_qemu_io "$DOM" vda "write -P 0x18 1M 64k"
    tb_snapshot_image "$DOM" vda "$W/ref.raw"
    out=$(virtnbdbackup -d "$DOM" -l inc -o "$DIR" -S "$W" -f "$W/ref.sock" -n 2>&1) ||
        { printf '%s\n' "$out" | tail -20 >&2; tb_fail "virtnbdbackup -l inc with repository checkpoints present"; }
    [ -f "$DIR/vda.inc.virtnbdbackup.4.data" ] || tb_fail "no reference inc file: $(ls "$DIR")"
    vr_restore_compare "$DIR" "$W/ref.raw" "directory chain continued by the reference"
    tb_assert_eq "$(sorted "virtnbdbackup.$ID1.$NOW" "virtnbdbackup.$ID2.0")" \
        "$(checkpoints "virtnbdbackup\\.[0-9a-f]{32}\\.")" \
        "repository checkpoints after the reference's inc"

    tb_step "the reference's full removes every virtnbdbackup* checkpoint; the next repo full"
    # the reference leaves its job to end after it exits; its next run refuses an active one
    tb_wait_for "" eval 'tb_virsh domjobinfo "$DOM" 2>/dev/null | grep -q "Job type: *None"' ||
        tb_fail "the reference's inc left a job on $DOM: $(tb_virsh domjobinfo "$DOM" 2>&1)"
    out=$(virtnbdbackup -d "$DOM" -l full -o "$W/refdir" -S "$W" -f "$W/ref.sock" -n 2>&1) ||
        { printf '%s\n' "$out" | tail -20 >&2; tb_fail "virtnbdbackup -l full"; }
    tb_assert_eq "virtnbdbackup.0" "$(checkpoints)" "checkpoints after the reference's full"
    repo_full "$R1" "repo full after the reference's full"
    tb_assert_eq "$(sorted "virtnbdbackup.0" "virtnbdbackup.$ID1.$NEXT")" "$(checkpoints)" \
        "checkpoints after the repo full that followed the reference's full"
    assert_recorded "$R1" "virtnbdbackup.$ID1.$NEXT"
    NOW=$NEXT
    NEXT=$((NEXT + 1))
else
    tb_log "no reference tool (virtnbdbackup): its steps are skipped"
fi

tb_step "a directory inc whose parent's bitmap was lost: a new base; the repository's kept"
DIR2=$W/chain2
vb_backup -d "$DOM" -l full -o "$DIR2"
RC=$(checkpoints "virtnbdbackup\\.[0-9a-f]{32}\\.")
tb_virsh destroy "$DOM" >/dev/null
IMG=${TB_IMAGES[0]}
qemu-img bitmap --remove "$IMG" virtnbdbackup.0 || tb_fail "cannot remove the bitmap"
qemu-io -f qcow2 -c "write -P 0x19 1M 64k" "$IMG" >/dev/null
qemu-img convert -f qcow2 -O raw "$IMG" "$W/base.raw"
out=$("$VIRTBACKUP" -n -d "$DOM" -l inc -o "$DIR2" 2>&1) || tb_fail "fallback inc failed: $out"
grep -q "new base" <<<"$out" || tb_fail "the fallback was not reported: $out"
assert_meta "$DIR2/vda.inc.virtnbdbackup.1.data" false virtnbdbackup.1 "" false
vr_restore_compare "$DIR2" "$W/base.raw" "directory chain, new base"
tb_assert_eq "$RC" "$(checkpoints "virtnbdbackup\\.[0-9a-f]{32}\\.")" \
    "repository checkpoints after the new base"
tb_assert_eq "$(tr " " "\n" <<<"virtnbdbackup.1 $RC" | sorted)" \
    "$(qemu-img info -U --output=json "$IMG" | jq -r '."format-specific".data.bitmaps[].name' |
        sorted)" "bitmaps in the image after the new base"

tb_step "a shut-off domain: the full starts it paused and makes the checkpoint"
qemu-img convert -U -f qcow2 -O raw "${TB_IMAGES[0]}" "$W/off.raw"
repo_run "$R1" full
export_compare "$R1" "$W/off.raw" "full of the shut-off domain"
tb_assert_eq "shut off" "$(tb_virsh domstate "$DOM" | xargs)" "state after the full"
tb_assert_eq "virtnbdbackup.$ID1.$NEXT" "$(checkpoints "$C1")" \
    "the first repository's checkpoints after the shut-off full"
assert_recorded "$R1" "virtnbdbackup.$ID1.$NEXT"

"$VIRTREPO" verify "$R1" >"$W/verify.out" 2>&1 || tb_fail "verify: $(cat "$W/verify.out")"
tb_pass "repository checkpoints"
