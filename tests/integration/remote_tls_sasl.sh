#!/bin/bash
# Remote backups with NBD over TLS and libvirt over SASL (virtbackup(1), "Remote hosts"), on
# loopback:
#  - TLS: a CA, server and client certificates made by the test (tests/lib/remote_env.sh),
#    backup_tls_x509_cert_dir set in qemu.conf for the test bed's libvirtd (restarted, and
#    restored afterwards). Full + inc of a running domain, a copy of a shut-off one (qemu-nbd
#    with x509 credentials started over SSH) and a remote restore, all over nbds, compared
#    with the disk. Failures: a client whose CA did not sign the server's certificate, a
#    missing certificate directory.
#  - the qemu-nbd started on the host (offline copy, restore) verifies its clients: while
#    the tool is held at its debug stall point (debug builds), nbdinfo as a TLS client
#    without a certificate, and with one another CA signed, is refused; with the test's
#    client certificate it is served; then the tool's own transfer completes and its result
#    equals the disk.
#  - SASL: a TCP listener of libvirtd with auth_tcp = "sasl" (DIGEST-MD5) and a test user,
#    reached with --user and --password-file (and VIRTBACKUP_PASSWORD); a wrong password is
#    refused naming the options.
set -euo pipefail
source "$(dirname "$0")/../lib/testbed.sh"
source "$(dirname "$0")/../lib/chain.sh"
source "$(dirname "$0")/../lib/sshd.sh"
source "$(dirname "$0")/../lib/remote_env.sh"
tb_init
sshd_start
tb_on_exit remote_env_teardown
tls_setup

URI="qemu+ssh://root@127.0.0.1:$SSHD_PORT/system?keyfile=$SSH_KEY&known_hosts=$SSH_KNOWN_HOSTS&no_verify=1"
PORT=$(remote_env_free_port 10900 10999)
SNAP=$TB_WORKDIR/snap
mkdir -p "$SNAP"
tls() { vb_backup -U "$URI" -I 127.0.0.1 -P "$PORT" --tls --tls-cert "$TLS_CERT_DIR" "$@"; }

# Client certificate directories for the probes: the CA only (no client certificate), and
# the CA with a client certificate that another CA signed.
CA_ONLY=$TB_WORKDIR/tls-ca-only
WRONG_CLIENT=$TB_WORKDIR/tls-wrong-client
mkdir -p "$CA_ONLY" "$WRONG_CLIENT"
cp "$TLS_CERT_DIR/ca-cert.pem" "$CA_ONLY/"
cp "$TLS_CERT_DIR/ca-cert.pem" "$TLS_BAD_CERT_DIR/client-cert.pem" \
    "$TLS_BAD_CERT_DIR/client-key.pem" "$WRONG_CLIENT/"
# debug builds (both tools have the stall point then; a virtrestore without it fails below)
STALL=0
if strings "$VIRTBACKUP" | grep -x VIRTBACKUP_DEBUG_STALL >/dev/null; then
    STALL=1
fi

# tls_probe DIR: nbdinfo, as a TLS client with the certificates in DIR, asks the export vda
# on PORT for its size (the server answers at once or refuses: the timeout is a hang guard)
tls_probe() {
    timeout 60 nbdinfo --size "nbds://127.0.0.1:$PORT/vda?tls-certificates=$1" 2>&1
}

