#!/bin/bash
# The remote-host module (src/common/ssh_remote.c, libssh) against a real OpenSSH server on
# loopback (tests/lib/sshd.sh), through tests/tools/ssh-tool: remote commands get their
# arguments byte for byte (every argument quoted), failures name the command, its exit status
# and its first stderr line; SFTP get/put are byte-exact, atomic (.partial) and put never
# overwrites; mkdtemp/rmdir; host keys: unknown refused (or accepted and recorded on request),
# changed refused; wrong client key, closed port, unresolvable host and a silent server each
# give their own message. libvirt over the same sshd (qemu+ssh://) sees this test's domain as
# libvirt does locally. Ports are the kernel's choice, held by the test while it uses them.
set -euo pipefail
source "$(dirname "$0")/../lib/testbed.sh"
source "$(dirname "$0")/../lib/sshd.sh"
tb_init

SSH_TOOL=$(tb_tool ssh-tool)
W=$TB_WORKDIR
sshd_start

# st ARGS...: ssh-tool against the test sshd with the test's key and known_hosts
st() {
    "$SSH_TOOL" --port "$SSHD_PORT" --user root --key "$SSH_KEY" --known-hosts "$SSH_KNOWN_HOSTS" \
        127.0.0.1 "$@"
}

# expect_error TEXT CMD...: CMD exits 1 and its stderr is one "ssh-tool: " line containing TEXT
expect_error() {
    local text="$1" rc=0 out
    shift
    out=$("$@" 2>&1 >/dev/null) || rc=$?
    [ "$rc" -eq 1 ] || tb_fail "'$*' exited $rc, expected 1; said: $out"
    [ "$(wc -l <<<"$out")" -eq 1 ] || tb_fail "'$*' said more than one line: $out"
    [[ "$out" == "ssh-tool: "* ]] || tb_fail "'$*' did not print 'ssh-tool: <msg>': $out"
    grep -qF -- "$text" <<<"$out" || tb_fail "'$*' did not say '$text'; said: $out"
    tb_log "as expected: $out"
}

tb_step "libvirt over the test sshd: this test's domain seen alike locally and over ssh"
sshd_check_libvirt
# only this test's own domain: other tests create and remove theirs meanwhile
tb_create_domain seen 16M
for q in domuuid domstate; do
    tb_assert_eq "$(tb_virsh "$q" "$TB_DOMAIN")" \
        "$(virsh -q -c "$TEST_REMOTE_URI" "$q" "$TB_DOMAIN" </dev/null)" "$q of $TB_DOMAIN over ssh"
done

tb_step "run: arguments arrive byte for byte (quotes, \$(...), ;, *, newlines, non-ASCII, empty)"
# shellcheck disable=SC2016,SC1003 # literal $, ` and \ are the point
args=('a b' "it's" 'say "hi"' '$(echo INJECTED)' '`echo INJECTED`' 'a;echo INJECTED' '*' '/*'
    $'two\nlines' $'trailing\n' 'héllo wörld ✓ 日本' '' '\' '\\n' '$HOME' '!x' '--' '-n' ' lead'
    $'tab\there' '~' '{a,b}' '>redir' '|' '&' "'" '"' "''" '%s' "a'b\"c\$d\`e")
printf '%s\n' "${args[@]}" >"$W/run.expected"
st run printf '%s\n' "${args[@]}" >"$W/run.got"
cmp "$W/run.expected" "$W/run.got" ||
    tb_fail "remote printf output differs: $(diff "$W/run.expected" "$W/run.got" | head -n 10)"
! grep -qx INJECTED "$W/run.got" || tb_fail "a remote shell interpreted an argument"
# argument count too (an argument split by the remote shell would show here)
tb_assert_eq "${#args[@]}" "$(st run sh -c 'echo $#' sh "${args[@]}")" "argument count"
tb_assert_eq "" "$(st run true)" "stdout of true"

tb_step "run: a failing command names itself, its exit status and its first stderr line"
expect_error "ssh-tool: sh on 127.0.0.1 failed (exit 7): the first problem" \
    st run sh -c 'echo to-stdout; echo "the first problem" >&2; echo second >&2; exit 7'
expect_error "no-such-command-vb on 127.0.0.1 failed (exit 127): " st run no-such-command-vb x
expect_error "not found" st run no-such-command-vb x
expect_error "sh on 127.0.0.1 failed (exit 3): (no error output)" st run sh -c 'exit 3'

tb_step "run: 3 MB on stdout and on stderr at once (no deadlock), stdout complete"
st run sh -c 'head -c 3000000 /dev/zero | tr "\0" e >&2; head -c 3000000 /dev/zero | tr "\0" o
              echo end >&2' >"$W/big.out"
tb_assert_eq 3000000 "$(stat -c %s "$W/big.out")" "stdout size"
tb_assert_eq 0 "$(tr -d o <"$W/big.out" | wc -c)" "bytes other than 'o' in stdout"

