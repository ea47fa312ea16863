# shellcheck shell=bash disable=SC2034 # MAP_CLIENT, URI, CLIENTS are used by the sourcing tests
# Helpers for the tests of virtmap's --overlay (map_overlay_*.sh), on top of testbed.sh and
# chain.sh: one virtmap at a time on a unix socket in the work dir, started in the background
# and stopped cleanly or with kill -9; the NBD clients of map_overlay_client.py.

# nbdsh and the client need the distribution's python3 (with the nbd module)
export PATH="/usr/bin:$PATH"
VIRTMAP="$VB_BUILD_DIR/src/map/virtmap"
[ -x "$VIRTMAP" ] || tb_fail "virtmap not built"
MAP_CLIENT="/usr/bin/python3 $VB_SOURCE_DIR/tests/integration/map_overlay_client.py"
SOCK=$TB_WORKDIR/map.sock
URI="nbd+unix:///vda?socket=$SOCK"
VMPID=""
CLIENTS=()
tb_on_exit '[ -z "$VMPID" ] || kill -9 $VMPID'
tb_on_exit 'for p in "${CLIENTS[@]}"; do kill $p; done'

# start_map ARGS...: virtmap -d none on $SOCK in the background (VMPID), once serving; its
# stderr goes to $TB_WORKDIR/map.log.
start_map() {
    rm -f "$TB_WORKDIR/map.pid"
    "$VIRTMAP" -d none --socket "$SOCK" --pidfile "$TB_WORKDIR/map.pid" "$@" >/dev/null \
        2>>"$TB_WORKDIR/map.log" &
    VMPID=$!
    for _ in $(seq 1 600); do [ -s "$TB_WORKDIR/map.pid" ] && break; sleep 0.05; done
    [ -s "$TB_WORKDIR/map.pid" ] ||
        tb_fail "virtmap did not start: $(tail -3 "$TB_WORKDIR/map.log")"
}

# kill9_map: the crash (nothing of virtmap's exit path runs).
kill9_map() {
    kill -9 "$VMPID"
    wait "$VMPID" 2>/dev/null || true
    VMPID=""
}

# stop_map: SIGTERM; virtmap must exit 0.
stop_map() {
    kill -TERM "$VMPID"
    local rc=0
    wait "$VMPID" || rc=$?
    VMPID=""
    tb_assert_eq 0 "$rc" "virtmap exit status after SIGTERM"
}

# wait_file FILE WHAT: waits until FILE exists (a client got going), at most 120 s.
wait_file() {
    for _ in $(seq 1 2400); do [ -e "$1" ] && return 0; sleep 0.05; done
    tb_fail "$2: $1 never appeared"
}

# no_temporaries DIR: no *.partial file left in DIR.
no_temporaries() {
    [ -z "$(find "$1" -name '*.partial')" ] || tb_fail "temporaries left in $1: $(ls "$1")"
}
