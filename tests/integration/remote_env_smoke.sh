#!/bin/bash
# The remote-access environments of tests/lib/remote_env.sh work, proven with standard
# tools only (virsh, nbdinfo), independent of virtbackup's own code:
#   - TLS: a pull backup job serving NBD over TCP+TLS on 127.0.0.1 is readable with the
#     client certificate of TLS_CERT_DIR, not with another CA's (TLS_BAD_CERT_DIR), and
#     refuses plain NBD;
#   - SASL: libvirt over qemu+tcp://127.0.0.1:PORT/system accepts the right credentials from a
#     libvirt auth file and rejects a wrong password;
#   - afterwards libvirtd runs as before (same arguments, socket) and the /etc files are
#     byte-identical (checked even when a step failed).
set -euo pipefail
source "$(dirname "$0")/../lib/testbed.sh"
source "$(dirname "$0")/../lib/remote_env.sh"
tb_init

for c in nbdinfo certtool saslpasswd2 ss; do
    command -v "$c" >/dev/null || tb_fail "$c missing (scripts/install-deps.sh)"
done

# A run killed before its teardown left config behind: restore it before taking the
# "before" picture (the setups would do it too, but only after the picture).
remote_env_recover || tb_fail "could not undo what an earlier run left in $REMOTE_ENV_ROOT"

# --- what must be the same after the test
ETC_FILES=(/etc/libvirt/qemu.conf /etc/libvirt/libvirtd.conf /etc/sasl2/libvirt.conf)
etc_state() {
    local f
    for f in "${ETC_FILES[@]}"; do
        if [ -e "$f" ]; then
            printf '%s %s\n' "$(sha256sum <"$f" | cut -d' ' -f1)" "$(stat -c '%a %U:%G %s %Y %n' "$f")"
        else
            echo "absent $f"
        fi
    done
}
libvirtd_argv() { tr '\0' ' ' <"/proc/$(cat /run/libvirtd.pid)/cmdline"; }
ETC_BEFORE=$(etc_state)
ARGV_BEFORE=$(libvirtd_argv)
[ -S /run/libvirt/libvirt-sock ] || tb_fail "no libvirtd socket /run/libvirt/libvirt-sock before the test"

# Checks that the machine is as before; returns 1 (with messages) if not.
check_restored() {
    local ok=0 now
    [ ! -e "$REMOTE_ENV_ROOT" ] || { tb_log "state dir $REMOTE_ENV_ROOT still exists"; ok=1; }
    now=$(etc_state)
    [ "$now" = "$ETC_BEFORE" ] || {
        tb_log "/etc files differ from before the test:"
        diff <(echo "$ETC_BEFORE") <(echo "$now") >&2
        ok=1
    }
    now=$(libvirtd_argv 2>/dev/null || echo "<no libvirtd>")
    [ "$now" = "$ARGV_BEFORE" ] || { tb_log "libvirtd runs as '$now', before: '$ARGV_BEFORE'"; ok=1; }
    [ "$(pgrep -xc libvirtd)" = 1 ] || { tb_log "libvirtd processes: $(pgrep -xa libvirtd)"; ok=1; }
    [ -S /run/libvirt/libvirt-sock ] || { tb_log "/run/libvirt/libvirt-sock is gone"; ok=1; }
    virsh -c qemu:///system list >/dev/null 2>&1 </dev/null || { tb_log "virsh -c qemu:///system list fails"; ok=1; }
    [ -z "$(ss -Hltn "sport = :$SASL_PORT")" ] || { tb_log "something still listens on $SASL_PORT"; ok=1; }
    return "$ok"
}

# Always: remove our domains (ends backup jobs), tear the environments down, check.
smoke_exit() {
    local rc=$?
    set +e
    trap - EXIT ERR
    local dom
    while IFS= read -r dom; do
        tb_remove_domain "$dom"
    done < <(tb_virsh list --all --name 2>/dev/null | grep "^vbtest-$$-")
    remote_env_teardown || { tb_log "remote_env_teardown failed"; rc=1; }
    if check_restored; then
        tb_log "machine restored: libvirtd '$ARGV_BEFORE', /etc files identical"
    else
        tb_log "FAIL: the machine is not as before the test"
        rc=1
    fi
    (exit "$rc")
    tb_cleanup
}
trap smoke_exit EXIT

