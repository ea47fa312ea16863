# shellcheck shell=bash disable=SC2034 # exported variables are read by the sourcing tests
# Remote-access environments for virtbackup's remote tests, on the test bed's own libvirtd
# (started by scripts/setup-testbed.sh; found by /run/libvirtd.pid, see backup_faults.sh):
#
#   tls_setup / tls_teardown
#       TLS for the backup job's NBD server (<server transport='tcp' tls='yes' .../>):
#       a CA, a server certificate (SAN IP 127.0.0.1, DNS localhost) and a client
#       certificate, named as qemu and libnbd expect; backup_tls_x509_cert_dir set in
#       /etc/libvirt/qemu.conf (original kept and restored byte for byte, mode and times
#       included); libvirtd restarted.
#       Exports TLS_CERT_DIR      ca-cert.pem server-cert.pem server-key.pem
#                                 client-cert.pem client-key.pem (one dir for qemu and libnbd)
#               TLS_BAD_CERT_DIR  ca-cert.pem client-cert.pem client-key.pem of another CA:
#                                 verification fails both ways (client and server side)
#   sasl_setup / sasl_teardown
#       libvirtd listening on tcp 127.0.0.1:$SASL_PORT (a free port of 16510-16599) with
#       auth_tcp="sasl" (DIGEST-MD5, sasldb),
#       restarted with --listen and a copy of /etc/libvirt/libvirtd.conf (-f); the SASL config
#       is given to libvirtd by SASL_CONF_PATH, so nothing under /etc is edited for it.
#       Exports SASL_URI=qemu+tcp://127.0.0.1:$SASL_PORT/system SASL_PORT SASL_USER SASL_PASSWORD
#               SASL_AUTH_FILE   a libvirt auth file with these credentials (for LIBVIRT_AUTH_FILE)
#   remote_env_teardown          both teardowns (safe to call any time, also twice)
#   remote_env_restart_libvirtd  restarts libvirtd in the mode the environments need
#   remote_env_free_port         a free TCP port on 127.0.0.1
#
# The environments share one state dir; a run killed before its teardown leaves the owner
# file behind, and the next setup restores the original config first (remote_env_recover).
# Teardowns restart libvirtd with the arguments it originally ran with (read from
# /proc/<pid>/cmdline at the first setup), so `virsh -c qemu:///system` works as before.
# Functions exit the test (tb_fail, or exit 1) on a setup failure; teardowns never exit,
# they report and return non-zero.

REMOTE_ENV_ROOT=${REMOTE_ENV_ROOT:-/var/lib/virtbackup-tests/remote-env}
REMOTE_ENV_QEMU_CONF=/etc/libvirt/qemu.conf
REMOTE_ENV_LIBVIRTD_CONF=/etc/libvirt/libvirtd.conf
REMOTE_ENV_PIDFILE=/run/libvirtd.pid
REMOTE_ENV_URI=qemu:///system
SASL_PORT=16509 # libvirtd's default; sasl_setup picks a free one

re_log() {
    if declare -F tb_log >/dev/null; then tb_log "remote_env: $*"; else echo "remote_env: $*" >&2; fi
}

re_die() {
    if declare -F tb_fail >/dev/null; then tb_fail "remote_env: $*"; fi
    echo "remote_env: ERROR: $*" >&2
    exit 1
}

# ---------------------------------------------------------------------------
# libvirtd

# pid of the running libvirtd from its pid file (empty if none runs)
re_libvirtd_pid() {
    local pid
    pid=$(cat "$REMOTE_ENV_PIDFILE" 2>/dev/null) || return 0
    if [ -n "$pid" ] && [ "$(cat "/proc/$pid/comm" 2>/dev/null)" = libvirtd ]; then
        echo "$pid"
    fi
}

re_wait_ready() {
    local deadline=$((SECONDS + ${1:-30})) out
    while :; do
        out=$(virsh -c "$REMOTE_ENV_URI" version 2>&1 </dev/null) && return 0
        [ $SECONDS -lt "$deadline" ] || {
            echo "libvirtd not ready: $out"
            return 1
        }
        sleep 0.2
    done
}

