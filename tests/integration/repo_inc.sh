#!/bin/bash
# Incrementals into a repository (virtbackup(1), REPOSITORY OUTPUT): a running domain with two
# disks, a repository of 1 MiB chunks.
#  - -l diff is refused; -l inc before any full fails saying there is no full;
#  - full, change, inc, change (a zeroed range, vdb grown), inc, change, auto: each snapshot
#    restored (virtrestore -i REPO --snapshot ID) and compared with the disks as of its run;
#    the incs are level "inc" with the previous snapshot as parent, read only the chunks that
#    changed (--json bytes_read), and the repository keeps one checkpoint;
#  - a base chunk damaged (its header): the next inc reads that chunk again (warned), not the
#    whole disk, and its snapshot restores;
#  - libvirt's checkpoint metadata removed: the next inc takes the checkpoint back from the
#    manifest and stays incremental;
#  - (debug builds) an inc killed at its commit: the next inc removes its checkpoint and is an
#    inc of the same base;
#  - --full-every: each snapshot records its chain's full read time (full_time), so the
#    chain's full may be forgotten; a full read older than the limit is not used, nor (for a
#    manifest without full_time) one no longer in the repository
#    (info line), and the run is the next inc's base;
#  - the base's checkpoint deleted with its bitmap (the reference's full does that): the
#    next inc reads every disk in full, warned, and is a full;
#  - libvirt's checkpoint of the base's name with another creation time than the manifest's:
#    a full read, warned;
#  - a stream-directory chain interleaved (dir full, repo inc, dir inc, repo inc): both stay
#    incremental, the directory's inc restores to the disk;
#  - a shut-off domain with --no-start-domain: an inc read offline through the persistent
#    bitmap, its snapshot recording the base's checkpoint (kept), the base of the next inc;
#  - offline again, the persistent bitmap removed from vda's image: vda read in full
#    (warned), vdb still incremental; running again, libvirt refuses the checkpoint: a full
#    read, warned;
#  - (with the reference tool) its full deletes the repository's checkpoint: the next auto
#    reads every disk in full, warned;
#  - -l auto into a repository without a full of the domain makes a full.
# Every snapshot still restores at the end, the chain's full forgotten: none needs its parent.
set -euo pipefail

# shellcheck source=../lib/testbed.sh
source "$(dirname "${BASH_SOURCE[0]}")/../lib/testbed.sh"
# shellcheck source=../lib/chain.sh
source "$(dirname "${BASH_SOURCE[0]}")/../lib/chain.sh"
tb_init

VIRTREPO="$VB_BUILD_DIR/src/virtrepo/virtrepo"
VR="$VB_BUILD_DIR/src/restore/virtrestore"
for t in "$VIRTREPO" "$VR"; do [ -x "$t" ] || tb_fail "$t not built"; done
W=$TB_WORKDIR
R=$W/repo
MiB=1048576
export TMPDIR=$W/tmp
mkdir -p "$TMPDIR"

tb_create_domain ri 16M 4M
DOM=$TB_DOMAIN
UUID=$(tb_virsh domuuid "$DOM")
VDA=$(basename "${TB_IMAGES[0]}")
VDB=$(basename "${TB_IMAGES[1]}")
"$VIRTREPO" init "$R" --chunk-size 1M >/dev/null
RID=$(jq -r .id "$R/config")

