#!/bin/bash
# Scrubbing and self-healing (virtrepo(1) VERIFY, virtbackup-repository(5) SCRUB RECORDS and
# BAD CHUNKS): a running domain's disk backed up (full, inc) into a repository of 1 MiB chunks.
#  - a whole verify records scrub/1/1; verify --part K/4 for K = 1..4 checks each chunk of
#    the repository exactly once (each part's count is the number of chunk objects whose
#    name starts in its range; the counts add up to the whole verify's), records scrub/4/K,
#    and snapshots (text and --json) shows when each snapshot was last fully covered;
#  - a chunk's payload damaged (its header intact): the part holding it exits 1, names both
#    snapshots that use it and moves it to bad/; check names it as moved to bad/; restoring
#    either snapshot fails naming the chunk and bad/;
#  - the next inc (the disk unchanged there) reads that chunk again, only it, and stores it
#    again; the part then reports it healed (bad/'s copy removed) and passes, a whole verify
#    passes, and every snapshot, the damaged ones included, restores equal to the disk as of
#    its run.
set -euo pipefail

# shellcheck source=../lib/testbed.sh
source "$(dirname "${BASH_SOURCE[0]}")/../lib/testbed.sh"
tb_init

VIRTBACKUP="$VB_BUILD_DIR/src/backup/virtbackup"
VIRTREPO="$VB_BUILD_DIR/src/virtrepo/virtrepo"
VR="$VB_BUILD_DIR/src/restore/virtrestore"
for t in "$VIRTBACKUP" "$VIRTREPO" "$VR"; do [ -x "$t" ] || tb_fail "$t not built"; done
W=$TB_WORKDIR
R=$W/repo
MiB=1048576
export TMPDIR=$W/tmp
mkdir -p "$TMPDIR"

tb_create_domain scrub 16M
DOM=$TB_DOMAIN
UUID=$(tb_virsh domuuid "$DOM")
VDA=$(basename "${TB_IMAGES[0]}")
"$VIRTREPO" init "$R" --chunk-size 1M >/dev/null

