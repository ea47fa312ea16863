#!/bin/bash
# Faults during a backup (virtbackup-stream(5), COMMITTING A FILE): kill -9, a full
# target filesystem, the domain destroyed, libvirtd restarted, an unusable scratch
# directory. Each gives a clear error (or, for kill -9, leftovers that the next run reports
# and cleans), nothing that looks complete, and a chain that the next run continues.
# Signals are deterministic: debug builds stall after the .partial file exists.
set -euo pipefail
source "$(dirname "$0")/../lib/testbed.sh"
source "$(dirname "$0")/../lib/chain.sh"
tb_init

if ! strings "$VIRTBACKUP" | grep -x VIRTBACKUP_DEBUG_STALL >/dev/null; then
    tb_log "SKIP: release build without the debug stall (these tests run in the sanitizer build)"
    exit 0
fi

tb_create_domain faults 64M
DOM=$TB_DOMAIN
OUT=$TB_WORKDIR/out
tb_qemu_io "$DOM" vda "write -P 0x61 0 8M"
vb_backup -d "$DOM" -l full -o "$OUT"

# stalled_backup ARGS...: starts virtbackup stalled in the background once its .partial file
# exists; sets PID.
stalled_backup() {
    # the test ends the stall with a signal; 600 s only bound a run that never gets one
    VIRTBACKUP_DEBUG_STALL=600 "$VIRTBACKUP" -n "$@" >"$TB_WORKDIR/stalled.out" 2>&1 &
    PID=$!
    tb_wait_for "$PID" compgen -G "$OUT/*.partial" >/dev/null ||
        tb_fail "the stalled backup never started writing: $(cat "$TB_WORKDIR/stalled.out")"
}

