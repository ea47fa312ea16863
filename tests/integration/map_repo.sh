#!/bin/bash
# virtmap -i REPO (virtmap(1), REPOSITORY INPUT): a real domain backed up by virtbackup into
# a repository (a full, then an inc); each snapshot served (--snapshot ID, the latest by
# default, --until its checkpoint) equals every disk as it was at that backup (qemu-img
# compare over NBD); nbdinfo --map reports the all-zero chunks as holes; writes land in the
# overlay, read back and survive into a later run with the same --overlay, which another
# snapshot refuses; --run returns the command's status; several nbdcopy clients with
# several connections each read the same bytes; a damaged chunk fails the reads that need
# it, naming its digest and the disk, while every other read still works; a repository
# that does not exist and a snapshot it lacks are named.
set -euo pipefail
source "$(dirname "$0")/../lib/testbed.sh"
source "$(dirname "$0")/../lib/chain.sh"
tb_init
# nbdsh needs the distribution's python3 (with the nbd module) ahead of any other
export PATH="/usr/bin:$PATH"

VIRTMAP="$VB_BUILD_DIR/src/map/virtmap"
VIRTREPO="$VB_BUILD_DIR/src/virtrepo/virtrepo"
for t in "$VIRTMAP" "$VIRTREPO" "$VIRTBACKUP"; do [ -x "$t" ] || tb_fail "$t not built"; done
W=$TB_WORKDIR
R=$W/repo
SOCK=$W/map.sock
LOG=$W/virtmap.log
export TMPDIR=$W/tmp
mkdir -p "$TMPDIR"

# vm_run ARGS... -- CMD: serves with virtmap until CMD (sh -c, $uri set) exits; returns its
# status. virtmap's messages go to $LOG.
vm_run() {
    local -a args=()
    while [ "$1" != "--" ]; do
        args+=("$1")
        shift
    done
    shift
    "$VIRTMAP" -d none --socket "$SOCK" "${args[@]}" --run "$*" 2>>"$LOG"
}
# same NAME SELECT...: both disks served with SELECT equal the disks as of run NAME
same() {
    local name=$1 d
    shift
    for d in vda vdb; do
        vm_run -r -i "$R" "$@" -- \
            "qemu-img compare -f raw -F raw 'nbd+unix:///$d?socket=$SOCK' '$W/$name.$d.raw'" ||
            tb_fail "$d served with $* differs from the disk as of the $name backup: $(tail -3 "$LOG")"
    done
    tb_log "identical: vda and vdb served with $* == the disks as of the $name backup"
}
# backup LEVEL NAME: the disks as of now into $W/NAME.vd[ab].raw, then virtbackup -l LEVEL
# into the repository; the snapshot it committed in $W/NAME.id
backup() {
    tb_snapshot_image "$DOM" vda "$W/$2.vda.raw"
    tb_snapshot_image "$DOM" vdb "$W/$2.vdb.raw"
    vb_backup -d "$DOM" -l "$1" -o "$R" --json="$W/$2.json"
    jq -r .snapshot "$W/$2.json" >"$W/$2.id"
}

tb_step "a domain backed up into a repository of 256 KiB chunks: a full, then an inc"
tb_create_domain mr 48M 8M
DOM=$TB_DOMAIN
"$VIRTREPO" init "$R" --chunk-size 256K >/dev/null
tb_qemu_io "$DOM" vda "write -P 0x11 0 64k"
tb_qemu_io "$DOM" vda "write -P 0x12 1M 9M"
tb_qemu_io "$DOM" vda "write -P 0x13 30M 5000"
tb_qemu_io "$DOM" vdb "write -P 0x21 2M 1M"
backup full full
tb_qemu_io "$DOM" vda "write -P 0x14 3M 2M"
tb_qemu_io "$DOM" vda "write -z 6M 1M"
tb_qemu_io "$DOM" vda "write -P 0x15 47M 1M"
tb_qemu_io "$DOM" vdb "write -P 0x22 7M 4k"
backup inc inc
ID0=$(cat "$W/full.id")
ID1=$(cat "$W/inc.id")
tb_assert_eq "inc $ID0" "$(jq -r '"\(.level) \(.parent)"' "$R"/snapshots/*/"$ID1".json)" \
    "level and parent of the second snapshot"