# probed_run WHAT CMD...: runs CMD (virtbackup or virtrestore with --tls, whose qemu-nbd on
# the host serves PORT) held at its debug stall point, where the server runs; there TLS
# clients without a certificate and with one of another CA must be refused, ours served.
# Then CMD goes on and must succeed. Release builds (no stall) just run CMD.
probed_run() {
    local what="$1" gate="$TB_WORKDIR/gate.$((++PROBED))" log="$TB_WORKDIR/probed.$PROBED.log"
    local pid out rc
    shift
    if [ "$STALL" = 0 ]; then
        "$@" >"$log" 2>&1 || tb_fail "$what failed: $(tail -5 "$log")"
        return 0
    fi
    touch "$gate"
    VIRTBACKUP_DEBUG_STALL=$gate "$@" >"$log" 2>&1 &
    pid=$!
    tb_on_exit "kill $pid"
    tb_wait_for "$pid" test -e "$gate.stalled" ||
        tb_fail "$what never reached its stall point: $(tail -5 "$log")"
    rc=0
    out=$(tls_probe "$CA_ONLY") || rc=$?
    [ "$rc" -ne 0 ] || tb_fail "$what: a TLS client without a certificate was served (size $out)"
    tb_log "$what: a client without a certificate was refused: $out"
    rc=0
    out=$(tls_probe "$WRONG_CLIENT") || rc=$?
    [ "$rc" -ne 0 ] ||
        tb_fail "$what: a TLS client whose certificate another CA signed was served (size $out)"
    tb_log "$what: a client certificate of another CA was refused: $out"
    out=$(tls_probe "$TLS_CERT_DIR") || tb_fail "$what: our client certificate was refused: $out"
    tb_log "$what: the test's client certificate was served (size $out)"
    rm -f "$gate"
    wait "$pid" || tb_fail "$what failed: $(tail -5 "$log")"
}
PROBED=0

tb_create_domain tls 96M
DOM=$TB_DOMAIN
OUT=$TB_WORKDIR/out
tb_qemu_io "$DOM" vda "write -P 0x51 0 2M"
tb_qemu_io "$DOM" vda "write -P 0x52 50M 1M"

tb_step "full backup over TLS: the job serves nbds, the client verifies the server"
out=$("$VIRTBACKUP" -n -v -d "$DOM" -l full -o "$OUT" -U "$URI" -I 127.0.0.1 -P "$PORT" \
    --tls --tls-cert "$TLS_CERT_DIR" 2>&1) || tb_fail "TLS full failed: $out"
grep -q "transport='tcp' tls='yes'" <<<"$out" || tb_fail "the job was not started with TLS: $out"
assert_meta "$OUT/vda.full.data" false virtnbdbackup.0 "" false
tb_snapshot_image "$DOM" vda "$SNAP/full.raw"
apply_compare "$SNAP/full.raw" "TLS full" "$OUT/vda.full.data"

tb_step "incremental over TLS"
tb_qemu_io "$DOM" vda "write -P 0x53 10M 1M"
tls -d "$DOM" -l inc -o "$OUT"
assert_meta "$OUT/vda.inc.virtnbdbackup.1.data" true virtnbdbackup.1 virtnbdbackup.0 false
tb_snapshot_image "$DOM" vda "$SNAP/inc1.raw"
apply_compare "$SNAP/inc1.raw" "TLS full + inc" "$OUT"/vda.*.data

tb_step "a CA that did not sign the server's certificate: the TLS handshake fails, named"
vb_backup_fails "TLS" -d "$DOM" -l inc -o "$OUT" -U "$URI" -I 127.0.0.1 -P "$PORT" --tls \
    --tls-cert "$TLS_BAD_CERT_DIR"
[ ! -e "$OUT/vda.inc.virtnbdbackup.2.data" ] || tb_fail "a file was committed after the TLS failure"
tb_assert_eq "$(jq -c . "$OUT/$DOM.cpt")" '["virtnbdbackup.0","virtnbdbackup.1"]' \
    ".cpt after the TLS failure"
vb_backup_fails "$TB_WORKDIR/no-certs does not exist" -d "$DOM" -l inc -o "$OUT" -U "$URI" \
    -I 127.0.0.1 -P "$PORT" --tls --tls-cert "$TB_WORKDIR/no-certs"
tb_step "the chain continues after the failures"
tb_qemu_io "$DOM" vda "write -P 0x54 30M 1M"
tls -d "$DOM" -l inc -o "$OUT"
assert_meta "$OUT/vda.inc.virtnbdbackup.2.data" true virtnbdbackup.2 virtnbdbackup.1 false
tb_snapshot_image "$DOM" vda "$SNAP/inc2.raw"
apply_compare "$SNAP/inc2.raw" "TLS chain after failures" "$OUT"/vda.*.data