# run LEVEL NAME [ARGS...]: the disks as of now into $W/NAME.vd[ab].raw, then virtbackup -l
# LEVEL into the repository; its output in $W/NAME.out, its summary in $W/NAME.json and the
# snapshot it committed in $W/NAME.id
run() {
    local level=$1 name=$2 rc=0
    shift 2
    tb_snapshot_image "$DOM" vda "$W/$name.vda.raw"
    tb_snapshot_image "$DOM" vdb "$W/$name.vdb.raw"
    "$VIRTBACKUP" -n -d "$DOM" -l "$level" -o "$R" --json="$W/$name.json" "$@" \
        >"$W/$name.out" 2>&1 || rc=$?
    sed 's/^/    | /' "$W/$name.out" >&2
    [ "$rc" -eq 0 ] || tb_fail "virtbackup -l $level ($name) exited $rc"
    jq -r .snapshot "$W/$name.json" >"$W/$name.id"
}
manifest() { echo "$R/snapshots/$UUID/$(cat "$W/$1.id").json"; }
read_of() { jq --arg d "$2" '.disks[] | select(.disk == $d) | .bytes_read' "$W/$1.json"; }
# restored NAME: the snapshot of run NAME restored, each disk equal to the disk as of the run
restored() {
    local out=$W/restore.$1 id
    id=$(cat "$W/$1.id")
    rm -rf "$out"
    "$VR" -i "$R" -o "$out" -n --snapshot "$id" || tb_fail "virtrestore --snapshot $id failed"
    for d in vda vdb; do
        local img=$VDA
        [ $d = vda ] || img=$VDB
        qemu-img compare -F raw "$out/$img" "$W/$1.$d.raw" >/dev/null ||
            tb_fail "$1: $d of snapshot $id differs from the disk as of its run"
    done
    tb_log "identical: snapshot $id ($1) == the disks as of its run"
}
# is_inc NAME PARENT: the manifest of run NAME is an inc of run PARENT's snapshot
is_inc() {
    local m
    m=$(manifest "$1")
    tb_assert_eq "inc $(cat "$W/$2.id")" "$(jq -r '"\(.level) \(.parent)"' "$m")" \
        "level and parent of $1"
}
repo_checkpoints() { tb_virsh checkpoint-list "$DOM" --name | grep -c "^virtnbdbackup\.$RID\." || true; }

tb_step "-l diff is refused; -l inc without a full fails"
vb_backup_fails "-l diff does not apply to a repository" -d "$DOM" -l diff -o "$R"
vb_backup_fails "holds no base for domain $DOM" -d "$DOM" -l inc -o "$R"

tb_step "full"
tb_qemu_io "$DOM" vda "write -P 0x11 0 6M"
tb_qemu_io "$DOM" vdb "write -P 0x22 0 1M"
run full full
restored full
FULL_READ=$(read_of full vda)
[ "$FULL_READ" -ge $((6 * MiB)) ] || tb_fail "the full read $FULL_READ bytes of vda"

tb_step "change, inc: only the changed chunks are read"
tb_qemu_io "$DOM" vda "write -P 0x33 3100k 64k"
tb_qemu_io "$DOM" vda "write -P 0x44 12M 4k"
run inc inc1
is_inc inc1 full
restored inc1
r=$(read_of inc1 vda)
# chunk 3 (allocated whole) and chunk 12 (one 64 KiB cluster)
[ "$r" -gt 0 ] && [ "$r" -le $((2 * MiB)) ] || tb_fail "inc1 read $r bytes of vda"
tb_assert_eq 0 "$(read_of inc1 vdb)" "bytes read of the unchanged vdb"
tb_assert_eq "5 1" "$(jq -r '[.disks[] | .chunks_copied] | join(" ")' "$W/inc1.json")" \
    "chunks of data copied from the base (vda: 0-2, 4, 5; vdb: 0)"
grep -q "vda: 2 of 16 chunks changed since the base" "$W/inc1.out" ||
    tb_fail "inc1 did not say which chunks it read"
tb_assert_eq 1 "$(repo_checkpoints)" "the repository's checkpoints after inc1"

tb_step "change (a zeroed range, vdb grown), inc: vdb restored at its new size"
tb_qemu_io "$DOM" vda "write -z 0 1M"
tb_virsh blockresize "$DOM" vdb 6M >/dev/null
tb_qemu_io "$DOM" vdb "write -P 0x55 5M 64k"
run inc inc2
is_inc inc2 inc1
restored inc2
tb_assert_eq $((6 * MiB)) "$(jq '.disks[] | select(.target == "vdb") | .virtual_size' \
    "$(manifest inc2)")" "vdb's size in inc2's manifest"
r=$(read_of inc2 vda)
[ "$r" -le $((1 * MiB)) ] || tb_fail "inc2 read $r bytes of vda"
r=$(read_of inc2 vdb)
[ "$r" -le $((2 * MiB)) ] || tb_fail "inc2 read $r bytes of vdb"