tb_step "each snapshot served equals the disks as of its backup"
same full --snapshot "$ID0"
same inc --snapshot "$ID1"
same inc
same full --until "$(jq -r .checkpoint.name "$R"/snapshots/*/"$ID0".json)"
same inc --vm "$DOM" --snapshot latest
# unaligned reads across chunk boundaries, through the cache
vm_run -r -i "$R" -- "nbdsh -u \"\$uri\" -c '
import random
snap = open(\"$W/inc.vda.raw\", \"rb\").read()
rnd = random.Random(7)
for i in range(300):
    off = rnd.randrange(0, len(snap) - 1) if i % 2 else (rnd.randrange(0, 192) << 18) + rnd.randrange(-5000, 5000)
    off = max(0, min(off, len(snap) - 1))
    n = min(rnd.randrange(1, 700000), len(snap) - off)
    assert h.pread(n, off) == snap[off:off + n], (off, n)
'" || tb_fail "unaligned reads differ from the disk"

tb_step "nbdinfo --map: all-zero chunks are holes, chunks with data are data"
vm_run -r -i "$R" -- "nbdinfo --map \"\$uri\" >'$W/map.txt'"
cat "$W/map.txt" >&2
grep -qE '^ +0 +262144 +0 +data' "$W/map.txt" || tb_fail "the first chunk is not data"
grep -qE '^ +262144 +786432 +3 +hole,zero' "$W/map.txt" || tb_fail "256K..1M is not a hole"
grep -qE '^ +6291456 +1048576 +3 +hole,zero' "$W/map.txt" || tb_fail "the zeroed 6M+1M is not a hole"

tb_step "the overlay: writes read back, kept by --overlay, refused by another snapshot"
OVL=$W/overlay
before=$(find "$R" -type f -exec sha256sum {} + | sort)
vm_run -i "$R" --overlay "$OVL" -- "nbdsh -u \"\$uri\" -c '
h.pwrite(b\"\\xab\" * 5000, 262000)
h.zero(1 << 20, 512 << 10)
h.flush()
assert h.pread(5000, 262000) == b\"\\xab\" * 5000
assert h.pread(100, 261900) == b\"\\x00\" * 100
assert h.pread(4096, 0) == b\"\\x11\" * 4096
assert h.pread(512 << 10, 1 << 20) == bytes(512 << 10)
assert h.pread(4096, 3 << 20) == b\"\\x14\" * 4096
'" || tb_fail "overlay writes did not read back"
tb_assert_eq "$before" "$(find "$R" -type f -exec sha256sum {} + | sort)" \
    "the repository's files after writes"
vm_run -i "$R" --overlay "$OVL" -- "nbdsh -u \"\$uri\" -c '
assert h.pread(5000, 262000) == b\"\\xab\" * 5000
assert h.pread(512 << 10, 1 << 20) == bytes(512 << 10)
assert h.pread(4096, (1 << 20) + (512 << 10)) == b\"\\x12\" * 4096
'" || tb_fail "a second run with the same --overlay does not see the writes"
: >"$LOG"
tb_expect_fail "an overlay of another snapshot is refused" \
    vm_run -i "$R" --snapshot "$ID0" --overlay "$OVL" -- true
grep -q "belongs to another chain or point in time: it was made for snapshot $ID1 .*not for snapshot $ID0" "$LOG" ||
    tb_fail "no clear message for the other snapshot's overlay: $(cat "$LOG")"

tb_step "--run returns the command's status; multi-conn: several nbdcopy clients at once"
rc=0
vm_run -r -i "$R" -- "exit 7" || rc=$?
tb_assert_eq 7 "$rc" "--run exit status"
# virtnbdmap's -t went to nbdkit, any number: more than 64 workers is taken as 64, warned
vm_run -r -i "$R" -t 100 -- true || tb_fail "-t 100 was refused: $(tail -n 3 "$LOG")"
grep -q "warning: --threads 100: at most 64 read-ahead workers, using 64" "$LOG" ||
    tb_fail "-t 100 not warned: $(tail -n 3 "$LOG")"
vm_run -r -i "$R" --snapshot "$ID0" -- "
nbdsh -u \"\$uri\" -c 'assert h.can_multi_conn()' || exit 1
for i in 1 2 3; do nbdcopy -C 4 \"\$uri\" '$W/copy'\$i.raw & done; wait
for i in 1 2 3; do cmp '$W/copy'\$i.raw '$W/full.vda.raw' || exit 1; done" ||
    tb_fail "parallel nbdcopy copies differ"
rm -f "$W"/copy*.raw

tb_step "a damaged chunk: reads needing it fail naming it and the disk, others still work"
# vda's chunk at 30 MiB (5000 bytes of 0x13, then zeroes) is in both snapshots, once
HEX=$(dd if="$W/inc.vda.raw" bs=256K skip=120 count=1 status=none | sha256sum | cut -c1-64)
CHUNK=$R/chunks/${HEX:0:2}/$HEX
[ -f "$CHUNK" ] || tb_fail "$CHUNK missing"
size=$(stat -c %s "$CHUNK")
byte=$(dd if="$CHUNK" bs=1 skip=$((size - 1)) count=1 status=none | od -An -tu1 | tr -d ' ')
printf "\\x$(printf %02x $((byte ^ 1)))" | dd of="$CHUNK" bs=1 seek=$((size - 1)) conv=notrunc \
    status=none
: >"$LOG"
vm_run -r -i "$R" -- "nbdsh -u \"\$uri\" -c '
snap = open(\"$W/inc.vda.raw\", \"rb\").read()
try:
    h.pread(4096, 120 * 262144 + 100)
    raise SystemExit(\"a read of the damaged chunk succeeded\")
except nbd.Error as e:
    assert e.errno == \"EIO\", e
for off in (0, 2 << 20, 119 * 262144, 121 * 262144, 47 << 20):
    assert h.pread(262144, off) == snap[off:off + 262144], off
try:
    h.pread(1 << 20, 119 * 262144)
    raise SystemExit(\"a read across the damaged chunk succeeded\")
except nbd.Error as e:
    assert e.errno == \"EIO\", e
assert h.pread(4096, 3 << 20) == snap[3 << 20:(3 << 20) + 4096]
'" || tb_fail "reads around a damaged chunk: $(tail -5 "$LOG")"
grep -q "disk vda, offset 31457280: chunk $HEX: " "$LOG" ||
    tb_fail "the error does not name the chunk and the disk: $(cat "$LOG")"
tb_log "as expected: $(grep -m1 "chunk $HEX" "$LOG")"
rc=0
out=$("$VIRTMAP" -d none -r -i "$R" --verify --run true 2>&1) || rc=$?
tb_assert_eq 1 "$rc" "exit status of --verify with a damaged chunk"
grep -q "chunk $HEX" <<<"$out" || tb_fail "--verify does not name the chunk: $out"

tb_step "what does not exist is named"
rc=0
out=$("$VIRTMAP" -d none -r -i "$R" --snapshot 20200101T000000Z-00000000 --run true 2>&1) || rc=$?
tb_assert_eq 1 "$rc" "exit status for a snapshot that does not exist"
grep -q "20200101T000000Z-00000000: no such snapshot of $DOM" <<<"$out" || tb_fail "message: $out"
rc=0
out=$("$VIRTMAP" -d none -r -i "$W/nosuch" --run true 2>&1) || rc=$?
tb_assert_eq 1 "$rc" "exit status for a missing input"
grep -q "$W/nosuch" <<<"$out" || tb_fail "message: $out"
tb_expect_fail "--snapshot with a stream directory" "$VIRTMAP" -d none -r -i "$W" --snapshot latest \
    --run true

tb_pass "virtmap -i REPO: snapshots served, holes, overlay, --run, multi-conn, damage"