# re_without_fds CMD...: runs CMD with every inherited descriptor above 2 closed. libvirtd
# keeps what it inherits: a lock the test runs under (flock around ctest) would be held by the
# daemon for as long as it runs, blocking every later run that waits for that lock.
re_without_fds() {
    (
        local fd
        for fd in /proc/$BASHPID/fd/*; do
            fd=${fd##*/}
            if [ "$fd" -gt 2 ] 2>/dev/null; then eval "exec $fd>&-"; fi
        done
        exec "$@"
    )
}

# remote_env_restart_libvirtd: stops the libvirtd of the pid file and starts it again:
# listening with SASL when sasl_setup is in effect, otherwise with its original arguments.
# Running domains survive (libvirtd reconnects to their qemu). Returns 1 on failure.
remote_env_restart_libvirtd() {
    local old _ argv=() t0=$SECONDS t1
    old=$(re_libvirtd_pid)
    if [ -n "$old" ]; then
        kill "$old"
        for _ in $(seq 1 150); do
            kill -0 "$old" 2>/dev/null || break
            sleep 0.1
        done
        if kill -0 "$old" 2>/dev/null; then
            re_log "libvirtd ($old) did not exit after SIGTERM within 15 s"
            return 1
        fi
    fi
    # The pid file is locked by a live daemon only; a stale one would not stop a start,
    # but remove it as setup-testbed.sh does.
    t1=$SECONDS
    rm -f "$REMOTE_ENV_PIDFILE"
    if [ -f "$REMOTE_ENV_ROOT/sasl/active" ]; then
        argv=(env SASL_CONF_PATH="$REMOTE_ENV_ROOT/sasl" libvirtd -d --listen
            -f "$REMOTE_ENV_ROOT/sasl/libvirtd.conf")
    elif [ -s "$REMOTE_ENV_ROOT/libvirtd.argv" ]; then
        mapfile -d '' -t argv <"$REMOTE_ENV_ROOT/libvirtd.argv"
    else
        argv=(libvirtd -d)
    fi
    local out
    if ! out=$(re_without_fds env -u SASL_CONF_PATH -u LIBVIRT_AUTH_FILE -u LIBVIRT_DEFAULT_URI \
        "${argv[@]}" 2>&1 </dev/null); then
        re_log "starting '${argv[*]}' failed: $out"
        return 1
    fi
    if ! out=$(re_wait_ready 30); then
        re_log "after '${argv[*]}': $out"
        return 1
    fi
    re_log "libvirtd restarted (stop $((t1 - t0)) s, start $((SECONDS - t1)) s; pid $(re_libvirtd_pid): ${argv[*]})"
}

# ---------------------------------------------------------------------------
# State dir, ownership, recovery after a killed run

# Restores what a run killed before its teardown left behind (config files, libvirtd
# mode, state files). No-op when nothing is left. Returns 1 if a restore failed.
remote_env_recover() {
    local owner rc=0 restart=0
    [ -d "$REMOTE_ENV_ROOT" ] || return 0
    owner=$(cat "$REMOTE_ENV_ROOT/owner" 2>/dev/null || true)
    if [ -n "$owner" ] && [ "$owner" != $$ ] && kill -0 "$owner" 2>/dev/null; then
        re_log "the remote environment belongs to the running process $owner"
        return 1
    fi
    if [ -f "$REMOTE_ENV_ROOT/orig/qemu.conf" ]; then
        re_log "restoring $REMOTE_ENV_QEMU_CONF left modified by an earlier run (pid ${owner:-?})"
        cp -p "$REMOTE_ENV_ROOT/orig/qemu.conf" "$REMOTE_ENV_QEMU_CONF" || rc=1
        restart=1
    fi
    if [ -f "$REMOTE_ENV_ROOT/sasl/active" ]; then
        re_log "leaving the SASL listening mode of an earlier run (pid ${owner:-?})"
        restart=1
    fi
    rm -rf "$REMOTE_ENV_ROOT/sasl" "$REMOTE_ENV_ROOT/tls" "$REMOTE_ENV_ROOT/tls-bad" \
        "$REMOTE_ENV_ROOT/private" "$REMOTE_ENV_ROOT/orig"
    if [ "$restart" = 1 ]; then
        remote_env_restart_libvirtd || rc=1
    fi
    [ "$rc" -ne 0 ] || rm -rf "$REMOTE_ENV_ROOT"
    return "$rc"
}