tb_step "change, auto: an inc"
tb_qemu_io "$DOM" vdb "write -P 0x66 0 4k"
run auto auto
is_inc auto inc2
restored auto
[ "$(read_of auto vda)" -eq 0 ] || tb_fail "auto read vda, which did not change"

tb_step "a base chunk damaged: the next inc reads that chunk again, warned"
# vda's chunk 1 (0x11, untouched since the full): flip a byte of its object's header; chunks
# 2, 4 and 5 hold the same content (one object): the inc reads those four (4 MiB) and chunk 8
# (64 KiB changed), not chunk 3 (0x11 and 0x33), whose object is sound
digest=$(dd if="$W/auto.vda.raw" bs=1M skip=1 count=1 status=none | sha256sum | cut -c1-64)
obj=$R/chunks/${digest:0:2}/$digest
[ -f "$obj" ] || tb_fail "no chunk object $obj"
printf '\xff' | dd of="$obj" bs=1 seek=9 conv=notrunc status=none
tb_qemu_io "$DOM" vda "write -P 0x77 8M 64k"
run inc damaged
grep -q "vda: chunk 1 of the base cannot be used .*: read again" "$W/damaged.out" ||
    tb_fail "no warning about the damaged chunk"
is_inc damaged auto
restored damaged
tb_assert_eq $((4 * MiB + 64 * 1024)) "$(read_of damaged vda)" "bytes of vda read by damaged"
[ "$(read_of damaged vdb)" -eq 0 ] || tb_fail "vdb was read, its base is sound"

tb_step "libvirt's checkpoint metadata removed: taken back from the manifest, still an inc"
cp=$(jq -r .checkpoint.name "$(manifest damaged)")
tb_virsh checkpoint-delete "$DOM" "$cp" --metadata >/dev/null
tb_qemu_io "$DOM" vdb "write -P 0x88 2M 64k"
run inc redefined
grep -q "redefined checkpoint $cp from the manifest" "$W/redefined.out" ||
    tb_fail "the run did not take the checkpoint back"
is_inc redefined damaged
restored redefined
[ "$(read_of redefined vda)" -eq 0 ] || tb_fail "vda read after the checkpoint was taken back"
tb_assert_eq 1 "$(repo_checkpoints)" "the repository's checkpoints after the redefinition"

if strings "$VIRTBACKUP" | grep -x VIRTBACKUP_DEBUG_STALL >/dev/null; then
    tb_step "an inc killed at its commit: the next inc removes its checkpoint, same base"
    STALL=$W/commit.gate
    touch "$STALL"
    tb_qemu_io "$DOM" vda "write -P 0x8a 11M 64k"
    VIRTBACKUP_DEBUG_STALL=commit=$STALL "$VIRTBACKUP" -n -d "$DOM" -l inc -o "$R" \
        >"$W/killed.out" 2>&1 &
    PID=$!
    tb_wait_for "$PID" test -e "$STALL.stalled" ||
        tb_fail "the run never reached its commit: $(cat "$W/killed.out")"
    kill -9 "$PID"
    wait "$PID" || true
    rm -f "$STALL" "$STALL.stalled"
    tb_assert_eq 2 "$(repo_checkpoints)" "the repository's checkpoints after the kill"
    run inc after_kill
    grep -q "removing checkpoint virtnbdbackup.$RID.* no snapshot" "$W/after_kill.out" ||
        tb_fail "the killed run's checkpoint was not removed"
    is_inc after_kill redefined
    restored after_kill
    tb_assert_eq 1 "$(repo_checkpoints)" "the repository's checkpoints after the next inc"
    [ "$(read_of after_kill vda)" -le $((1 * MiB)) ] || tb_fail "after_kill read too much of vda"
else
    tb_log "release build (no VIRTBACKUP_DEBUG_STALL): the kill at the commit is skipped"
fi

