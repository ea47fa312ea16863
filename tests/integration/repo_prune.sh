#!/bin/bash
# Retention of a repository (virtrepo(1), PRUNE and PROTECT) in TZ=Europe/Berlin: a running
# domain backed up five times (full, inc, full, inc, copy), and five older snapshots crafted beside them
# (a copy of the full's manifest under an older id and time, level copy: the store is plain
# files, so the times are the only thing made up).
#  - protect marks a snapshot (snapshots --json "protected"); prune without a rule is refused;
#  - prune --dry-run --json plans exactly what --keep-last 1 --keep-monthly 4 keeps in local
#    time (2022-01-01 00:30 is January 2022 in Berlin, December 2021 in UTC), with the newest
#    (the copy), the next inc's base (the inc before it: "base") and the protected snapshot
#    kept, not the full the base's chain starts from (the base records its time, full_time),
#    and changes nothing under snapshots/; with the base's full_time removed (an older
#    version's manifest) that full is kept ("chain");
#  - prune removes exactly the planned manifests (and says gc frees their chunks); the kept
#    snapshots restore equal to the disks as of their runs; virtrepo check passes;
#  - the next inc has the kept base as its parent (an inc, its chain's full gone);
#  - forget refuses the protected snapshot, --force removes it and its marker; unprotect of an
#    unprotected snapshot says so.
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
# the local time zone of every date and prune here (the test's log keeps the host's)
berlin() { TZ=Europe/Berlin "$@"; }
export TMPDIR=$W/tmp
mkdir -p "$TMPDIR"

# the plan below assumes the backups fall in one local month: not in its last minutes
now=$(date +%s)
next_month=$(berlin date -d "$(berlin date +%Y-%m-01) +1 month" +%s)
if [ $((next_month - now)) -lt 600 ]; then
    tb_log "waiting for the month to turn"
    sleep $((next_month - now + 5))
fi

tb_create_domain pr 8M
DOM=$TB_DOMAIN
UUID=$(tb_virsh domuuid "$DOM")
VDA=$(basename "${TB_IMAGES[0]}")
"$VIRTREPO" init "$R" --chunk-size 1M >/dev/null

# run LEVEL NAME: the disk as of now into $W/NAME.raw, then virtbackup -l LEVEL; the
# snapshot's id into $W/NAME.id
run() {
    # ids and times have seconds: each run in a second of its own, so "newest" is defined
    local t
    t=$(date +%s)
    while [ "$(date +%s)" = "$t" ]; do sleep 0.1; done
    tb_snapshot_image "$DOM" vda "$W/$2.raw"
    "$VIRTBACKUP" -n -d "$DOM" -l "$1" -o "$R" --json="$W/$2.json" >"$W/$2.out" 2>&1 ||
        tb_fail "virtbackup -l $1 ($2) failed: $(cat "$W/$2.out")"
    jq -r .snapshot "$W/$2.json" >"$W/$2.id"
}
id() { cat "$W/$1.id"; }
# restored NAME AS: snapshot NAME restored equals the disk as of run AS
restored() {
    local out=$W/restore.$1
    rm -rf "$out"
    "$VR" -i "$R" -o "$out" -n --snapshot "$(id "$1")" >/dev/null 2>&1 ||
        tb_fail "virtrestore --snapshot $(id "$1") ($1) failed"
    qemu-img compare -F raw "$out/$VDA" "$W/$2.raw" >/dev/null ||
        tb_fail "snapshot $1 restored differs from the disk as of run $2"
    tb_log "identical: snapshot $1 restored == the disk as of run $2"
}
# craft NAME LOCALTIME: a copy of the full's manifest as a snapshot taken at LOCALTIME
craft() {
    local t sid
    t=$(berlin date -d "$2" +%s)
    sid=$(date -u -d "@$t" +%Y%m%dT%H%M%SZ)-$(printf '%08x' $((RANDOM * 32768 + RANDOM)))
    jq --arg id "$sid" --arg time "$(date -u -d "@$t" +%Y-%m-%dT%H:%M:%S+00:00)" \
        '.id = $id | .time = $time | .level = "copy" | .parent = null | .checkpoint = null' \
        "$R/snapshots/$UUID/$(id r1).json" >"$R/snapshots/$UUID/$sid.json"
    echo "$sid" >"$W/$1.id"
    cp "$W/r1.raw" "$W/$1.raw"
}
snapshot_files() { (cd "$R/snapshots" && find . -type f | sort); }

