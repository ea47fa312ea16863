#!/bin/bash
# Remote backups with NBD over TLS and libvirt over SASL (issue 7), on loopback:
#  - TLS: a CA, server and client certificates made by the test (tests/lib/remote_env.sh),
#    backup_tls_x509_cert_dir set in qemu.conf for the test bed's libvirtd (restarted, and
#    restored afterwards). Full + inc of a running domain, a copy of a shut-off one (qemu-nbd
#    with x509 credentials started over SSH) and a remote restore, all over nbds, compared
#    with the disk. Failures: a client whose CA did not sign the server's certificate, a
#    missing certificate directory.
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

tb_step "restore on the remote host over TLS (qemu-nbd with x509 credentials, over SSH)"
RR=$TB_WORKDIR/remote-restore
"$VIRTRESTORE" -n -i "$OUT" -o "$RR" -U "$URI" -I 127.0.0.1 -P "$PORT" --tls \
    --tls-cert "$TLS_CERT_DIR" >"$RR.log" 2>&1 || tb_fail "TLS remote restore failed: $(tail -5 "$RR.log")"
compare_qcow_raw "$(ls "$RR"/*.qcow2)" "$SNAP/inc2.raw" "TLS remote restore"

tb_step "copy of a shut-off domain over TLS: the remote qemu-nbd serves nbds"
tb_virsh destroy "$DOM" >/dev/null
qemu-img convert -f qcow2 -O raw "${TB_IMAGES[0]}" "$SNAP/off.raw"
tls -d "$DOM" -l copy -o "$TB_WORKDIR/offcopy"
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

tb_pass "NBD over TLS (verified peers) and libvirt over SASL"