tb_step "--full-every: every snapshot records when its chain's full read was (full_time)"
"$VIRTREPO" snapshots "$R" --json | jq -r '.[-1].id' >"$W/before_aged.id"
m=$(manifest before_aged)
# the chain walked back to its full read, as the manifests' parents give it
walk=$m
while [ "$(jq -r .level "$walk")" = inc ]; do
    walk=$R/snapshots/$UUID/$(jq -r .parent "$walk").json
done
tb_assert_eq "$(jq -r .time "$walk")" "$(jq -r .full_time "$walk")" \
    "a full's full_time is its own time"
tb_assert_eq "$(jq -r .time "$walk")" "$(jq -r .full_time "$m")" \
    "the newest inc's full_time is its chain's full read's time"

tb_step "--full-every: the chain's full forgotten, the next inc still uses the base"
# each snapshot is complete: a prune may remove the chain's older snapshots
tb_qemu_io "$DOM" vda "write -P 0x99 9M 4k"
"$VIRTREPO" forget "$R" "$(basename "$walk" .json)" >/dev/null
run inc aged
is_inc aged before_aged
restored aged

tb_step "--full-every: a chain whose full read is older than the limit is not used"
# the base's recorded full read moved 40 days back (the test edits the stored manifest)
old_time=$(date -u -d '-40 days' +%Y-%m-%dT%H:%M:%S+00:00)
jq --arg t "$old_time" '.full_time = $t' "$(manifest aged)" >"$W/m.json"
cat "$W/m.json" >"$(manifest aged)"
tb_qemu_io "$DOM" vda "write -P 0x9c 11M 4k"
run inc too_old
grep -q "is older than --full-every 30 days: reading every disk in full" "$W/too_old.out" ||
    tb_fail "no --full-every info line"
tb_assert_eq "full null" "$(jq -r '"\(.level) \(.parent)"' "$(manifest too_old)")" "too_old's level"
[ "$(read_of too_old vda)" -ge $((5 * MiB)) ] || tb_fail "too_old did not read vda in full"
restored too_old

tb_step "--full-every: a manifest without full_time: the chain is walked; its full read gone"
tb_qemu_io "$DOM" vda "write -P 0x9d 12M 4k"
run inc walked
is_inc walked too_old
jq 'del(.full_time)' "$(manifest walked)" >"$W/m.json"
cat "$W/m.json" >"$(manifest walked)"
"$VIRTREPO" forget "$R" "$(cat "$W/too_old.id")" >/dev/null
tb_qemu_io "$DOM" vda "write -P 0x9e 13M 4k"
run inc gone
grep -q "chain started from is no longer in the repository (--full-every): reading every disk in full" \
    "$W/gone.out" || tb_fail "no --full-every info line"
tb_assert_eq "full null" "$(jq -r '"\(.level) \(.parent)"' "$(manifest gone)")" "gone's level"
restored gone
tb_qemu_io "$DOM" vda "write -P 0x9a 10M 4k"
run inc after_aged --full-every 0
is_inc after_aged gone

tb_step "the checkpoint deleted with its bitmap (as the reference's full does): a full read"
cp=$(jq -r .checkpoint.name "$(manifest after_aged)")
tb_virsh checkpoint-delete "$DOM" "$cp" >/dev/null
tb_qemu_io "$DOM" vdb "write -P 0x9b 3M 4k"
run inc lost
grep -q "warning: not using snapshot $(cat "$W/after_aged.id") as the base: .*reading every disk in full" \
    "$W/lost.out" || tb_fail "no warning about the lost checkpoint"
tb_assert_eq "full null" "$(jq -r '"\(.level) \(.parent)"' "$(manifest lost)")" "lost's level"
restored lost
tb_assert_eq 1 "$(repo_checkpoints)" "the repository's checkpoints after the full read"

tb_step "libvirt's checkpoint of that name is not the manifest's (another creation time)"
cp=$(jq -r .checkpoint.name "$(manifest lost)")
tb_virsh checkpoint-dumpxml "$DOM" "$cp" --no-domain >"$W/cp.xml"
t=$(xmllint --xpath 'string(/domaincheckpoint/creationTime)' "$W/cp.xml")
sed -i "s|<creationTime>$t</creationTime>|<creationTime>$((t - 100))</creationTime>|" "$W/cp.xml"
tb_virsh checkpoint-delete "$DOM" "$cp" --metadata >/dev/null
tb_virsh checkpoint-create "$DOM" "$W/cp.xml" --redefine >/dev/null
run inc other
grep -q "warning: not using snapshot $(cat "$W/lost.id") as the base: libvirt's checkpoint $cp was created at $((t - 100)), the manifest's at $t" \
    "$W/other.out" || tb_fail "no warning about the other checkpoint"