tb_step "mkdtemp: a new 0700 directory from the template, a different one each time"
d1=$(st mkdtemp "$W/remote dir, 'x'-XXXXXX")
d2=$(st mkdtemp "$W/remote dir, 'x'-XXXXXX")
for d in "$d1" "$d2"; do
    [[ "$d" == "$W/remote dir, 'x'-"?????? ]] || tb_fail "mkdtemp printed '$d'"
    [[ "$d" != *XXXXXX ]] || tb_fail "mkdtemp did not replace XXXXXX: $d"
    [ -d "$d" ] || tb_fail "mkdtemp did not create $d"
    tb_assert_eq 700 "$(stat -c %a "$d")" "mode of $d"
done
[ "$d1" != "$d2" ] || tb_fail "two mkdtemp calls gave the same name $d1"
expect_error "does not end in XXXXXX" st mkdtemp "$W/no-template"
tb_assert_eq yes "$(st exists "$d1")" "exists on a directory"
tb_assert_eq no "$(st exists "$d1/none")" "exists on a missing path"

tb_step "put/get: byte-exact, odd names, mode, no .partial left"
head -c $((4 * 1024 * 1024 + 12345)) /dev/urandom >"$W/random.bin"
name="name with spaces, 'single' \"double\", comma.bin"
st put "$W/random.bin" "$d1/random.bin"
cmp "$W/random.bin" "$d1/random.bin" || tb_fail "put: remote copy differs"
tb_assert_eq 644 "$(stat -c %a "$d1/random.bin")" "mode of a put file (default 0644)"
st put --mode 0640 "$W/random.bin" "$d1/$name"
cmp "$W/random.bin" "$d1/$name" || tb_fail "put: remote copy of '$name' differs"
tb_assert_eq 640 "$(stat -c %a "$d1/$name")" "mode of a put file with --mode 0640"
mkdir "$W/local"
st get "$d1/random.bin" "$W/local/got.bin"
cmp "$W/random.bin" "$W/local/got.bin" || tb_fail "get: local copy differs"
st get "$d1/$name" "$W/local/$name"
cmp "$W/random.bin" "$W/local/$name" || tb_fail "get: local copy of '$name' differs"
for n in 0 1 65536 65537 $((1024 * 1024 + 1)); do # around the SFTP request and pipeline sizes
    head -c "$n" /dev/urandom >"$W/local/size-$n"
    st put "$W/local/size-$n" "$d1/size-$n"
    st get "$d1/size-$n" "$W/local/size-$n.back"
    cmp "$W/local/size-$n" "$W/local/size-$n.back" || tb_fail "get/put of $n bytes differs"
