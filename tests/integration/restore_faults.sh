#!/bin/bash
# Faults during virtrestore and virtmap (virtrestore(1), virtmap(1)): a full target filesystem, SIGINT/SIGTERM
# and kill -9 mid-restore, a full overlay filesystem under virtmap, SIGTERM to virtmap with
# a client connected. Each gives the documented exit status and a clear error, leaves
# nothing that looks complete (no image, no .partial unless killed, no qemu-nbd running),
# and the next run works.
# Signals are deterministic in every build type: the restores that get signalled read the
# full backup through nbdfuse + nbdkit's rate filter (a few MB/s), so they are surely still
# writing when the signal arrives; the test waits until data has reached the .partial image.
set -euo pipefail
source "$(dirname "$0")/../lib/testbed.sh"
source "$(dirname "$0")/../lib/chain.sh"
tb_init
# nbdsh needs the distribution's python3 (with the nbd module) ahead of any other
export PATH="/usr/bin:$PATH"
VIRTMAP="$VB_BUILD_DIR/src/map/virtmap"
for t in "$VIRTRESTORE" "$VIRTMAP"; do [ -x "$t" ] || tb_fail "$t not built"; done
for c in nbdfuse nbdkit nbdsh fusermount3; do
    command -v $c >/dev/null || tb_fail "$c missing (apt-get install libnbd-bin nbdkit fuse3)"
done
# private temporary files of our tools (qemu-nbd's socket directory) stay in the work dir
export TMPDIR=$TB_WORKDIR/tmp
mkdir -p "$TMPDIR"
# background processes of this test, by pid (each variable is cleared once waited for)
PID="" VMPID="" CLIENT="" FUSEPID=""
# shellcheck disable=SC2016 # expanded at cleanup
tb_on_exit '[ -z "$PID" ] || kill -9 $PID; [ -z "$VMPID" ] || kill $VMPID'
# shellcheck disable=SC2016
tb_on_exit '[ -z "$CLIENT" ] || kill $CLIENT'

tb_create_domain rf 256M
DOM=$TB_DOMAIN
IMG=$(basename "${TB_IMAGES[0]}") # restored image name: basename of the source path
OUT=$TB_WORKDIR/out
tb_qemu_io "$DOM" vda "write -P 0x5a 0 32M"
vb_backup -d "$DOM" -l full -o "$OUT"
tb_qemu_io "$DOM" vda "write -P 0x5b 40M 8M"
tb_qemu_io "$DOM" vda "write -z 4M 1M"
vb_backup -d "$DOM" -l inc -o "$OUT"
SNAP=$TB_WORKDIR/snap.raw
tb_snapshot_image "$DOM" vda "$SNAP"