# ---------------------------------------------------------------------------
tb_step "TLS: set up certificates and backup_tls_x509_cert_dir, restart libvirtd"
tls_setup
for f in ca-cert.pem server-cert.pem server-key.pem client-cert.pem client-key.pem; do
    [ -s "$TLS_CERT_DIR/$f" ] || tb_fail "$TLS_CERT_DIR/$f missing"
done
runuser -u libvirt-qemu -- test -r "$TLS_CERT_DIR/server-key.pem" ||
    tb_fail "the qemu user cannot read $TLS_CERT_DIR/server-key.pem"
certtool --verify --load-ca-certificate "$TLS_CERT_DIR/ca-cert.pem" \
    --infile "$TLS_CERT_DIR/server-cert.pem" >/dev/null 2>&1 || tb_fail "server cert does not verify against its CA"
! certtool --verify --load-ca-certificate "$TLS_BAD_CERT_DIR/ca-cert.pem" \
    --infile "$TLS_CERT_DIR/server-cert.pem" >/dev/null 2>&1 || tb_fail "the other CA verifies the server cert"
grep -q "^backup_tls_x509_cert_dir = \"$TLS_CERT_DIR\"\$" /etc/libvirt/qemu.conf ||
    tb_fail "qemu.conf lacks backup_tls_x509_cert_dir"

tb_step "TLS: a pull backup job serves NBD over TCP+TLS on 127.0.0.1"
tb_create_domain tls 64M
DOM=$TB_DOMAIN
tb_qemu_io "$DOM" vda "write -P 0x5a 0 1M"
PORT=$(remote_env_free_port) || tb_fail "no free TCP port"
cat >"$TB_WORKDIR/backup.xml" <<EOF
<domainbackup mode='pull'>
  <server transport='tcp' tls='yes' name='127.0.0.1' port='$PORT'/>
  <disks>
    <disk name='vda' backup='yes' type='file'>
      <scratch file='$TB_WORKDIR/scratch-vda.qcow2'/>
    </disk>
  </disks>
</domainbackup>
EOF
tb_virsh backup-begin "$DOM" "$TB_WORKDIR/backup.xml" >/dev/null || tb_fail "virsh backup-begin (TCP+TLS) failed"
tb_virsh backup-dumpxml "$DOM" | grep -q "tls='yes'" || tb_fail "the running job has no tls='yes' server"

tb_step "TLS: nbdinfo with TLS_CERT_DIR reads the export"
out=$(nbdinfo "nbds://127.0.0.1:$PORT/vda?tls-certificates=$TLS_CERT_DIR" 2>&1) ||
    tb_fail "nbdinfo over TLS failed: $out"
grep -q 'export-size: 67108864' <<<"$out" || tb_fail "unexpected nbdinfo output: $out"
# and the data is what the guest wrote (first 1 MiB allocated, the rest a hole)
map=$(nbdinfo --map "nbds://127.0.0.1:$PORT/vda?tls-certificates=$TLS_CERT_DIR" 2>&1) ||
    tb_fail "nbdinfo --map over TLS failed: $map"
grep -Eq '^ +0 +1048576 +0 +data' <<<"$map" || tb_fail "unexpected map over TLS: $map"
tb_pass "TLS connection with the right CA and client certificate"

tb_step "TLS: another CA (TLS_BAD_CERT_DIR) fails the handshake"
rc=0
out=$(nbdinfo "nbds://127.0.0.1:$PORT/vda?tls-certificates=$TLS_BAD_CERT_DIR" 2>&1) || rc=$?
[ "$rc" -ne 0 ] || tb_fail "nbdinfo with an unrelated CA succeeded: $out"
grep -qiE 'certificate|verif|handshake|tls' <<<"$out" || tb_fail "failure does not name TLS: $out"
tb_log "as expected: $out"

tb_step "TLS: the server rejects a client certificate of another CA"
# the right CA (the client trusts the server) with the other CA's client certificate
install -d -m 0700 "$TB_WORKDIR/mixed"
cp "$TLS_CERT_DIR/ca-cert.pem" "$TLS_BAD_CERT_DIR"/client-*.pem "$TB_WORKDIR/mixed/"
rc=0
out=$(nbdinfo "nbds://127.0.0.1:$PORT/vda?tls-certificates=$TB_WORKDIR/mixed" 2>&1) || rc=$?
[ "$rc" -ne 0 ] || tb_fail "the server accepted a client certificate of another CA: $out"
tb_log "as expected: $out"