# Takes the state dir for this process; records libvirtd's original arguments.
re_claim() {
    local owner pid
    owner=$(cat "$REMOTE_ENV_ROOT/owner" 2>/dev/null || true)
    [ "$owner" = $$ ] && return 0
    remote_env_recover || re_die "could not recover from an earlier run (state in $REMOTE_ENV_ROOT)"
    # qemu (libvirt-qemu, group kvm) must traverse to the certificate dir
    install -d -o root -g kvm -m 0770 "$(dirname "$REMOTE_ENV_ROOT")"
    install -d -o root -g kvm -m 0750 "$REMOTE_ENV_ROOT"
    echo $$ >"$REMOTE_ENV_ROOT/owner"
    pid=$(re_libvirtd_pid)
    [ -n "$pid" ] || re_die "no libvirtd runs (pid file $REMOTE_ENV_PIDFILE): run scripts/setup-testbed.sh"
    cp "/proc/$pid/cmdline" "$REMOTE_ENV_ROOT/libvirtd.argv"
}

# Drops the state dir once no environment is set up any more.
re_release() {
    if [ ! -e "$REMOTE_ENV_ROOT/tls" ] && [ ! -e "$REMOTE_ENV_ROOT/sasl" ] &&
        [ ! -e "$REMOTE_ENV_ROOT/orig" ]; then
        rm -rf "$REMOTE_ENV_ROOT"
    fi
}

# remote_env_free_port [FIRST [LAST]]: a TCP port nobody listens on at 127.0.0.1. Between
# the check and the bind another process could take it: in 10800-16599 only the remote tests
# bind ports (the kernel's ephemeral ports start at 32768), and those never run at the same
# time (tests/CMakeLists.txt: RUN_SERIAL, or the test-sshd resource lock).
remote_env_free_port() {
    local first=${1:-10800} last=${2:-10999} p i
    for i in $(seq 1 50); do
        p=$((first + RANDOM % (last - first + 1)))
        if [ -z "$(ss -Hltn "sport = :$p" 2>/dev/null)" ]; then
            echo "$p"
            return 0
        fi
    done
    return 1
}

# ---------------------------------------------------------------------------
# TLS

# re_certtool ARGS...: certtool with its output kept for error messages
re_certtool() {
    local out
    out=$(certtool "$@" 2>&1) || re_die "certtool $*: $out"
}

# re_make_ca DIR KEY NAME: self-signed CA certificate DIR/ca-cert.pem, key KEY
re_make_ca() {
    local dir="$1" key="$2" name="$3" tmpl="$REMOTE_ENV_ROOT/private/$3.tmpl"
    printf 'cn = %s\nca\ncert_signing_key\ncrl_signing_key\nexpiration_days = 30\n' "$name" >"$tmpl"
    re_certtool --generate-privkey --key-type rsa --bits 2048 --outfile "$key"
    re_certtool --generate-self-signed --load-privkey "$key" --template "$tmpl" \
        --outfile "$dir/ca-cert.pem"
}

# re_make_cert DIR PREFIX CAKEY TEMPLATE-TEXT: DIR/PREFIX-cert.pem + DIR/PREFIX-key.pem
# signed by DIR/ca-cert.pem (key CAKEY)
re_make_cert() {
    local dir="$1" prefix="$2" cakey="$3" text="$4"
    local tmpl
    tmpl="$REMOTE_ENV_ROOT/private/$(basename "$dir")-$prefix.tmpl"
    printf '%s\nexpiration_days = 30\n' "$text" >"$tmpl"
    re_certtool --generate-privkey --key-type rsa --bits 2048 --outfile "$dir/$prefix-key.pem"
    re_certtool --generate-certificate --load-privkey "$dir/$prefix-key.pem" \
        --load-ca-certificate "$dir/ca-cert.pem" --load-ca-privkey "$cakey" \
        --template "$tmpl" --outfile "$dir/$prefix-cert.pem"
}

