#!/bin/bash
# Who can connect to virtmap (virtmap(1), SECURITY). Without --socket, -l or -p it serves on a
# unix socket of mode 0600 in a private directory (root: under /run/virtmap, other users:
# $XDG_RUNTIME_DIR, else $TMPDIR): its user connects, another user cannot, nothing listens on
# TCP, and the directory goes at exit. TCP only when -l/-p ask for it (and then every local
# user can connect, as documented); --socket makes a 0600 socket too; --socket with -p, a
# non-loopback address without --allow-remote, and --allow-remote without TLS are refused at
# start. Every read is compared with the served image.
set -euo pipefail
source "$(dirname "$0")/../lib/testbed.sh"
tb_init
export PATH="/usr/bin:$PATH"

VIRTMAP="$VB_BUILD_DIR/src/map/virtmap"
[ -x "$VIRTMAP" ] || tb_fail "virtmap not built"
command -v ss >/dev/null || tb_fail "ss missing (package iproute2)"
# the other users' files: a directory they can traverse (the work dir is root:kvm 0770)
PUB=$(mktemp -d /tmp/vbtest-map-listen.XXXXXX)
tb_on_exit "rm -rf '$PUB'"
chmod 0755 "$PUB"
head -c 8M /dev/urandom >"$PUB/vda.copy.data"
chmod 0644 "$PUB/vda.copy.data"
IMG=$PUB/vda.copy.data
install -d -o nobody -m 0700 "$PUB/nobody" "$PUB/nobody/xdg" "$PUB/nobody/tmp"

as_nobody() { runuser -u nobody -- "$@"; }
as_daemon() { runuser -u daemon -- "$@"; }
# a command, not a function: started in the background it execs into virtmap, so that $! is
# virtmap itself
EXEC_AS_NOBODY=(setpriv --reuid=nobody --regid=nogroup --clear-groups)

# start NAME [EXEC_AS_NOBODY...] VIRTMAP ARGS...: in the background until it prints its
# URI (URI[NAME], PID[NAME]; stdout/stderr in $PUB/NAME.out/.log, readable by every user)
declare -A URI PID
start() {
    local name="$1"
    shift
    "$@" >"$PUB/$name.out" 2>"$PUB/$name.log" &
    local pid=$!
    tb_on_exit "kill $pid"
    for _ in $(seq 1 100); do [ -s "$PUB/$name.out" ] && break; sleep 0.1; done
    [ -s "$PUB/$name.out" ] || tb_fail "virtmap ($name) did not start: $(cat "$PUB/$name.log")"
    URI[$name]=$(head -1 "$PUB/$name.out")
    PID[$name]=$pid
}

# stop NAME: SIGTERM; virtmap exits 0
stop() {
    local rc=0
    kill -TERM "${PID[$1]}"
    wait "${PID[$1]}" || rc=$?
    tb_assert_eq 0 "$rc" "virtmap ($1) exit status after SIGTERM"
}

# sockpath URI: the socket of an nbd+unix URI
sockpath() { sed -n 's|^nbd+unix:///[^?]*?socket=||p' <<<"$1"; }

# no_tcp PID: the process listens on no TCP port
no_tcp() {
    local l
    l=$(ss -Hltnp | grep "pid=$1," || true)
    [ -z "$l" ] || tb_fail "virtmap listens on TCP: $l"
}

# same URI WHAT [USER]: nbdcopy of the export (as USER) equals the image
same() {
    local out=$PUB/copy.raw
    rm -f "$out"
    if [ -n "${3:-}" ]; then
        runuser -u "$3" -- nbdcopy "$1" - >"$out" || tb_fail "$2: nbdcopy as $3 failed"
    else
        nbdcopy "$1" "$out" || tb_fail "$2: nbdcopy failed"
    fi
    cmp "$out" "$IMG" || tb_fail "$2: the export differs from the image"
    tb_log "$2: nbdcopy ${3:+as $3 }read the image"
}

tb_step "root, no listener option: a 0600 socket in a 0700 directory under /run/virtmap, no TCP"
start def "$VIRTMAP" -d none -r -f "$IMG" -e vda
tb_log "URI: ${URI[def]}"
grep -qE '^nbd\+unix:///vda\?socket=/run/virtmap/[^/]+/nbd\.sock$' <<<"${URI[def]}" ||
    tb_fail "the default listener is not a unix socket under /run/virtmap: ${URI[def]}"