tb_step "five backups of a running domain, five older snapshots crafted"
tb_qemu_io "$DOM" vda "write -P 0x11 0 3M"
run full r1
tb_qemu_io "$DOM" vda "write -P 0x22 1M 64k"
run inc r2
tb_qemu_io "$DOM" vda "write -P 0x33 5M 64k"
run full r3
tb_qemu_io "$DOM" vda "write -P 0x44 6M 64k"
run inc r4
tb_assert_eq "inc $(id r3)" "$(jq -r '"\(.level) \(.parent)"' "$R/snapshots/$UUID/$(id r4).json")" \
    "level and parent of r4"
run copy r4c
craft c1 "2021-03-10 10:00"
craft c2 "2021-03-20 18:00"
craft c3 "2021-04-02 09:00"
craft c5 "2021-12-15 12:00"
craft c4 "2022-01-01 00:30" # 2021-12-31 23:30 UTC
tb_assert_eq 10 "$("$VIRTREPO" snapshots "$R" --json | jq length)" "snapshots listed"

tb_step "protect; snapshots shows it; a prune without a rule is refused"
"$VIRTREPO" protect "$R" "$(id c1)" 2>"$W/protect.err" ||
    tb_fail "protect failed: $(cat "$W/protect.err")"
[ -f "$R/snapshots/$UUID/$(id c1).protected" ] || tb_fail "no marker beside c1's manifest"
protected=$("$VIRTREPO" snapshots "$R" --json | jq -r '.[] | select(.protected) | .id')
tb_assert_eq "$(id c1)" "$protected" "the protected snapshots in snapshots --json"
"$VIRTREPO" snapshots "$R" | grep "$(id c1)" | grep -qw yes ||
    tb_fail "the table does not show c1 protected"
if "$VIRTREPO" protect "$R" 20200101T000000Z-00000000 2>/dev/null; then
    tb_fail "protect of an unknown id succeeded"
fi
before=$(snapshot_files)
if berlin "$VIRTREPO" prune "$R" --dry-run 2>"$W/norule.err"; then tb_fail "prune without a rule succeeded"; fi
grep -q "no --keep-\* rule given" "$W/norule.err" || tb_fail "no reason given: $(cat "$W/norule.err")"

tb_step "prune --dry-run --json: the plan, nothing changed"
RULES=(--keep-last 1 --keep-monthly 4)
berlin "$VIRTREPO" prune "$R" "${RULES[@]}" --dry-run --json >"$W/plan.json" 2>"$W/plan.err" ||
    tb_fail "prune --dry-run failed: $(cat "$W/plan.err")"
expect() { printf '%s %s %s\n' "$(id "$1")" "$2" "$3"; }
want=$(
    {
        expect c1 keep protected
        expect c2 remove ""
        expect c3 keep monthly
        expect c5 keep monthly
        expect c4 keep monthly
        expect r1 remove ""
        expect r2 remove ""
        expect r3 remove ""
        expect r4 keep base
        expect r4c keep newest,last,monthly
    } | sort
)
got=$(jq -r '.[] | "\(.id) \(.action) \(.reasons | join(","))"' "$W/plan.json" | sort)
[ "$got" = "$want" ] || tb_fail "the plan differs:
$(diff <(echo "$want") <(echo "$got"))"
tb_assert_eq "$before" "$(snapshot_files)" "the snapshot objects after --dry-run"
grep -q "10 snapshots of 1 VMs: 6 kept, 4 would be removed (dry run)" "$W/plan.err" ||
    tb_fail "no dry-run summary: $(cat "$W/plan.err")"

tb_step "a base without full_time (an older version's): its chain is kept too"
m4=$R/snapshots/$UUID/$(id r4).json
cp "$m4" "$W/r4.json"
jq 'del(.full_time)' "$W/r4.json" >"$m4"
berlin "$VIRTREPO" prune "$R" "${RULES[@]}" --dry-run --json >"$W/plan2.json" 2>/dev/null ||
    tb_fail "prune --dry-run (no full_time) failed"
