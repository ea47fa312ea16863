#!/bin/bash
# virtmap serves every point of real backup chains (plain and compressed: full + incs, -i
# with --until and -f lists) and the export equals the disk as it was then; nbdinfo --map
# shows the holes; writes land in the overlay (backup files unchanged, readable again by a
# later run with the same --overlay); -r refuses writes with EPERM; several nbdcopy
# clients at once; -d without the nbd module fails with a clear message.
set -euo pipefail
source "$(dirname "$0")/../lib/testbed.sh"
source "$(dirname "$0")/../lib/chain.sh"
tb_init
# nbdsh needs the distribution's python3 (with the nbd module) ahead of any other
export PATH="/usr/bin:$PATH"

VIRTMAP="$VB_BUILD_DIR/src/map/virtmap"
[ -x "$VIRTMAP" ] || tb_fail "virtmap not built"
SOCK=$TB_WORKDIR/map.sock

# vm_run ARGS... -- CMD: serves with virtmap until CMD (sh -c, $uri set) exits; returns its
# status. Logs go to $TB_WORKDIR/virtmap.log.
vm_run() {
    local -a args=()
    while [ "$1" != "--" ]; do
        args+=("$1")
        shift
    done
    shift
    "$VIRTMAP" -d none --socket "$SOCK" "${args[@]}" --run "$*" 2>>"$TB_WORKDIR/virtmap.log"
}

tb_create_domain map 160M 24M
DOM=$TB_DOMAIN
SNAP=$TB_WORKDIR/snap
mkdir -p "$SNAP"

tb_step "content: small extents, a 40 MiB extent (> one 32 MiB slice), holes"
tb_qemu_io "$DOM" vda "write -P 0x11 0 64k"
tb_qemu_io "$DOM" vda "write -P 0x12 1M 3M"
tb_qemu_io "$DOM" vda "write -P 0x22 64M 40M"
tb_qemu_io "$DOM" vdb "write -P 0x33 1M 1M"

for mode in plain z; do
    OUT=$TB_WORKDIR/out-$mode
    if [ $mode = z ]; then Z=(-z); H=c; else Z=(); H=4; fi
    tb_step "$mode: full, two incs (new data, zeroing inside the big extent, discard)"
    tb_qemu_io "$DOM" vda "write -P 0x${H}2 64M 40M"
    vb_backup -d "$DOM" -l full -o "$OUT" "${Z[@]}"
    tb_snapshot_image "$DOM" vda "$SNAP/$mode-0.raw"
    tb_snapshot_image "$DOM" vdb "$SNAP/$mode-0-vdb.raw"
    tb_qemu_io "$DOM" vda "write -P 0x${H}4 2M 1M"
    tb_qemu_io "$DOM" vda "write -z 70M 8M"
    tb_qemu_io "$DOM" vda "discard 96M 4M"
    vb_backup -d "$DOM" -l inc -o "$OUT" "${Z[@]}"
    tb_snapshot_image "$DOM" vda "$SNAP/$mode-1.raw"
    tb_qemu_io "$DOM" vda "write -P 0x${H}6 130M 2M"
    tb_qemu_io "$DOM" vda "write -P 0x${H}7 65M 5k"
    vb_backup -d "$DOM" -l inc -o "$OUT" "${Z[@]}"
    tb_snapshot_image "$DOM" vda "$SNAP/$mode-2.raw"
    tb_snapshot_image "$DOM" vdb "$SNAP/$mode-2-vdb.raw"

    tb_step "$mode: every point in time served equals the disk then (qemu-img compare)"
    for n in 0 1 2; do
        vm_run -r -i "$OUT" --until virtnbdbackup.$n -- \
            "qemu-img compare -f raw -F raw \"\$uri\" '$SNAP/$mode-$n.raw'" ||
            tb_fail "$mode: --until virtnbdbackup.$n differs from the disk"
        # the same point applied by stream-apply (the oracle) gives the same bytes
        apply_compare "$SNAP/$mode-$n.raw" "$mode point $n" \
            $(for k in $(seq 0 $n); do [ $k = 0 ] && echo "$OUT/vda.full.data" || echo "$OUT/vda.inc.virtnbdbackup.$k.data"; done)
    done
    tb_log "$mode: points 0..2 identical"
    # unaligned small reads (partial LZ4 blocks, through the block cache) and reads across
    # slice and extent boundaries, compared with the snapshot
    vm_run -r -i "$OUT" -- "nbdsh -u \"\$uri\" -c '