S=$(sockpath "${URI[def]}")
tb_assert_eq "root 700 directory" "$(stat -c '%U %a %F' "$(dirname "$S")")" "socket directory"
tb_assert_eq "root 600 socket" "$(stat -c '%U %a %F' "$S")" "socket"
no_tcp "${PID[def]}"
same "${URI[def]}" "root on the default socket"
tb_expect_fail "another user cannot connect to the default socket" as_nobody nbdinfo "${URI[def]}"
stop def
[ ! -e "$(dirname "$S")" ] || tb_fail "$(dirname "$S") left behind"

tb_step "another user, no listener option: the socket in its \$XDG_RUNTIME_DIR, else \$TMPDIR"
start xdg "${EXEC_AS_NOBODY[@]}" env XDG_RUNTIME_DIR="$PUB/nobody/xdg" "$VIRTMAP" -d none -r -f "$IMG" -e vda
S=$(sockpath "${URI[xdg]}")
case "$S" in "$PUB/nobody/xdg/virtmap."*/nbd.sock) ;; *) tb_fail "not in \$XDG_RUNTIME_DIR: ${URI[xdg]}" ;; esac
tb_assert_eq "nobody 700 directory" "$(stat -c '%U %a %F' "$(dirname "$S")")" "socket directory"
tb_assert_eq "nobody 600 socket" "$(stat -c '%U %a %F' "$S")" "socket"
no_tcp "${PID[xdg]}"
same "${URI[xdg]}" "its own user" nobody
tb_expect_fail "a third user cannot connect" as_daemon nbdinfo "${URI[xdg]}"
stop xdg
[ ! -e "$(dirname "$S")" ] || tb_fail "$(dirname "$S") left behind"
start tmp "${EXEC_AS_NOBODY[@]}" env -u XDG_RUNTIME_DIR TMPDIR="$PUB/nobody/tmp" "$VIRTMAP" -d none -r -f "$IMG" -e vda
case "$(sockpath "${URI[tmp]}")" in "$PUB/nobody/tmp/virtmap."*/nbd.sock) ;; *) tb_fail "not in \$TMPDIR: ${URI[tmp]}" ;; esac
same "${URI[tmp]}" "its own user, socket in \$TMPDIR" nobody
stop tmp

tb_step "--socket PATH: mode 0600 as well"
start sock "$VIRTMAP" -d none -r -f "$IMG" -e vda --socket "$PUB/given.sock"
tb_assert_eq "nbd+unix:///vda?socket=$PUB/given.sock" "${URI[sock]}" "URI"
tb_assert_eq "root 600 socket" "$(stat -c '%U %a %F' "$PUB/given.sock")" "--socket"
tb_expect_fail "another user cannot connect to --socket" as_nobody nbdinfo "${URI[sock]}"
stop sock

tb_step "-p 0 / -l 127.0.0.1: TCP on loopback, which every local user can reach"
start tcp "$VIRTMAP" -d none -r -f "$IMG" -e vda -p 0
grep -qE '^nbd://127\.0\.0\.1:[0-9]+/vda$' <<<"${URI[tcp]}" || tb_fail "no TCP URI: ${URI[tcp]}"
ss -Hltnp | grep -q "pid=${PID[tcp]}," || tb_fail "-p 0: nothing listens on TCP"
same "${URI[tcp]}" "TCP, another user" nobody
stop tcp
start tcpl "$VIRTMAP" -d none -r -f "$IMG" -e vda -l 127.0.0.1 -p 0
grep -qE '^nbd://127\.0\.0\.1:[0-9]+/vda$' <<<"${URI[tcpl]}" || tb_fail "no TCP URI: ${URI[tcpl]}"
same "${URI[tcpl]}" "-l 127.0.0.1"
stop tcpl

tb_step "refused at start: --socket with -p, a remote address, --allow-remote without TLS"
# refused NAME TEXT ARGS...: virtmap exits 1 at once, saying TEXT
refused() {
    local what="$1" want="$2" rc=0 out
    shift 2
    out=$("$VIRTMAP" -d none -r -f "$IMG" -e vda "$@" --run 'echo SERVED' 2>&1) || rc=$?
    tb_assert_eq 1 "$rc" "$what: exit status"
    grep -q SERVED <<<"$out" && tb_fail "$what: served: $out"
    grep -qF -- "$want" <<<"$out" || tb_fail "$what: does not say '$want': $out"
    tb_log "refused ($what): $(grep -F -- "$want" <<<"$out" | head -1)"
}
refused "--socket with -p" "--socket and -l/-p exclude each other" --socket "$PUB/x.sock" -p 0
refused "-l 0.0.0.0" "pass --allow-remote" -l 0.0.0.0 -p 0
refused "--allow-remote without TLS" "--allow-remote needs TLS (--tls-creds DIR or --tls-psk FILE)" \
    -l 0.0.0.0 -p 0 --allow-remote
tb_pass "private unix socket by default, TCP only when asked, remote only with TLS"