tb_assert_eq "full null" "$(jq -r '"\(.level) \(.parent)"' "$(manifest other)")" "other's level"
restored other

tb_step "a stream-directory chain interleaved: dir full, repo inc, dir inc, repo inc"
vb_backup -d "$DOM" -l full -o "$W/dir"
tb_qemu_io "$DOM" vda "write -P 0xa1 13M 64k"
run inc mixed1
is_inc mixed1 other
restored mixed1
tb_qemu_io "$DOM" vdb "write -P 0xa2 1M 64k"
tb_snapshot_image "$DOM" vda "$W/dirinc.vda.raw"
vb_backup -d "$DOM" -l inc -o "$W/dir"
assert_meta "$W/dir/vda.inc.virtnbdbackup.1.data" true virtnbdbackup.1 virtnbdbackup.0 false
vr_restore_compare "$W/dir" "$W/dirinc.vda.raw" "the directory chain's inc between repository incs"
tb_qemu_io "$DOM" vda "write -P 0xa3 14M 4k"
run inc mixed2
is_inc mixed2 mixed1
restored mixed2
[ "$(read_of mixed2 vda)" -le $((1 * MiB)) ] || tb_fail "mixed2 read too much of vda"
[ "$(read_of mixed2 vdb)" -le $((1 * MiB)) ] || tb_fail "mixed2 read too much of vdb"
tb_assert_eq 1 "$(repo_checkpoints)" "the repository's checkpoints beside the directory chain"

tb_step "shut off, --no-start-domain: an inc read offline through the persistent bitmap"
tb_qemu_io "$DOM" vda "write -P 0xb1 15M 64k"
tb_snapshot_image "$DOM" vda "$W/offline.vda.raw"
tb_snapshot_image "$DOM" vdb "$W/offline.vdb.raw"
tb_virsh destroy "$DOM" >/dev/null
rc=0
"$VIRTBACKUP" -n -d "$DOM" -l inc --no-start-domain -o "$R" --json="$W/offline.json" \
    >"$W/offline.out" 2>&1 || rc=$?
sed 's/^/    | /' "$W/offline.out" >&2
[ "$rc" -eq 0 ] || tb_fail "the offline inc exited $rc"
jq -r .snapshot "$W/offline.json" >"$W/offline.id"
tb_assert_eq "shut off" "$(tb_virsh domstate "$DOM")" "the domain's state after the offline inc"
is_inc offline mixed2
tb_assert_eq "$(jq -r .checkpoint.name "$(manifest mixed2)")" \
    "$(jq -r .checkpoint.name "$(manifest offline)")" "the offline inc's checkpoint (its base's)"
restored offline
[ "$(read_of offline vda)" -le $((1 * MiB)) ] || tb_fail "the offline inc read too much of vda"
tb_virsh start --paused "$DOM" >/dev/null
tb_qemu_io "$DOM" vdb "write -P 0xb2 3M 64k"
run inc online
is_inc online offline
restored online
# its bitmap starts at the kept checkpoint: vda's chunk 15, read offline, is read again
grep -q "vda: 1 of 16 chunks changed since the base" "$W/online.out" ||
    tb_fail "the inc after the offline one did not read (only) vda's chunk 15"
tb_assert_eq 1 "$(repo_checkpoints)" "the repository's checkpoints after the offline inc"