tb_assert_eq "keep chain" "$(jq -r --arg id "$(id r3)" \
    '.[] | select(.id == $id) | "\(.action) \(.reasons | join(","))"' "$W/plan2.json")" \
    "r3 when the base has no full_time"
cat "$W/r4.json" >"$m4"

tb_step "prune: exactly the planned manifests removed"
berlin "$VIRTREPO" prune "$R" --vm "$DOM" "${RULES[@]}" >"$W/prune.out" 2>&1 ||
    tb_fail "prune failed: $(cat "$W/prune.out")"
sed 's/^/    | /' "$W/prune.out" >&2
grep -q "^remove  $(id r1) " "$W/prune.out" || tb_fail "prune did not list r1 as removed"
grep -q "^keep    $(id r4c) .*newest,last,monthly$" "$W/prune.out" || tb_fail "r4c not kept as newest"
grep -q "6 kept, 4 removed (their chunks are freed by virtrepo gc)" "$W/prune.out" ||
    tb_fail "no summary"
left=$("$VIRTREPO" snapshots "$R" --json | jq -r '.[].id' | sort)
tb_assert_eq "$(echo "$want" | awk '$2 == "keep" {print $1}' | sort)" "$left" "the snapshots left"
[ -f "$R/snapshots/$UUID/$(id c1).protected" ] || tb_fail "c1's marker is gone"
if berlin "$VIRTREPO" prune "$R" --vm no-such-vm --keep-last 1 2>/dev/null; then
    tb_fail "prune of an unknown VM succeeded"
fi
again=$(berlin "$VIRTREPO" prune "$R" "${RULES[@]}" --dry-run --json 2>/dev/null |
    jq '[.[] | select(.action == "remove")] | length')
tb_assert_eq 0 "$again" "snapshots a second prune would remove"

tb_step "the kept snapshots restore equal to their disks; check passes"
restored r4c r4c
restored r4 r4
restored c3 r1
"$VIRTREPO" check "$R" >"$W/check.out" 2>&1 || tb_fail "check failed: $(cat "$W/check.out")"

tb_step "the next inc has the kept base as its parent"
tb_qemu_io "$DOM" vda "write -P 0x55 7M 64k"
run inc r5
tb_assert_eq "inc $(id r4)" "$(jq -r '"\(.level) \(.parent)"' "$R/snapshots/$UUID/$(id r5).json")" \
    "level and parent of the inc after the prune"
restored r5 r5

tb_step "forget refuses a protected snapshot; --force removes it and its marker"
if "$VIRTREPO" forget "$R" "$(id c1)" 2>"$W/forget.err"; then
    tb_fail "forget of a protected snapshot succeeded"
fi
grep -q "is protected" "$W/forget.err" || tb_fail "no reason: $(cat "$W/forget.err")"
[ -f "$R/snapshots/$UUID/$(id c1).json" ] || tb_fail "c1 was forgotten anyway"
"$VIRTREPO" forget "$R" --force "$(id c1)" || tb_fail "forget --force failed"
for f in json protected; do
    [ ! -e "$R/snapshots/$UUID/$(id c1).$f" ] || tb_fail "forget --force left c1's $f object"
done
"$VIRTREPO" unprotect "$R" "$(id c3)" 2>"$W/unprotect.err" || tb_fail "unprotect failed"
grep -q "was not protected" "$W/unprotect.err" || tb_fail "unprotect did not say c3 was not protected"
"$VIRTREPO" protect "$R" "$(id c3)" 2>/dev/null || tb_fail "protect of c3 failed"
"$VIRTREPO" unprotect "$R" "$(id c3)" 2>/dev/null || tb_fail "unprotect of c3 failed"
[ ! -e "$R/snapshots/$UUID/$(id c3).protected" ] || tb_fail "unprotect left the marker"
"$VIRTREPO" check "$R" >"$W/check.out" 2>&1 || tb_fail "check failed: $(cat "$W/check.out")"

tb_pass "prune keeps what its rules, the newest and protection say; the rest is removed"
