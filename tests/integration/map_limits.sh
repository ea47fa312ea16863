#!/bin/bash
# virtmap's NBD server under hostile clients (virtmap(1), THE NBD SERVER), with raw-socket
# clients (map_clients.py) and libnbd's nbdinfo:
#   - an export name beyond NBD's 4096 bytes is refused at start (it overflowed NBD_OPT_LIST's
#     buffer), and the longest allowed one is listed whole;
#   - --max-connections N: client N+1 is closed at once while the N are served; the default
#     limit (32) holds too;
#   - the whole handshake has a deadline: a client dripping a byte at a time is cut off
#     (--handshake-timeout 2, and the default 30 s), one past the handshake may idle;
#   - memory: after one 32 MiB read the connection gives its buffer back (RSS bound with a
#     wide margin: a connection that kept 32 MiB for its life would exceed it).
# The exports are raw .copy.data images of random data, compared with what clients read.
set -euo pipefail
source "$(dirname "$0")/../lib/testbed.sh"
tb_init
# nbdinfo and the clients need the distribution's python3 and tools first
export PATH="/usr/bin:$PATH"

VIRTMAP="$VB_BUILD_DIR/src/map/virtmap"
[ -x "$VIRTMAP" ] || tb_fail "virtmap not built"
CLIENTS=(/usr/bin/python3 "$VB_SOURCE_DIR/tests/integration/map_clients.py")
W=$TB_WORKDIR
mkdir -p "$W/img"
head -c 48M /dev/urandom >"$W/img/vda.copy.data"

# serve NAME ARGS...: virtmap -d none -r on $W/NAME.sock in the background, once serving;
# its pid in PID[NAME], log in $W/NAME.log
declare -A PID
serve() {
    local name="$1"
    shift
    "$VIRTMAP" -d none -r -f "$W/img/vda.copy.data" -e vda --socket "$W/$name.sock" \
        --pidfile "$W/$name.pid" "$@" >/dev/null 2>"$W/$name.log" &
    local pid=$!
    tb_on_exit "kill $pid"
    for _ in $(seq 1 100); do [ -s "$W/$name.pid" ] && break; sleep 0.1; done
    [ -s "$W/$name.pid" ] || tb_fail "virtmap ($name) did not start: $(cat "$W/$name.log")"
    PID[$name]=$pid
}

# stop NAME: SIGTERM, exit status 0
stop() {
    local rc=0
    kill -TERM "${PID[$1]}"
    wait "${PID[$1]}" || rc=$?
    tb_assert_eq 0 "$rc" "virtmap ($1) exit status after SIGTERM"
}

tb_step "a dripping client against the default handshake deadline (30 s), in the background"
serve slow
"${CLIENTS[@]}" drip "unix:$W/slow.sock" vda 1.5 >"$W/slow.drip" 2>&1 &
DRIP=$!
tb_on_exit "kill $DRIP"

tb_step "an export name of 9000 bytes is refused at start, naming the limit"
rc=0
out=$("$VIRTMAP" -d none -r -f "$W/img/vda.copy.data" -e "$(printf 'a%.0s' $(seq 1 9000))" \
    --socket "$W/long.sock" --run "nbdinfo --list 'nbd+unix:///?socket=$W/long.sock'" 2>&1) || rc=$?
tb_assert_eq 1 "$rc" "exit status for a 9000-byte export name"
grep -q 'an export name of 9000 bytes; NBD allows at most 4096' <<<"$out" ||
    tb_fail "no clear refusal of the 9000-byte name; virtmap said: $(grep -v '^virtmap: export' <<<"$out" |
        cut -c1-200 | grep -m8 -E 'ERROR|SUMMARY|#[0-9] |virtmap|nbdinfo')"
[ ! -e "$W/long.sock" ] || tb_fail "a socket was made for the refused name"
tb_log "refused: $(grep -o 'virtmap: -e.*' <<<"$out" | head -1)"

tb_step "the longest allowed name (4096 bytes) is listed whole and served"
long=$(printf 'b%.0s' $(seq 1 4096))
"$VIRTMAP" -d none -r -f "$W/img/vda.copy.data" -e "$long" --socket "$W/long.sock" \
    --run "nbdinfo --list --json 'nbd+unix:///?socket=$W/long.sock' >'$W/list.json' &&
           nbdcopy \"\$uri\" '$W/long.raw'" >/dev/null 2>"$W/long.log" ||
    tb_fail "serving a 4096-byte name failed: $(tail -3 "$W/long.log")"
tb_assert_eq "$long" "$(jq -r '.exports[0]["export-name"]' "$W/list.json")" "listed export name"
cmp "$W/long.raw" "$W/img/vda.copy.data" || tb_fail "the export named by 4096 bytes differs"

tb_step "--max-connections 3: a 4th client is closed at once, the 3 go on"
serve lim --max-connections 3
"${CLIENTS[@]}" limit "unix:$W/lim.sock" vda 3 || tb_fail "connection limit (see above)"
grep -q 'refused: the limit of 3 connections is reached (--max-connections)' "$W/lim.log" ||
    tb_fail "no log line for the refused client: $(cat "$W/lim.log")"
nbdcopy "nbd+unix:///vda?socket=$W/lim.sock" "$W/lim.raw"
cmp "$W/lim.raw" "$W/img/vda.copy.data" || tb_fail "export differs after the limit was hit"
stop lim

tb_step "the default limit: 32 clients, the 33rd is closed"
serve deflim
"${CLIENTS[@]}" limit "unix:$W/deflim.sock" vda 32 || tb_fail "default connection limit (see above)"
stop deflim

tb_step "--handshake-timeout 2: a dripping client is cut off; a served client may idle"
serve dl --handshake-timeout 2
"${CLIENTS[@]}" drip "unix:$W/dl.sock" vda 0.5 || tb_fail "the dripping client was not cut off"
grep -q 'handshake not finished within 2000 ms: disconnecting' "$W/dl.log" ||
    tb_fail "no log line for the deadline: $(cat "$W/dl.log")"
"${CLIENTS[@]}" idle "unix:$W/dl.sock" vda 4 || tb_fail "an idle client past the handshake was cut off"
stop dl

tb_step "memory: after a 32 MiB read the connection gives its buffer back"
# ASan's quarantine would keep freed memory resident: off for this server
ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}quarantine_size_mb=0" serve mem
out=$("${CLIENTS[@]}" rss "unix:$W/mem.sock" vda "${PID[mem]}") || tb_fail "the 32 MiB read failed"
read -r _ before after <<<"$out"
tb_log "virtmap VmRSS: $before KiB before the 32 MiB read, $after KiB after it, client idle"
[ $((after - before)) -lt 16384 ] ||
    tb_fail "an idle connection still holds $(((after - before) / 1024)) MiB after a 32 MiB read"
stop mem

tb_step "the dripping client was cut off by the default deadline"
rc=0
wait $DRIP || rc=$?
cat "$W/slow.drip" >&2
tb_assert_eq 0 "$rc" "dripping client against the default deadline"
grep -q 'handshake not finished within 30000 ms' "$W/slow.log" ||
    tb_fail "no log line for the default deadline: $(cat "$W/slow.log")"
stop slow
tb_pass "names bounded, connections limited, handshakes bounded in time, buffers given back"