import random
snap = open(\"$SNAP/$mode-2.raw\", \"rb\").read()
rnd = random.Random(5)
spots = [64 << 20, (64 << 20) + (32 << 20) - 7, 70 << 20, 65 << 20, 130 << 20, 4 << 20]
for i in range(400):
    off = rnd.choice(spots) + rnd.randrange(-70000, 70000) if i % 2 else rnd.randrange(0, len(snap) - 1)
    off = max(0, min(off, len(snap) - 1))
    n = min(rnd.randrange(1, 300000), len(snap) - off)
    assert h.pread(n, off) == snap[off:off + n], (off, n)
'" || tb_fail "$mode: unaligned reads differ from the disk"
    vm_run -r -i "$OUT" -- \
        "qemu-img compare -f raw -F raw 'nbd+unix:///vdb?socket=$SOCK' '$SNAP/$mode-2-vdb.raw'" ||
        tb_fail "$mode: vdb (second export of -i) differs"
    vm_run -r -f "$OUT/vda.full.data,$OUT/vda.inc.virtnbdbackup.1.data" -e disk -- \
        "test \"\$uri\" = 'nbd+unix:///disk?socket=$SOCK' && qemu-img compare -f raw -F raw \"\$uri\" '$SNAP/$mode-1.raw'" ||
        tb_fail "$mode: -f full,inc1 -e disk differs"
done

OUT=$TB_WORKDIR/out-plain
tb_step "nbdinfo --map reports holes and data as the chain has them"
vm_run -r -i "$OUT" -- "nbdinfo --map \"\$uri\" > '$TB_WORKDIR/map.txt'; nbdinfo --size \"\$uri\" > '$TB_WORKDIR/size.txt'"
cat "$TB_WORKDIR/map.txt" >&2
tb_assert_eq 167772160 "$(cat "$TB_WORKDIR/size.txt")" "nbdinfo --size"
grep -qE '^ +0 +65536 +0 +data' "$TB_WORKDIR/map.txt" || tb_fail "first 64 KiB not reported as data"
grep -qE '^ +65536 +[0-9]+ +3 +hole,zero' "$TB_WORKDIR/map.txt" || tb_fail "no hole after 64 KiB"
grep -qE '^ +73400320 +8388608 +3 +hole,zero' "$TB_WORKDIR/map.txt" ||
    tb_fail "zeroed 70M+8M of the inc is not a hole"

tb_step "writes go to the overlay; backup files unchanged; the overlay is reused"
sums_before=$(sha256sum "$OUT"/*.data)
OVL=$TB_WORKDIR/overlay
vm_run -i "$OUT" --overlay "$OVL" -- "nbdsh -u \"\$uri\" -c '
h.pwrite(b\"\\xab\" * 5000, 1000)
h.zero(2 << 20, 1 << 20)
h.trim(65536 * 3, 64 << 20)
h.pwrite(b\"\\xcd\" * 4096, 160 * 1024 * 1024 - 4096)
h.flush()
assert h.pread(5000, 1000) == b\"\\xab\" * 5000
assert h.pread(24, 6000) == b\"\\x11\" * 24
assert h.pread(100, 1000 + 5000) == b\"\\x11\" * 100
assert h.pread(2 << 20, 1 << 20) == bytes(2 << 20)
assert h.pread(4096, 3 << 20) == b\"\\x12\" * 4096
assert h.pread(65536 * 3, 64 << 20) == bytes(65536 * 3)
'" || tb_fail "overlay writes did not read back"
tb_assert_eq "$sums_before" "$(sha256sum "$OUT"/*.data)" "backup file checksums after writes"
ls -ls "$OVL" >&2
vm_run -r -i "$OUT" -- "true" # a read-only run needs no overlay at all
vm_run -i "$OUT" --overlay "$OVL" -- "nbdsh -u \"\$uri\" -c '
assert h.pread(5000, 1000) == b\"\\xab\" * 5000
assert h.pread(4096, 160 * 1024 * 1024 - 4096) == b\"\\xcd\" * 4096
assert h.pread(4096, 3 << 20) == b\"\\x12\" * 4096
assert h.pread(65536 * 3, 64 << 20) == bytes(65536 * 3)
'" || tb_fail "a second run with the same --overlay does not see the writes"
tb_expect_fail "an overlay of another point in time is refused" \
    vm_run -i "$OUT" --until virtnbdbackup.0 --overlay "$OVL" -- true
grep -q 'belongs to another chain or point in time' "$TB_WORKDIR/virtmap.log" ||
    tb_fail "no clear message for a foreign overlay"

tb_step "-r refuses writes with EPERM and advertises read-only"
vm_run -r -i "$OUT" -- "nbdsh -u \"\$uri\" -c '
assert h.is_read_only()
assert h.can_multi_conn()
h.set_strict_mode(0)  # let the write reach the server instead of libnbd refusing it
try:
    h.pwrite(b\"x\" * 512, 0)
    raise SystemExit(\"write succeeded\")
except nbd.Error as e:
    assert e.errno == \"EPERM\" and \"command failed\" in e.string, e
'" || tb_fail "-r did not refuse a write with EPERM"

tb_step "hostile clients get errors or a disconnect, and the server keeps serving others"
vm_run -r -i "$OUT" -- "/usr/bin/python3 '$VB_SOURCE_DIR/tests/integration/map_protocol.py' '$SOCK' vda 167772160" ||
    tb_fail "protocol cases failed (see above)"

tb_step "several nbdcopy clients at once, each with several connections"
vm_run -r -i "$OUT" --until virtnbdbackup.1 -- "
for i in 1 2 3; do nbdcopy \"\$uri\" '$TB_WORKDIR/copy'\$i.raw & done; wait
for i in 1 2 3; do cmp '$TB_WORKDIR/copy'\$i.raw '$SNAP/plain-1.raw' || exit 1; done" ||
    tb_fail "parallel nbdcopy copies differ"
rm -f "$TB_WORKDIR"/copy*.raw

tb_step "readiness: URIs on stdout, pidfile, SIGTERM stops cleanly"
"$VIRTMAP" -d none -r -i "$OUT" -p 0 --pidfile "$TB_WORKDIR/pid" >"$TB_WORKDIR/uris" \
    2>>"$TB_WORKDIR/virtmap.log" &
vmpid=$!
tb_on_exit "kill $vmpid"
tb_wait_for $vmpid test -s "$TB_WORKDIR/pid" || tb_fail "virtmap did not start: $(tail -3 "$TB_WORKDIR/virtmap.log")"
tb_assert_eq "$vmpid" "$(cat "$TB_WORKDIR/pid")" "pidfile"
cat "$TB_WORKDIR/uris" >&2
grep -qE '^nbd://127\.0\.0\.1:[0-9]+/vda$' "$TB_WORKDIR/uris" || tb_fail "no TCP URI for vda"
grep -qE '^nbd://127\.0\.0\.1:[0-9]+/vdb$' "$TB_WORKDIR/uris" || tb_fail "no TCP URI for vdb"
nbdinfo --size "$(head -1 "$TB_WORKDIR/uris")" >/dev/null || tb_fail "TCP export not served"
kill -TERM $vmpid
rc=0
wait $vmpid || rc=$?
tb_assert_eq 0 "$rc" "exit status after SIGTERM"
[ ! -e "$TB_WORKDIR/pid" ] || tb_fail "pidfile left behind"

tb_step "--run returns the command's status; a non-loopback address needs --allow-remote"
rc=0
vm_run -r -i "$OUT" -- "exit 7" || rc=$?
tb_assert_eq 7 "$rc" "--run exit status"
rc=0
out=$("$VIRTMAP" -d none -r -i "$OUT" -l 0.0.0.0 -p 0 --run true 2>&1) || rc=$?
tb_assert_eq 1 "$rc" "exit status for -l 0.0.0.0"
grep -q -- '--allow-remote' <<<"$out" || tb_fail "no hint at --allow-remote: $out"

tb_step "-d /dev/nbd0 without the nbd module: a clear error (kernel attach untested here)"
if [ ! -e /sys/module/nbd ]; then
    rc=0
    out=$("$VIRTMAP" -r -i "$OUT" 2>&1) || rc=$?
    tb_assert_eq 1 "$rc" "exit status without the nbd module"
    grep -q 'modprobe nbd' <<<"$out" && grep -q -- '-d none' <<<"$out" ||
        tb_fail "the error does not suggest modprobe nbd or -d none: $out"
    tb_log "as expected: $out"
else
    tb_log "nbd module present: skipping the no-module check"
fi
tb_pass "virtmap serves chains, overlays, read-only, parallel clients"