tb_step "restore on the remote host over TLS: its qemu-nbd refuses clients without our certificate"
RR=$TB_WORKDIR/remote-restore
probed_run "TLS remote restore" "$VIRTRESTORE" -n -i "$OUT" -o "$RR" -U "$URI" -I 127.0.0.1 \
    -P "$PORT" --tls --tls-cert "$TLS_CERT_DIR"
compare_qcow_raw "$(ls "$RR"/*.qcow2)" "$SNAP/inc2.raw" "TLS remote restore"

tb_step "copy of a shut-off domain over TLS: the remote qemu-nbd serves nbds to our certificate only"
tb_virsh destroy "$DOM" >/dev/null
qemu-img convert -f qcow2 -O raw "${TB_IMAGES[0]}" "$SNAP/off.raw"
# one connection of ours: qemu-nbd takes 4 clients (-e 4), the probes need room beside it
VIRTBACKUP_CONNECTIONS=1 probed_run "TLS offline copy" "$VIRTBACKUP" -n -d "$DOM" -l copy \
    -o "$TB_WORKDIR/offcopy" -U "$URI" -I 127.0.0.1 -P "$PORT" --tls --tls-cert "$TLS_CERT_DIR"
assert_meta "$TB_WORKDIR/offcopy/vda.copy.data" false virtnbdbackup.0 "" false
apply_compare "$SNAP/off.raw" "TLS offline copy" "$TB_WORKDIR/offcopy/vda.copy.data"
# the remote qemu-nbd takes its server credentials from the same --tls-cert directory
vb_backup_fails "tls-bad/server-cert.pem" -d "$DOM" -l copy -o "$TB_WORKDIR/offcopy-bad" -U "$URI" -I 127.0.0.1 \
    -P "$PORT" --tls --tls-cert "$TLS_BAD_CERT_DIR"
pgrep -f "qemu-nbd.*-p $PORT" >/dev/null && tb_fail "a remote qemu-nbd was left running"

tb_step "SASL: libvirt over qemu+tcp with --user and --password-file"
sasl_setup
SASL_DOM_URI="$SASL_URI?known_hosts=$SSH_KNOWN_HOSTS"
SSH_OPTS=(--ssh-user root --ssh-port "$SSHD_PORT" --ssh-private-key "$SSH_KEY" -I 127.0.0.1 -P "$PORT")
printf '%s\n' "$SASL_PASSWORD" >"$TB_WORKDIR/pw"
chmod 600 "$TB_WORKDIR/pw"
tb_virsh start --paused "$DOM" >/dev/null
vb_backup -d "$DOM" -l full -o "$TB_WORKDIR/sasl" -U "$SASL_DOM_URI" --user "$SASL_USER" \
    --password-file "$TB_WORKDIR/pw" "${SSH_OPTS[@]}"
assert_meta "$TB_WORKDIR/sasl/vda.full.data" false virtnbdbackup.0 "" false
tb_snapshot_image "$DOM" vda "$SNAP/sasl.raw"
apply_compare "$SNAP/sasl.raw" "SASL full" "$TB_WORKDIR/sasl/vda.full.data"
VIRTBACKUP_PASSWORD=$SASL_PASSWORD vb_backup -d "$DOM" -l inc -o "$TB_WORKDIR/sasl" \
    -U "$SASL_DOM_URI" --user "$SASL_USER" "${SSH_OPTS[@]}"
assert_meta "$TB_WORKDIR/sasl/vda.inc.virtnbdbackup.1.data" true virtnbdbackup.1 virtnbdbackup.0 false
printf 'wrong-%s\n' "$SASL_PASSWORD" >"$TB_WORKDIR/badpw"
vb_backup_fails "--password-file" -d "$DOM" -l inc -o "$TB_WORKDIR/sasl" -U "$SASL_DOM_URI" \
    --user "$SASL_USER" --password-file "$TB_WORKDIR/badpw" "${SSH_OPTS[@]}"
! grep -rqF -- "$SASL_PASSWORD" "$TB_WORKDIR/sasl" || tb_fail "the password is in a backup log"

tb_pass "NBD over TLS (verified peers, both ways) and libvirt over SASL"