# continues NAME: the next inc continues the chain and the chain equals the disk
continues() {
    tb_qemu_io "$DOM" vda "write -P 0x6$1 $((2 + $1))M 64k"
    local out
    out=$("$VIRTBACKUP" -n -d "$DOM" -l auto -o "$OUT" 2>&1) || tb_fail "the next run failed: $out"
    printf '%s\n' "$out" | sed 's/^/    | /' >&2
    local last
    last=$(jq -r '.[-1]' "$OUT/$DOM.cpt")
    assert_meta "$OUT/vda.inc.$last.data" true "$last" "$(jq -r '.[-2]' "$OUT/$DOM.cpt")" false
    tb_snapshot_image "$DOM" vda "$TB_WORKDIR/now.raw"
    apply_compare "$TB_WORKDIR/now.raw" "chain after the fault" "$OUT"/vda.*.data
    ! ls "$OUT"/*.partial 2>/dev/null || tb_fail ".partial files remain"
}

tb_step "kill -9 mid-backup: the next run reports and cleans the leftovers, then continues"
stalled_backup -d "$DOM" -l inc -o "$OUT"
kill -9 "$PID"
wait "$PID" 2>/dev/null || true
tb_virsh checkpoint-list "$DOM" --name | grep -qx virtnbdbackup.1 ||
    tb_fail "expected the killed run's checkpoint to be left behind"
out=$("$VIRTBACKUP" -n -d "$DOM" -l inc -o "$OUT" 2>&1) || tb_fail "run after kill -9 failed: $out"
for leftover in "removing .*\.partial" "ending a backup job left by an interrupted run" \
    "removing checkpoint virtnbdbackup.1 left by an interrupted run"; do
    grep -q "$leftover" <<<"$out" || tb_fail "leftover not reported ($leftover): $out"
done
assert_meta "$OUT/vda.inc.virtnbdbackup.1.data" true virtnbdbackup.1 virtnbdbackup.0 false
continues 1

tb_step "the target filesystem fills up: a clear error, no partial file, chain continuable"
SMALL=$TB_WORKDIR/small
mkdir -p "$SMALL"
mount -t tmpfs -o size=3m tmpfs "$SMALL"
tb_on_exit "umount $SMALL"
cp -a "$OUT"/. "$SMALL"/ 2>/dev/null && tb_fail "the chain fits into 3 MiB: make the test disk larger"
umount "$SMALL"
mount -t tmpfs -o size=20m tmpfs "$SMALL"
cp -a "$OUT"/. "$SMALL"/
tb_qemu_io "$DOM" vda "write -P 0x66 16M 24M"
rc=0
err=$("$VIRTBACKUP" -n -d "$DOM" -l inc -o "$SMALL" 2>&1) || rc=$?
tb_assert_eq "$rc" 1 "exit status on a full filesystem"
grep -q "No space left on device" <<<"$err" || tb_fail "the error does not say the disk is full: $err"
! ls "$SMALL"/*.partial 2>/dev/null || tb_fail "a .partial file remains on the full filesystem"
tb_virsh checkpoint-list "$DOM" --name | grep -qx virtnbdbackup.3 &&
    tb_fail "the failed run's checkpoint was not removed"
umount "$SMALL"
continues 2

tb_step "an unusable scratch directory: a clear error naming it"
RO=$TB_WORKDIR/ro
mkdir -p "$RO"
mount -t tmpfs -o size=1m,ro tmpfs "$RO"
tb_on_exit "umount $RO"
rc=0
err=$("$VIRTBACKUP" -n -d "$DOM" -l inc -o "$OUT" --scratchdir "$RO" 2>&1) || rc=$?
tb_assert_eq "$rc" 1 "exit status with a read-only scratch directory"
grep -q "$RO" <<<"$err" || tb_fail "the error does not name the scratch directory: $err"
umount "$RO"
continues 3

tb_step "libvirtd restarted during a backup: a clear error, the next run continues"
stalled_backup -d "$DOM" -l inc -o "$OUT"
# the libvirtd this machine runs (started by setup-testbed.sh), by its pid file
old=$(cat /run/libvirtd.pid)
kill "$old"
tb_wait_for "" eval '! kill -0 "$old" 2>/dev/null' || tb_fail "libvirtd ($old) does not exit"
tb_daemon libvirtd -d
tb_wait_for "" eval 'virsh -c qemu:///system version >/dev/null 2>&1' ||
    tb_fail "libvirtd did not come back"
kill -INT "$PID" # end the stall; the run must notice that libvirt went away
rc=0
wait "$PID" || rc=$?
tb_assert_eq "$rc" 1 "exit status when libvirtd went away"
continues 4

tb_step "the domain destroyed during a backup: the next run falls back to a full (new base)"
stalled_backup -d "$DOM" -l inc -o "$OUT"
tb_virsh destroy "$DOM" >/dev/null
kill -INT "$PID" # end the stall
rc=0
wait "$PID" || rc=$?
tb_assert_eq "$rc" 1 "exit status when the domain went away"
! ls "$OUT"/*.partial 2>/dev/null || tb_fail ".partial left after the domain went away"
tb_virsh start --paused "$DOM" >/dev/null
tb_qemu_io "$DOM" vda "write -P 0x6f 30M 64k"
out=$("$VIRTBACKUP" -n -d "$DOM" -l inc -o "$OUT" 2>&1) || tb_fail "run after destroy failed: $out"
printf '%s\n' "$out" | sed 's/^/    | /' >&2
grep -q "new base" <<<"$out" || tb_fail "no fallback to a new base after the destroy: $out"
last=$(jq -r '.[-1]' "$OUT/$DOM.cpt")
assert_meta "$OUT/vda.inc.$last.data" false "$last" "" false
tb_snapshot_image "$DOM" vda "$TB_WORKDIR/now.raw"
apply_compare "$TB_WORKDIR/now.raw" "chain after the domain was destroyed" "$OUT"/vda.*.data
continues 5

tb_step "backups of several domains at the same time all succeed"
doms=()
for i in 1 2 3; do
    tb_create_domain "par$i" 32M
    tb_qemu_io "$TB_DOMAIN" vda "write -P 0x7$i 0 4M"
    doms+=("$TB_DOMAIN")
done
pids=()
for d in "${doms[@]}"; do
    "$VIRTBACKUP" -n -d "$d" -l full -z -o "$TB_WORKDIR/par-$d" 2>"$TB_WORKDIR/par-$d.err" &
    pids+=($!)
done
for i in 0 1 2; do
    wait "${pids[$i]}" || tb_fail "parallel backup of ${doms[$i]} failed: $(cat "$TB_WORKDIR/par-${doms[$i]}.err")"
    assert_meta "$TB_WORKDIR/par-${doms[$i]}/vda.full.data" false virtnbdbackup.0 "" 2
done