tb_step "TLS: a plain nbd:// connection is refused by the server"
rc=0
out=$(LIBNBD_DEBUG=1 nbdinfo "nbd://127.0.0.1:$PORT/vda" 2>&1) || rc=$?
[ "$rc" -ne 0 ] || tb_fail "plain NBD to the TLS server succeeded: $(grep -v 'libnbd: debug' <<<"$out")"
# qemu answers every option with NBD_REP_ERR_TLS_REQD; libnbd shows its text only in debug output
grep -q 'not permitted before TLS' <<<"$out" ||
    tb_fail "the refusal is not about TLS: $(grep -v 'libnbd: debug' <<<"$out")"
tb_log "as expected: $(grep -m1 'not permitted before TLS' <<<"$out")"

tb_step "TLS: end the job"
tb_virsh domjobabort "$DOM" >/dev/null || tb_fail "virsh domjobabort failed"
tb_wait_for "" eval 'tb_virsh domjobinfo "$DOM" 2>/dev/null | grep -q "Job type: *None"' ||
    tb_fail "the backup job did not end"
tb_expect_fail "nothing listens after the abort" nbdinfo "nbds://127.0.0.1:$PORT/vda?tls-certificates=$TLS_CERT_DIR"

# ---------------------------------------------------------------------------
tb_step "SASL: libvirtd listens on 127.0.0.1 (a free port) with auth_tcp=sasl"
sasl_setup
[ "$SASL_URI" = "qemu+tcp://127.0.0.1:$SASL_PORT/system" ] || tb_fail "SASL_URI is '$SASL_URI'"
virsh -c qemu:///system list >/dev/null </dev/null || tb_fail "the unix socket stopped working in SASL mode"
ss -Hltn "sport = :$SASL_PORT" | grep -q "127.0.0.1:$SASL_PORT" || tb_fail "not listening on 127.0.0.1 only"

tb_step "SASL: the right credentials from a libvirt auth file"
cat >"$TB_WORKDIR/auth-good.conf" <<EOF
[credentials-test]
authname=$SASL_USER
password=$SASL_PASSWORD

[auth-libvirt-127.0.0.1]
credentials=test
EOF
out=$(LIBVIRT_AUTH_FILE="$TB_WORKDIR/auth-good.conf" virsh -c "$SASL_URI" list --all --name 2>&1 </dev/null) ||
    tb_fail "virsh -c $SASL_URI with the right password failed: $out"
grep -qx "$DOM" <<<"$out" || tb_fail "the SASL connection does not see $DOM: $out"
out=$(LIBVIRT_AUTH_FILE="$SASL_AUTH_FILE" virsh -c "$SASL_URI" list 2>&1 </dev/null) ||
    tb_fail "virsh with the exported SASL_AUTH_FILE failed: $out"
tb_pass "SASL login as $SASL_USER"

tb_step "SASL: a wrong password and no credentials are rejected"
sed "s/^password=.*/password=wrong-$SASL_PASSWORD/" "$TB_WORKDIR/auth-good.conf" >"$TB_WORKDIR/auth-bad.conf"
rc=0
out=$(LIBVIRT_AUTH_FILE="$TB_WORKDIR/auth-bad.conf" virsh -c "$SASL_URI" list 2>&1 </dev/null) || rc=$?
[ "$rc" -ne 0 ] || tb_fail "virsh with a wrong password succeeded: $out"
grep -qi 'auth' <<<"$out" || tb_fail "the failure does not mention authentication: $out"
tb_log "as expected: $(tr '\n' ' ' <<<"$out")"
rc=0
out=$(LIBVIRT_AUTH_FILE=/dev/null virsh -c "$SASL_URI" list 2>&1 </dev/null) || rc=$?
[ "$rc" -ne 0 ] || tb_fail "virsh without credentials succeeded: $out"

# ---------------------------------------------------------------------------
tb_step "sasl_teardown: libvirtd leaves the listening mode, TLS stays"
sasl_teardown || tb_fail "sasl_teardown failed"
[ -z "$(ss -Hltn "sport = :$SASL_PORT")" ] || tb_fail "still listening on $SASL_PORT"
tb_expect_fail "the tcp URI is gone" virsh -c "qemu+tcp://127.0.0.1:$SASL_PORT/system" list
grep -q '^backup_tls_x509_cert_dir' /etc/libvirt/qemu.conf || tb_fail "sasl_teardown undid the TLS setting"

tb_step "tls_teardown: the machine is as before"
tb_remove_domain "$DOM"
tls_teardown || tb_fail "tls_teardown failed"
check_restored || tb_fail "the machine is not as before the test"