# The same backup, with the 32 MiB full file read through FUSE at a few MB/s.
SLOW=$TB_WORKDIR/slow
mkdir -p "$SLOW"
for f in "$OUT"/*; do ln -s "$f" "$SLOW/"; done
rm "$SLOW/vda.full.data"
touch "$SLOW/vda.full.data"
nbdfuse -r "$SLOW/vda.full.data" [ nbdkit --filter=rate file "$OUT/vda.full.data" rate=24M ] &
# shellcheck disable=SC2034 # read at cleanup
FUSEPID=$!
tb_on_exit "fusermount3 -u -z '$SLOW/vda.full.data'"
# shellcheck disable=SC2016
tb_on_exit '[ -z "$FUSEPID" ] || kill $FUSEPID'
tb_wait_for "$FUSEPID" test -s "$SLOW/vda.full.data" || tb_fail "nbdfuse did not come up"
tb_assert_eq "$(stat -c %s "$OUT/vda.full.data")" "$(stat -c %s "$SLOW/vda.full.data")" \
    "size of the throttled full backup"

# nbd_servers DIR: pids of qemu-nbd processes serving an image in DIR
nbd_servers() { pgrep -f "^qemu-nbd .* -- $1/" || true; }
# a failing run must not leave this test's qemu-nbd processes behind
# shellcheck disable=SC2016
tb_on_exit 'for p in $(nbd_servers "$TB_WORKDIR"); do kill $p; done'

# nothing_left DIR WHAT: DIR is empty (no image, no .partial, no config) and no qemu-nbd
# serves anything in it.
nothing_left() {
    [ -z "$(ls -A "$1")" ] || tb_fail "$2: left behind in $1: $(ls -A "$1" | tr '\n' ' ')"
    [ -z "$(nbd_servers "$1")" ] || tb_fail "$2: qemu-nbd still running: $(pgrep -af "^qemu-nbd .* -- $1/")"
}

# restore_ok DIR WHAT: a restore from the normal input into DIR works and equals the disk.
restore_ok() {
    local log=$TB_WORKDIR/ok.log rc=0
    "$VIRTRESTORE" -n -i "$OUT" -o "$1" -d vda >"$log" 2>&1 || rc=$?
    [ "$rc" -eq 0 ] || tb_fail "$2: virtrestore exited $rc: $(tail -5 "$log")"
    compare_qcow_raw "$1/$IMG" "$SNAP" "$2"
    [ -z "$(nbd_servers "$1")" ] || tb_fail "$2: qemu-nbd left running after a restore"
}

# writing DIR: the restore into DIR has its qemu-nbd and wrote more than 2 MiB of its image
writing() {
    local p=$1/$IMG.partial
    [ -e "$p" ] && [ -n "$(nbd_servers "$1")" ] &&
        [ "$(stat -c %s "$p" 2>/dev/null || echo 0)" -gt $((2 << 20)) ]
}

# slow_restore DIR: starts virtrestore from the throttled input into DIR in the background
# (PID, log DIR.log) and returns once its qemu-nbd runs and data reached DIR/IMG.partial.
slow_restore() {
    local dir=$1 p=$1/$IMG.partial
    mkdir -p "$dir"
    "$VIRTRESTORE" -i "$SLOW" -o "$dir" -d vda >"$dir.log" 2>&1 &
    PID=$!
    tb_wait_for $PID writing "$dir" || tb_fail "the slow restore never started writing: $(cat "$dir.log")"
    kill -0 $PID 2>/dev/null || tb_fail "the restore ended before the signal"
    tb_log "restore $PID is writing: $(stat -c %s "$p") bytes in $(basename "$p")"
}

tb_step "the target filesystem is too small: exit 1, 'No space left', no image, no .partial"
SMALL=$TB_WORKDIR/small
mkdir -p "$SMALL"
mount -t tmpfs -o size=8m tmpfs "$SMALL"
tb_on_exit "umount -l '$SMALL'"
rc=0
err=$("$VIRTRESTORE" -n -i "$OUT" -o "$SMALL" -d vda 2>&1) || rc=$?
printf '%s\n' "$err" | sed 's/^/    | /' >&2
tb_assert_eq 1 "$rc" "exit status on a full filesystem"
grep -q "No space left on device" <<<"$err" || tb_fail "the error does not say the disk is full"
grep "No space left on device" <<<"$err" | grep -qF "$SMALL/$IMG" ||
    tb_fail "the 'No space left' error does not name the image $SMALL/$IMG"
nothing_left "$SMALL" "full filesystem"
umount "$SMALL"

for sig in INT TERM; do
    tb_step "SIG$sig mid-restore: exit 1, .partial removed, qemu-nbd stopped; the next run works"
    R=$TB_WORKDIR/r-$sig
    slow_restore "$R"
    kill -$sig $PID
    rc=0
    wait $PID || rc=$?
    PID=""
    sed 's/^/    | /' "$R.log" >&2
    tb_assert_eq 1 "$rc" "exit status after SIG$sig"
    grep -q "interrupted by SIG$sig" "$R.log" || tb_fail "no 'interrupted by SIG$sig' error"
    nothing_left "$R" "SIG$sig"
    restore_ok "$R" "restore after SIG$sig"
done

tb_step "kill -9 mid-restore: the .partial stays, qemu-nbd ends with its parent"
R=$TB_WORKDIR/r-KILL
slow_restore "$R"
server=$(nbd_servers "$R")
killed=$PID
kill -9 $PID
wait $PID 2>/dev/null || true
PID=""
[ -e "$R/$IMG.partial" ] || tb_fail "expected the killed run's .partial to stay"
[ ! -e "$R/$IMG" ] || tb_fail "a killed run left a complete-looking $IMG"
# the kernel sends it SIGTERM (PR_SET_PDEATHSIG) and it flushes and exits
TB_WAIT_LIMIT=120 tb_wait_for "$server" false || true
[ -z "$(nbd_servers "$R")" ] ||
    tb_fail "qemu-nbd $server outlived the killed virtrestore: $(pgrep -af "^qemu-nbd .* -- $R/")"

tb_step "after kill -9: the next run refuses naming the .partial; after removing it, works"
rc=0
err=$("$VIRTRESTORE" -n -i "$OUT" -o "$R" -d vda 2>&1) || rc=$?
printf '%s\n' "$err" | sed 's/^/    | /' >&2
tb_assert_eq 1 "$rc" "exit status with a .partial left by a killed run"
grep -qF "$R/$IMG.partial: exists" <<<"$err" || tb_fail "the refusal does not name the .partial"
[ ! -e "$R/$IMG" ] || tb_fail "the refused run made $IMG"
[ "$(ls -A "$R")" = "$IMG.partial" ] || tb_fail "the refused run changed $R: $(ls -A "$R")"
# what the killed run could not remove: its private directory (qemu-nbd removed its socket,
# and the error file's name was gone once qemu-nbd had it open)
killed_dirs=$(find "$TMPDIR" -maxdepth 1 -name "vb-qemu-nbd.$killed.*")
[ -n "$killed_dirs" ] || tb_fail "expected the killed run's vb-qemu-nbd.$killed.* in $TMPDIR: $(ls -A "$TMPDIR")"
[ -z "$(ls -A $killed_dirs)" ] || tb_fail "the killed run's directory is not empty: $(ls -A $killed_dirs)"
rm "$R/$IMG.partial"
restore_ok "$R" "restore after kill -9"
[ -z "$(ls -A "$TMPDIR")" ] || tb_fail "the next run did not sweep $TMPDIR: $(ls -A "$TMPDIR")"
grep -qF "left by a killed run (pid $killed)" "$TB_WORKDIR/ok.log" ||
    tb_fail "the next run did not say it removed the killed run's directory"

tb_step "qemu-nbd runs with --aio=io_uring; one that refuses io_uring is started again without"
# A qemu-nbd in front of the real one: logs its arguments, and with REFUSE_URING set answers
# --aio=io_uring like a qemu-nbd built without io_uring (or on a kernel that refuses it).
WRAP=$TB_WORKDIR/wrap
mkdir -p "$WRAP"
cat >"$WRAP/qemu-nbd" <<'SH'
#!/bin/sh
echo "$*" >>"$WRAP_LOG"
case " $* " in
*" --aio=io_uring "*) if [ -n "${REFUSE_URING:-}" ]; then
    echo "qemu-nbd: Failed to blk_new_open 'x': Unable to use io_uring: failed to init linux io_uring ring" >&2
    exit 1
fi ;;
esac
exec /usr/bin/qemu-nbd "$@"
SH
chmod +x "$WRAP/qemu-nbd"
export WRAP_LOG=$TB_WORKDIR/wrap.log
for mode in uses refused; do
    R=$TB_WORKDIR/r-uring-$mode
    : >"$WRAP_LOG"
    rc=0
    if [ $mode = refused ]; then
        REFUSE_URING=1 PATH="$WRAP:$PATH" "$VIRTRESTORE" -n -v -i "$OUT" -o "$R" -d vda >"$R.log" 2>&1 || rc=$?
    else
        PATH="$WRAP:$PATH" "$VIRTRESTORE" -n -v -i "$OUT" -o "$R" -d vda >"$R.log" 2>&1 || rc=$?
    fi
    [ "$rc" -eq 0 ] || tb_fail "io_uring $mode: virtrestore exited $rc: $(tail -5 "$R.log")"
    compare_qcow_raw "$R/$IMG" "$SNAP" "restore with io_uring $mode"
    sed 's/^/    | qemu-nbd /' "$WRAP_LOG" >&2
    grep -q -- "--aio=io_uring" <(head -1 "$WRAP_LOG") || tb_fail "io_uring $mode: the first qemu-nbd had no --aio=io_uring"
    if [ $mode = refused ]; then
        tb_assert_eq 2 "$(wc -l <"$WRAP_LOG")" "qemu-nbd starts when io_uring is refused"
        grep -q -- "--aio=io_uring" <(tail -1 "$WRAP_LOG") && tb_fail "the second qemu-nbd asked for io_uring again"
        grep -q "started again without io_uring" "$R.log" || tb_fail "the fallback is not in the debug log"
    else
        tb_assert_eq 1 "$(wc -l <"$WRAP_LOG")" "qemu-nbd starts with io_uring available"
    fi
    [ -z "$(nbd_servers "$R")" ] || tb_fail "io_uring $mode: qemu-nbd left running"
done

# ---------------------------------------------------------------------------------------
# virtmap

OVL=$TB_WORKDIR/ovl
mkdir -p "$OVL"
mount -t tmpfs -o size=2m tmpfs "$OVL"
tb_on_exit "umount -l '$OVL'"
SOCK=$TB_WORKDIR/map.sock
URI="nbd+unix:///vda?socket=$SOCK"
EXPECT=$TB_WORKDIR/expect.raw # the disk with 64 KiB of 0x77 at 1 MiB
cp "$SNAP" "$EXPECT"
qemu-io -f raw "$EXPECT" -c "write -P 0x77 1M 64k" >/dev/null

# start_map ARGS...: virtmap -d none on $SOCK in the background (VMPID), once serving.
start_map() {
    rm -f "$TB_WORKDIR/map.pid"
    "$VIRTMAP" -d none -i "$OUT" --socket "$SOCK" --pidfile "$TB_WORKDIR/map.pid" "$@" \
        >/dev/null 2>"$TB_WORKDIR/map.log" &
    VMPID=$!
    tb_wait_for $VMPID test -s "$TB_WORKDIR/map.pid" || tb_fail "virtmap did not start: $(cat "$TB_WORKDIR/map.log")"
}

# stop_map WHAT: SIGTERM; virtmap exits 0 and removes its socket and pidfile.
stop_map() {
    kill -TERM $VMPID
    local rc=0
    wait $VMPID || rc=$?
    VMPID=""
    sed 's/^/    | /' "$TB_WORKDIR/map.log" >&2
    tb_assert_eq 0 "$rc" "$1: virtmap exit status after SIGTERM"
    [ ! -e "$SOCK" ] || tb_fail "$1: socket $SOCK left behind"
    [ ! -e "$TB_WORKDIR/map.pid" ] || tb_fail "$1: pidfile left behind"
}

# nbdsh snippets: one 64 KiB write, flushed; a 4 MiB write that must fail with ENOSPC
WRITE_OK='
h.pwrite(b"\x77" * 65536, 1 << 20)
h.flush()
'
WRITE_FULL='
try:
    h.pwrite(b"\x78" * (4 << 20), 8 << 20)
    raise SystemExit("a 4 MiB write into a 2 MiB overlay filesystem succeeded")
except nbd.Error as e:
    assert e.errno == "ENOSPC", e
    print("as expected:", e.string)
'

tb_step "virtmap --overlay on a full filesystem: writes fail ENOSPC, reads stay correct"
start_map --overlay "$OVL"
nbdsh -u "$URI" -c "$WRITE_OK$WRITE_FULL
h.flush()" || tb_fail "overlay writes on a full filesystem"
out=$(qemu-img compare -f raw -F raw "$URI" "$EXPECT" 2>&1) ||
    tb_fail "the export is wrong after ENOSPC: $out"
stop_map "--overlay on a full filesystem"
tb_step "the overlay of that run is consistent: a new run sees exactly the successful write"
start_map --overlay "$OVL"
out=$(qemu-img compare -f raw -F raw "$URI" "$EXPECT" 2>&1) ||
    tb_fail "the reused overlay is wrong: $out"
stop_map "reused overlay"
umount "$OVL"

tb_step "virtmap with its private overlay full, SIGTERM with a client connected: clean exit"
TINY=$TB_WORKDIR/tiny
mkdir -p "$TINY"
mount -t tmpfs -o size=2m tmpfs "$TINY"
tb_on_exit "umount -l '$TINY'"
TMPDIR=$TINY start_map
ls -d "$TINY"/virtmap.* >/dev/null 2>&1 || tb_fail "no private overlay directory in $TINY"
rm -f "$TB_WORKDIR/client.ready"
# after ENOSPC a flush still works (the private overlay's map is never saved); the last
# write is not flushed; then the client stays connected
nbdsh -u "$URI" -c "$WRITE_OK
h.pwrite(b'\\x79' * 4096, 0)
$WRITE_FULL
h.flush()
h.pwrite(b'\\x7a' * 4096, 0)  # overwrites space the overlay holds already
open(\"$TB_WORKDIR/client.ready\", \"w\").close()
import time
time.sleep(3600)
" >"$TB_WORKDIR/client.log" 2>&1 &
CLIENT=$!
tb_on_exit "kill $CLIENT"
tb_wait_for $CLIENT test -e "$TB_WORKDIR/client.ready" ||
    tb_fail "the client failed: $(cat "$TB_WORKDIR/client.log")"
stop_map "private overlay, client connected"
# the client never leaves on its own: virtmap stopped without waiting for it
kill -0 $CLIENT 2>/dev/null || tb_fail "virtmap stopped only once the client had gone"
[ -z "$(ls -A "$TINY")" ] || tb_fail "private overlay left behind: $(ls -AR "$TINY")"
kill $CLIENT 2>/dev/null || true
wait $CLIENT 2>/dev/null || true
CLIENT=""
umount "$TINY"

tb_pass "virtrestore and virtmap keep their promises under faults"