# run LEVEL NAME: the disk as of now into $W/NAME.raw, then virtbackup -l LEVEL into the
# repository; its output in $W/NAME.out, its summary in $W/NAME.json, its snapshot's id in
# $W/NAME.id
run() {
    local level=$1 name=$2 rc=0
    tb_snapshot_image "$DOM" vda "$W/$name.raw"
    "$VIRTBACKUP" -n -d "$DOM" -l "$level" -o "$R" --json="$W/$name.json" \
        >"$W/$name.out" 2>&1 || rc=$?
    sed 's/^/    | /' "$W/$name.out" >&2
    [ "$rc" -eq 0 ] || tb_fail "virtbackup -l $level ($name) exited $rc"
    jq -r .snapshot "$W/$name.json" >"$W/$name.id"
}
# restored NAME: the snapshot of run NAME restored equals the disk as of the run
restored() {
    local out=$W/restore.$1 id
    id=$(cat "$W/$1.id")
    rm -rf "$out"
    "$VR" -i "$R" -o "$out" -n --snapshot "$id" >"$W/restore.$1.out" 2>&1 ||
        tb_fail "virtrestore --snapshot $id failed: $(cat "$W/restore.$1.out")"
    qemu-img compare -F raw "$out/$VDA" "$W/$1.raw" >/dev/null ||
        tb_fail "$1: snapshot $id differs from the disk as of its run"
    tb_log "identical: snapshot $id ($1) == the disk as of its run"
}
nchunks() { find "$R/chunks" -type f ! -name '.*' | wc -l; }
# chunks_in LO HI: chunk objects whose name's first byte is in LO..HI (decimal)
chunks_in() {
    local n=0 dir b
    for dir in "$R"/chunks/*/; do
        b=$((16#$(basename "$dir")))
        if [ "$b" -ge "$1" ] && [ "$b" -le "$2" ]; then
            n=$((n + $(find "$dir" -type f ! -name '.*' | wc -l)))
        fi
    done
    echo $n
}
# verify_part K: virtrepo verify --part K/4, output in $W/part.out, exit status echoed
verify_part() {
    local rc=0
    "$VIRTREPO" -q verify "$R" --part "$1/4" >"$W/part.out" 2>&1 || rc=$?
    sed 's/^/    | /' "$W/part.out" >&2
    echo $rc
}

tb_step "full and inc of a disk of 12 distinct chunks"
for i in $(seq 0 11); do
    tb_qemu_io "$DOM" vda "write -P $((i + 1)) $((i * MiB)) 1M"
done
run full full
tb_qemu_io "$DOM" vda "write -P 0x77 12M 64k"
run inc inc1
TOTAL=$(nchunks)
[ "$TOTAL" -eq 13 ] || tb_fail "13 chunks expected (12 of the full, 1 of the inc), found $TOTAL"

tb_step "a whole verify records range 1 of 1"
"$VIRTREPO" -q verify "$R" >"$W/verify.out" || tb_fail "verify: $(cat "$W/verify.out")"
grep -q "^verify: 2 snapshots, $TOTAL chunks: ok" "$W/verify.out" ||
    tb_fail "verify: $(cat "$W/verify.out")"
jq -e --argjson n "$TOTAL" '.part == 1 and .of == 1 and .chunks == $n and .bad == 0
    and (.snapshots | length) == 2' "$R/scrub/1/1" >/dev/null ||
    tb_fail "scrub/1/1: $(cat "$R/scrub/1/1")"

tb_step "verify --part K/4, K = 1..4: every chunk once"
sum=0
for k in 1 2 3 4; do
    [ "$(verify_part $k)" -eq 0 ] || tb_fail "verify --part $k/4 failed"
    lo=$(((k - 1) * 64))
    hi=$((k * 64 - 1))
    line=$(grep "^verify: part $k/4 (chunk names $(printf '%02x..%02x' $lo $hi)): 2 snapshots, " \
        "$W/part.out") || tb_fail "verify --part $k/4 said: $(cat "$W/part.out")"
    n=$(sed -E 's/.*: 2 snapshots, ([0-9]+) chunks: ok .*/\1/' <<<"$line")
    tb_assert_eq "$(chunks_in $lo $hi)" "$n" "chunks checked by part $k/4"
    jq -e --argjson n "$n" --argjson k $k '.part == $k and .of == 4 and .chunks == $n
        and .bad == 0 and (.snapshots | length) == 2' "$R/scrub/4/$k" >/dev/null ||
        tb_fail "scrub/4/$k: $(cat "$R/scrub/4/$k")"
    sum=$((sum + n))
done
tb_assert_eq "$TOTAL" "$sum" "chunks checked by the four parts together"

tb_step "snapshots shows when each snapshot was last fully covered"
# the newest complete set: N=4 (its oldest record) unless the whole run is newer
want=$(jq -rs '(map(.time) | min)' "$R"/scrub/4/*)
whole=$(jq -r .time "$R/scrub/1/1")
[[ "$whole" > "$want" ]] && want=$whole
"$VIRTREPO" snapshots "$R" --json >"$W/snaps.json"
tb_assert_eq "$want $want" "$(jq -r '[.[].verified] | join(" ")' "$W/snaps.json")" \
    "verified of both snapshots"
"$VIRTREPO" snapshots "$R" >"$W/snaps.out"
grep -q "VERIFIED" "$W/snaps.out" || tb_fail "no VERIFIED column: $(cat "$W/snaps.out")"
[ "$(grep -c " $want " "$W/snaps.out")" -eq 2 ] || tb_fail "snapshots: $(cat "$W/snaps.out")"

tb_step "a damaged payload: the part holding it moves it to bad/, naming both snapshots"
digest=$(dd if="$W/full.raw" bs=1M skip=3 count=1 status=none | sha256sum | cut -c1-64)
obj=$R/chunks/${digest:0:2}/$digest
[ -f "$obj" ] || tb_fail "no chunk object $obj"
size=$(stat -c %s "$obj")
off=$((24 + (size - 24) / 2))
byte=$(od -An -tu1 -j$off -N1 "$obj" | tr -d ' ')
# shellcheck disable=SC2059 # the format is the octal escape of the complemented byte
printf "\\$(printf %03o $((255 - byte)))" | dd of="$obj" bs=1 seek=$off conv=notrunc status=none
K=$((16#${digest:0:2} / 64 + 1))
[ "$(verify_part $K)" -eq 1 ] || tb_fail "verify --part $K/4 passed over a damaged chunk"
for run in full inc1; do
    grep -q "^damaged snapshot $(cat "$W/$run.id") " "$W/part.out" ||
        tb_fail "verify does not name the snapshot of $run"
done
grep -q "^  chunk $digest: .*; moved to bad/${digest:0:2}/$digest" "$W/part.out" ||
    tb_fail "verify does not say it moved the chunk"
[ ! -e "$obj" ] || tb_fail "the damaged chunk is still in chunks/"
[ -f "$R/bad/${digest:0:2}/$digest" ] || tb_fail "the damaged chunk is not in bad/"
jq -e '.bad == 1 and (.snapshots | length) == 0' "$R/scrub/4/$K" >/dev/null ||
    tb_fail "scrub/4/$K: $(cat "$R/scrub/4/$K")"
rc=0
"$VIRTREPO" check "$R" >"$W/check.out" || rc=$?
tb_assert_eq 1 "$rc" "check exit status with a chunk in bad/"
grep -q "chunk $digest: missing: damaged, moved to bad/" "$W/check.out" ||
    tb_fail "check: $(cat "$W/check.out")"
for run in full inc1; do
    rm -rf "$W/fail.$run"
    rc=0
    "$VR" -i "$R" -o "$W/fail.$run" -n --snapshot "$(cat "$W/$run.id")" >"$W/fail.$run.out" 2>&1 ||
        rc=$?
    [ "$rc" -ne 0 ] || tb_fail "the restore of $run succeeded with its chunk in bad/"
    grep -q "chunk $digest: missing .*bad/${digest:0:2}/$digest" "$W/fail.$run.out" ||
        tb_fail "the restore of $run does not name the chunk: $(cat "$W/fail.$run.out")"
done

tb_step "the next inc reads that chunk again, only it: healed"
run inc heal
grep -q "vda: chunk 3 of the base cannot be used (chunk $digest is missing): read again" \
    "$W/heal.out" || tb_fail "the inc did not say it reads the chunk again"
tb_assert_eq "inc $(cat "$W/inc1.id")" \
    "$(jq -r '"\(.level) \(.parent)"' "$R/snapshots/$UUID/$(cat "$W/heal.id").json")" \
    "level and parent of the healing inc"
tb_assert_eq $MiB "$(jq '.disks[0].bytes_read' "$W/heal.json")" "bytes read by the healing inc"
[ -f "$obj" ] || tb_fail "the chunk was not stored again"
[ "$(verify_part $K)" -eq 0 ] || tb_fail "verify --part $K/4 fails after the heal"
grep -q "^chunk $digest: healed .*bad/${digest:0:2}/$digest removed" "$W/part.out" ||
    tb_fail "verify does not report the chunk healed"
[ ! -e "$R/bad/${digest:0:2}/$digest" ] || tb_fail "bad/ still holds the healed chunk"
"$VIRTREPO" -q verify "$R" >"$W/verify.out" || tb_fail "verify after the heal: $(cat "$W/verify.out")"
grep -q "^verify: 3 snapshots, $TOTAL chunks: ok" "$W/verify.out" ||
    tb_fail "verify: $(cat "$W/verify.out")"
for run in full inc1 heal; do
    restored $run
done

tb_pass "verify --part covers each chunk once, records and coverage; a damaged chunk goes to bad/ and the next inc heals it"