tls_setup() {
    command -v certtool >/dev/null || re_die "certtool missing (package gnutls-bin)"
    re_claim
    [ ! -e "$REMOTE_ENV_ROOT/tls" ] || re_die "tls_setup: already set up ($REMOTE_ENV_ROOT/tls)"
    local good="$REMOTE_ENV_ROOT/tls" bad="$REMOTE_ENV_ROOT/tls-bad" priv="$REMOTE_ENV_ROOT/private"
    install -d -m 0700 "$priv"
    # qemu runs as libvirt-qemu (group kvm) and reads the server key itself
    install -d -o root -g kvm -m 0750 "$good" "$bad"

    local server='cn = localhost
organization = virtbackup tests
dns_name = localhost
ip_address = 127.0.0.1
tls_www_server
encryption_key
signing_key'
    local client='cn = virtbackup-test-client
organization = virtbackup tests
tls_www_client
encryption_key
signing_key'
    re_make_ca "$good" "$priv/ca-key.pem" "virtbackup test CA"
    re_make_cert "$good" server "$priv/ca-key.pem" "$server"
    re_make_cert "$good" client "$priv/ca-key.pem" "$client"
    # A CA that signed neither the server's certificate nor the good client's, with a
    # client certificate of its own: a libnbd client using this dir fails to verify the
    # server, and the server would reject its client certificate as well.
    re_make_ca "$bad" "$priv/bad-ca-key.pem" "virtbackup unrelated CA"
    re_make_cert "$bad" client "$priv/bad-ca-key.pem" "$client"
    chgrp kvm "$good"/*.pem "$bad"/*.pem
    chmod 0644 "$good"/*-cert.pem "$bad"/*-cert.pem
    chmod 0640 "$good"/*-key.pem "$bad"/*-key.pem

    # qemu.conf: keep the original (content, mode, owner, times) and append our setting;
    # libvirt takes the last assignment of a key.
    install -d -m 0700 "$REMOTE_ENV_ROOT/orig"
    cp -p "$REMOTE_ENV_QEMU_CONF" "$REMOTE_ENV_ROOT/orig/qemu.conf"
    printf '\n# added by virtbackup tests/lib/remote_env.sh (pid %s); restored by tls_teardown\nbackup_tls_x509_cert_dir = "%s"\n' \
        $$ "$good" >>"$REMOTE_ENV_QEMU_CONF"
    remote_env_restart_libvirtd || re_die "tls_setup: libvirtd did not come back with the TLS configuration"

    export TLS_CERT_DIR="$good" TLS_BAD_CERT_DIR="$bad"
    re_log "TLS ready: TLS_CERT_DIR=$TLS_CERT_DIR TLS_BAD_CERT_DIR=$TLS_BAD_CERT_DIR"
}

# re_undo_tls: restores qemu.conf and removes the certificates; prints "restart" if
# libvirtd must be restarted to forget the TLS setting. Returns 1 if the restore failed.
re_undo_tls() {
    local rc=0
    if [ -f "$REMOTE_ENV_ROOT/orig/qemu.conf" ]; then
        if cp -p "$REMOTE_ENV_ROOT/orig/qemu.conf" "$REMOTE_ENV_QEMU_CONF"; then
            rm -rf "$REMOTE_ENV_ROOT/orig"
        else
            re_log "could not restore $REMOTE_ENV_QEMU_CONF (original kept in $REMOTE_ENV_ROOT/orig)"
            rc=1
        fi
        echo restart
    fi
    rm -rf "$REMOTE_ENV_ROOT/tls" "$REMOTE_ENV_ROOT/tls-bad" "$REMOTE_ENV_ROOT/private"
    return "$rc"
}

tls_teardown() {
    local rc=0 restart
    [ -d "$REMOTE_ENV_ROOT" ] || return 0
    restart=$(re_undo_tls) || rc=1
    if [ -n "$restart" ]; then remote_env_restart_libvirtd || rc=1; fi
    unset TLS_CERT_DIR TLS_BAD_CERT_DIR
    re_release
    return "$rc"
}

# ---------------------------------------------------------------------------
# SASL

sasl_setup() {
    command -v saslpasswd2 >/dev/null || re_die "saslpasswd2 missing (package sasl2-bin)"
    [ -e /usr/lib/x86_64-linux-gnu/sasl2/libdigestmd5.so ] || ls /usr/lib/*/sasl2/libdigestmd5.so \
        >/dev/null 2>&1 || re_die "the DIGEST-MD5 SASL plugin is missing (package libsasl2-modules)"
    re_claim
    [ ! -e "$REMOTE_ENV_ROOT/sasl" ] || re_die "sasl_setup: already set up ($REMOTE_ENV_ROOT/sasl)"
    SASL_PORT=$(remote_env_free_port 16510 16599) || re_die "sasl_setup: no free TCP port"
    if [ -n "$(ss -Hltn "sport = :$SASL_PORT" 2>/dev/null)" ]; then
        re_die "sasl_setup: something already listens on port $SASL_PORT: $(ss -Hltnp "sport = :$SASL_PORT")"
    fi
    local dir="$REMOTE_ENV_ROOT/sasl"
    install -d -m 0700 "$dir"

    # The SASL service "libvirt" reads $SASL_CONF_PATH/libvirt.conf instead of
    # /etc/sasl2/libvirt.conf (gssapi there). Plain TCP without TLS needs a mechanism that
    # gives a security layer (libvirtd demands SSF >= 56): DIGEST-MD5; scram-sha-256 only
    # works over TLS or the unix socket.
    printf 'mech_list: digest-md5\nsasldb_path: %s\n' "$dir/passwd.db" >"$dir/libvirt.conf"

    SASL_USER=vbtest
    SASL_PASSWORD="pw-$$-$RANDOM$RANDOM"
    local out
    out=$(printf '%s' "$SASL_PASSWORD" | saslpasswd2 -p -a libvirt -f "$dir/passwd.db" -c "$SASL_USER" 2>&1) ||
        re_die "saslpasswd2 failed: $out"
    sasldblistusers2 -f "$dir/passwd.db" 2>/dev/null | grep -q "^$SASL_USER@" ||
        re_die "user $SASL_USER not in $dir/passwd.db"

    # a copy of the machine's libvirtd.conf, our settings appended (last assignment wins)
    cp "$REMOTE_ENV_LIBVIRTD_CONF" "$dir/libvirtd.conf"
    cat >>"$dir/libvirtd.conf" <<EOF

# added by virtbackup tests/lib/remote_env.sh
listen_tls = 0
listen_tcp = 1
listen_addr = "127.0.0.1"
tcp_port = "$SASL_PORT"
auth_tcp = "sasl"
EOF
    # the libvirt auth file a client needs (LIBVIRT_AUTH_FILE=...)
    SASL_AUTH_FILE="$dir/auth.conf"
    cat >"$SASL_AUTH_FILE" <<EOF
[credentials-test]
authname=$SASL_USER
password=$SASL_PASSWORD

[auth-libvirt-127.0.0.1]
credentials=test
EOF
    chmod 0600 "$SASL_AUTH_FILE"
    touch "$dir/active"
    remote_env_restart_libvirtd || re_die "sasl_setup: libvirtd did not come back listening with SASL"
    local i
    for i in $(seq 1 50); do
        [ -z "$(ss -Hltn "src 127.0.0.1 and sport = :$SASL_PORT" 2>/dev/null)" ] || break
        sleep 0.1
    done
    [ -n "$(ss -Hltn "src 127.0.0.1 and sport = :$SASL_PORT" 2>/dev/null)" ] ||
        re_die "sasl_setup: libvirtd does not listen on 127.0.0.1:$SASL_PORT"

    export SASL_URI="qemu+tcp://127.0.0.1:$SASL_PORT/system" SASL_PORT SASL_USER SASL_PASSWORD \
        SASL_AUTH_FILE
    re_log "SASL ready: SASL_URI=$SASL_URI SASL_USER=$SASL_USER (DIGEST-MD5)"
}