tb_step "shut off, the persistent bitmap gone from vda's image: offline, vda read in full"
cp=$(jq -r .checkpoint.name "$(manifest online)")
tb_qemu_io "$DOM" vda "write -P 0xb3 6M 64k"
tb_snapshot_image "$DOM" vda "$W/offline2.vda.raw"
tb_snapshot_image "$DOM" vdb "$W/offline2.vdb.raw"
tb_virsh destroy "$DOM" >/dev/null
qemu-img bitmap --remove "${TB_IMAGES[0]}" "$cp"
rc=0
"$VIRTBACKUP" -n -d "$DOM" -l inc --no-start-domain -o "$R" --json="$W/offline2.json" \
    >"$W/offline2.out" 2>&1 || rc=$?
sed 's/^/    | /' "$W/offline2.out" >&2
[ "$rc" -eq 0 ] || tb_fail "the offline inc without its bitmap exited $rc"
jq -r .snapshot "$W/offline2.json" >"$W/offline2.id"
grep -q "warning: vda: its image has no bitmap $cp: read in full" "$W/offline2.out" ||
    tb_fail "no warning about the missing bitmap"
is_inc offline2 online
tb_assert_eq "$cp" "$(jq -r .checkpoint.name "$(manifest offline2)")" "offline2's checkpoint"
restored offline2
[ "$(read_of offline2 vda)" -ge $((5 * MiB)) ] || tb_fail "offline2 did not read vda in full"
[ "$(read_of offline2 vdb)" -eq 0 ] || tb_fail "offline2 read vdb, which did not change"
tb_virsh start --paused "$DOM" >/dev/null
# running again, libvirt finds vda's bitmap gone: every disk read in full, a new checkpoint
tb_qemu_io "$DOM" vdb "write -P 0xb4 3M 4k"
run inc after_offline2
grep -q "warning: not using snapshot $(cat "$W/offline2.id") as the base: .*reading every disk in full" \
    "$W/after_offline2.out" || tb_fail "no warning about the bitmap libvirt misses"
tb_assert_eq "full null" "$(jq -r '"\(.level) \(.parent)"' "$(manifest after_offline2)")" \
    "level of the run after offline2"
restored after_offline2

if command -v virtnbdbackup >/dev/null; then
    tb_step "the reference's full deletes the repository's checkpoint: the next inc reads in full"
    out=$(virtnbdbackup -d "$DOM" -l full -o "$W/refdir" -S "$W" -f "$W/ref.sock" -n 2>&1) ||
        { printf '%s\n' "$out" | tail -20 >&2; tb_fail "virtnbdbackup -l full"; }
    tb_assert_eq 0 "$(repo_checkpoints)" "the repository's checkpoints after the reference's full"
    # the reference leaves its job to end after it exits; the next run would find it active
    tb_wait_for "" eval 'tb_virsh domjobinfo "$DOM" 2>/dev/null | grep -q "Job type: *None"' ||
        tb_fail "the reference's full left a job on $DOM: $(tb_virsh domjobinfo "$DOM" 2>&1)"
    tb_qemu_io "$DOM" vda "write -P 0xc1 7M 4k"
    run auto after_ref
    grep -q "warning: not using snapshot $(cat "$W/after_offline2.id") as the base: .*reading every disk in full" \
        "$W/after_ref.out" || tb_fail "no warning about the checkpoint the reference deleted"
    tb_assert_eq "full null" "$(jq -r '"\(.level) \(.parent)"' "$(manifest after_ref)")" \
        "level of the run after the reference's full"
    restored after_ref
    tb_assert_eq 1 "$(repo_checkpoints)" "the repository's checkpoints after its full read"
else
    tb_log "no reference tool (virtnbdbackup): its step is skipped"
fi

tb_step "-l auto into a repository without a full of the domain: a full"
"$VIRTREPO" init "$W/repo2" >/dev/null
vb_backup -d "$DOM" -l auto -o "$W/repo2" --json="$W/auto2.json"
m2=$W/repo2/snapshots/$UUID/$(jq -r .snapshot "$W/auto2.json").json
tb_assert_eq "full null" "$(jq -r '"\(.level) \(.parent)"' "$m2")" "level of auto into repo2"

tb_step "every earlier snapshot still restores"
for n in inc1 inc2 auto damaged redefined aged lost other mixed1 mixed2 offline online offline2 after_offline2; do restored $n; done

tb_pass "repository incs: only changed chunks read, complete snapshots, damage and lost checkpoints"