done
! ls "$d1"/*.partial "$W"/local/*.partial 2>/dev/null || tb_fail ".partial files left behind"

tb_step "put refuses an existing target and leaves it unchanged"
head -c 1000 /dev/urandom >"$W/other.bin"
expect_error "127.0.0.1:$d1/$name already exists" st put "$W/other.bin" "$d1/$name"
cmp "$W/random.bin" "$d1/$name" || tb_fail "a refused put changed the target"
[ ! -e "$d1/$name.partial" ] || tb_fail "a refused put left $d1/$name.partial"

tb_step "get of a missing file fails naming it and leaves nothing locally"
expect_error "cannot open 127.0.0.1:$d1/missing: No such file" st get "$d1/missing" "$W/local/missing"
if [ -e "$W/local/missing" ] || [ -e "$W/local/missing.partial" ]; then
    tb_fail "a failed get left a local file"
fi

tb_step "rmdir removes the directory with its files; unlink one file"
st unlink "$d1/size-0"
[ ! -e "$d1/size-0" ] || tb_fail "unlink left $d1/size-0"
st rmdir "$d1"
[ ! -e "$d1" ] || tb_fail "rmdir left $d1: $(ls -la "$d1")"
tb_assert_eq no "$(st exists "$d1")" "exists after rmdir"
mkdir "$d2/subdir"
expect_error "cannot remove directory 127.0.0.1:$d2" st rmdir "$d2"
rmdir "$d2/subdir"
st rmdir "$d2"
[ ! -e "$d2" ] || tb_fail "rmdir left $d2"

hostkey=$(cut -d' ' -f1,2 "$SSH_HOST_PUBKEY")

tb_step "an unknown host key is refused; --accept-new records it, then it is known"
: >"$W/kh-empty"
expect_error "host key of 127.0.0.1:$SSHD_PORT is not in $W/kh-empty (add it with ssh-keyscan, or pass --ssh-accept-new-key)" \
    "$SSH_TOOL" --port "$SSHD_PORT" --key "$SSH_KEY" --known-hosts "$W/kh-empty" 127.0.0.1 run true
[ ! -s "$W/kh-empty" ] || tb_fail "a refused host key was written to known_hosts"
tb_assert_eq accepted "$("$SSH_TOOL" --accept-new --port "$SSHD_PORT" --key "$SSH_KEY" \
    --known-hosts "$W/kh-empty" 127.0.0.1 run echo accepted 2>/dev/null)" "--accept-new"
tb_assert_eq "[127.0.0.1]:$SSHD_PORT $hostkey" "$(cat "$W/kh-empty")" "recorded known_hosts entry"
tb_assert_eq known "$("$SSH_TOOL" --port "$SSHD_PORT" --key "$SSH_KEY" --known-hosts "$W/kh-empty" \
    127.0.0.1 run echo known)" "run with the recorded key, without --accept-new"
# a known_hosts whose directory does not exist yet is created
"$SSH_TOOL" --accept-new --port "$SSHD_PORT" --key "$SSH_KEY" --known-hosts "$W/new/dir/kh" \
    127.0.0.1 run true 2>/dev/null
tb_assert_eq "[127.0.0.1]:$SSHD_PORT $hostkey" "$(cat "$W/new/dir/kh")" "known_hosts in a new dir"

tb_step "a changed host key is refused, also with --accept-new"
ssh-keygen -q -t ed25519 -N '' -f "$W/impostor" -C impostor
printf '[127.0.0.1]:%s %s\n' "$SSHD_PORT" "$(cut -d' ' -f1,2 "$W/impostor.pub")" >"$W/kh-changed"
cp "$W/kh-changed" "$W/kh-changed.orig"
for accept in "" --accept-new; do
    # shellcheck disable=SC2086 # $accept is empty or one word
    expect_error "host key for 127.0.0.1:$SSHD_PORT has CHANGED" \
        "$SSH_TOOL" $accept --port "$SSHD_PORT" --key "$SSH_KEY" --known-hosts "$W/kh-changed" \
        127.0.0.1 run true
    # shellcheck disable=SC2086
    expect_error "possible attack; remove the old key from $W/kh-changed" \
        "$SSH_TOOL" $accept --port "$SSHD_PORT" --key "$SSH_KEY" --known-hosts "$W/kh-changed" \
        127.0.0.1 run true
done
cmp "$W/kh-changed" "$W/kh-changed.orig" || tb_fail "known_hosts changed after a refused key"

tb_step "a client key the server does not know: authentication failure naming user and key"
ssh-keygen -q -t ed25519 -N '' -f "$W/wrong_key" -C wrong
expect_error "authentication as root@127.0.0.1:$SSHD_PORT failed (key $W/wrong_key" \
    "$SSH_TOOL" --port "$SSHD_PORT" --user root --key "$W/wrong_key" \
    --known-hosts "$SSH_KNOWN_HOSTS" 127.0.0.1 run true
expect_error "cannot read private key $W/no-such-key" \
    "$SSH_TOOL" --port "$SSHD_PORT" --key "$W/no-such-key" --known-hosts "$SSH_KNOWN_HOSTS" \
    127.0.0.1 run true

# hold_port MODE FILE: a python process holding a TCP port of 127.0.0.1 that the kernel chose,
# written to FILE: "closed" binds it without listening (connections are refused, and no one
# else can take the port meanwhile), "silent" listens and never answers. Sets HELD.
hold_port() {
    rm -f "$2"
    /usr/bin/python3 -c 'import os, socket, sys, time
s = socket.socket()
s.bind(("127.0.0.1", 0))
if sys.argv[1] == "silent":
    s.listen(5)
with open(sys.argv[2] + ".tmp", "w") as f:
    f.write(str(s.getsockname()[1]))
os.rename(sys.argv[2] + ".tmp", sys.argv[2])
while True:
    time.sleep(3600)' "$1" "$2" &
    HELD=$!
    tb_on_exit "kill $HELD"
    tb_wait_for "$HELD" test -s "$2" || tb_fail "the port holder ($1) did not start"
}

tb_step "a port where nothing listens: refused; no-such-host.invalid: does not resolve"
hold_port closed "$W/closed.port"
closed=$(cat "$W/closed.port")
expect_error "connection to 127.0.0.1:$closed refused" \
    "$SSH_TOOL" --port "$closed" --key "$SSH_KEY" --known-hosts "$SSH_KNOWN_HOSTS" 127.0.0.1 run true
kill "$HELD"
expect_error "host no-such-host.invalid does not resolve" \
    "$SSH_TOOL" --key "$SSH_KEY" --known-hosts "$SSH_KNOWN_HOSTS" no-such-host.invalid run true

tb_step "a server that accepts TCP but never speaks SSH: the handshake times out (10 s)"
# The server never answers and never closes: without a timeout the tool would hang until
# `timeout` ends it (exit 124, which expect_error rejects). 120 s is a hang guard, 12x the
# handshake timeout; the lower bound is the timeout less a margin for SECONDS' whole seconds.
hold_port silent "$W/silent.port"
port=$(cat "$W/silent.port")
t0=$SECONDS
expect_error "SSH handshake with 127.0.0.1:$port failed" timeout 120 \
    "$SSH_TOOL" --port "$port" --key "$SSH_KEY" --known-hosts "$SSH_KNOWN_HOSTS" 127.0.0.1 run true
t=$((SECONDS - t0))
[ "$t" -ge 8 ] || tb_fail "the handshake gave up after $t s, before its 10 s timeout"
kill "$HELD"

tb_pass "remote ssh module: commands, SFTP, host keys and connection errors"