# re_undo_sasl: leaves the SASL mode; prints "restart" if libvirtd must be restarted.
re_undo_sasl() {
    if [ -f "$REMOTE_ENV_ROOT/sasl/active" ]; then
        echo restart
    fi
    rm -rf "$REMOTE_ENV_ROOT/sasl"
}

sasl_teardown() {
    local rc=0 restart
    [ -d "$REMOTE_ENV_ROOT" ] || return 0
    restart=$(re_undo_sasl) || rc=1
    if [ -n "$restart" ]; then remote_env_restart_libvirtd || rc=1; fi
    unset SASL_URI SASL_USER SASL_PASSWORD SASL_AUTH_FILE
    re_release
    return "$rc"
}

# remote_env_teardown: both teardowns with a single libvirtd restart.
remote_env_teardown() {
    local rc=0 restart=""
    [ -d "$REMOTE_ENV_ROOT" ] || return 0
    restart+=$(re_undo_sasl) || rc=1
    restart+=$(re_undo_tls) || rc=1
    if [ -n "$restart" ]; then remote_env_restart_libvirtd || rc=1; fi
    unset TLS_CERT_DIR TLS_BAD_CERT_DIR SASL_URI SASL_USER SASL_PASSWORD SASL_AUTH_FILE
    re_release
    return "$rc"
}
