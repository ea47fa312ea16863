#!/bin/bash
# virtmap's NBD server with TLS (virtmap(1), --tls-creds, --tls-psk): NBD_OPT_STARTTLS through GnuTLS, x509
# (certificates made here with certtool, client certificates checked against the CA) and PSK
# (username:hexkey). Real TLS clients read a real backup chain (full + inc, -z) and every
# copy is compared with the disk: nbdinfo, nbdcopy (nbds:// URIs with tls-certificates= and
# tls-psk-file=) and qemu-img (tls-creds-x509, tls-creds-psk). Refused: plain-text clients
# (TLS_REQD for every option, EXPORT_NAME a disconnect), a client without a certificate, one
# whose certificate another CA signed or ca-crl.pem revoked, a wrong key, an unknown user; at
# start: --allow-remote without TLS, unreadable or malformed credentials. --allow-remote with
# TLS serves.
set -euo pipefail
source "$(dirname "$0")/../lib/testbed.sh"
source "$(dirname "$0")/../lib/chain.sh"
tb_init
export PATH="/usr/bin:$PATH"

VIRTMAP="$VB_BUILD_DIR/src/map/virtmap"
[ -x "$VIRTMAP" ] || tb_fail "virtmap not built"
command -v certtool >/dev/null || tb_fail "certtool missing (package gnutls-bin)"
CLIENTS=(/usr/bin/python3 "$VB_SOURCE_DIR/tests/integration/map_clients.py")
W=$TB_WORKDIR

tb_step "a chain to serve: full and inc, compressed"
tb_create_domain tls 64M
DOM=$TB_DOMAIN
tb_qemu_io "$DOM" vda "write -P 0x5a 0 3M"
tb_qemu_io "$DOM" vda "write -P 0x6b 40M 2M"
vb_backup -d "$DOM" -l full -z -o "$W/out"
tb_qemu_io "$DOM" vda "write -P 0x7c 1M 1M"
tb_qemu_io "$DOM" vda "write -z 41M 512k"
vb_backup -d "$DOM" -l inc -z -o "$W/out"
tb_snapshot_image "$DOM" vda "$W/snap.raw"

tb_step "certificates: a CA, the server's, a client's, a client of another CA"
certtool_q() { certtool "$@" >/dev/null 2>&1 || tb_fail "certtool $* failed"; }
mkdir -p "$W/ca" "$W/server" "$W/client" "$W/nocert" "$W/foreign"
tmpl() { printf '%s\nexpiration_days = 30\n' "$2" >"$W/ca/$1.tmpl"; }
tmpl ca 'cn = virtmap test CA
ca
cert_signing_key
crl_signing_key'
tmpl other 'cn = another CA
ca
cert_signing_key'
tmpl server 'cn = localhost
dns_name = localhost
ip_address = 127.0.0.1
tls_www_server
encryption_key
signing_key'
tmpl client 'cn = virtmap-test-client
tls_www_client
encryption_key
signing_key'
for k in ca other; do
    certtool_q --generate-privkey --key-type rsa --bits 2048 --outfile "$W/ca/$k-key.pem"
    certtool_q --generate-self-signed --load-privkey "$W/ca/$k-key.pem" \
        --template "$W/ca/$k.tmpl" --outfile "$W/ca/$k-cert.pem"
done
# cert DIR PREFIX TEMPLATE CA: DIR/PREFIX-cert.pem and -key.pem signed by CA (ca or other)
cert() {
    certtool_q --generate-privkey --key-type rsa --bits 2048 --outfile "$1/$2-key.pem"
    certtool_q --generate-certificate --load-privkey "$1/$2-key.pem" \
        --load-ca-certificate "$W/ca/$4-cert.pem" --load-ca-privkey "$W/ca/$4-key.pem" \
        --template "$W/ca/$3.tmpl" --outfile "$1/$2-cert.pem"
}
cert "$W/server" server server ca
cert "$W/client" client client ca
cert "$W/foreign" client client other
for d in server client nocert foreign; do cp "$W/ca/ca-cert.pem" "$W/$d/"; done

# start NAME ARGS...: virtmap -d none -r -i the chain, in the background until it prints its
# URI (URI[NAME], PID[NAME]; log $W/NAME.log)
declare -A URI PID
start() {
    local name="$1"
    shift
    "$VIRTMAP" -d none -r -i "$W/out" "$@" >"$W/$name.out" 2>"$W/$name.log" &
    local pid=$!
    tb_on_exit "kill $pid"
    for _ in $(seq 1 100); do [ -s "$W/$name.out" ] && break; sleep 0.1; done
    [ -s "$W/$name.out" ] || tb_fail "virtmap ($name) did not start: $(cat "$W/$name.log")"
    URI[$name]=$(head -1 "$W/$name.out")
    PID[$name]=$pid
}
stop() {
    local rc=0
    kill -TERM "${PID[$1]}"
    wait "${PID[$1]}" || rc=$?
    tb_assert_eq 0 "$rc" "virtmap ($1) exit status after SIGTERM"
}
# port URI: the TCP port of nbd[s]://HOST:PORT/...
port() { sed -E 's|^nbds?://[^/]*:([0-9]+)/.*|\1|' <<<"$1"; }

# copies SOURCE WHAT NBDCOPY-URI QEMU-OBJECT QEMU-SERVER: nbdinfo says TLS, nbdcopy and
# qemu-img convert read the export, both equal the disk
copies() {
    local what="$1" uri="$2" object="$3" server="$4"
    nbdinfo --json "$uri" >"$W/info.json" || tb_fail "$what: nbdinfo failed"
    tb_assert_eq true "$(jq -r .TLS "$W/info.json")" "$what: nbdinfo's TLS"
    rm -f "$W/copy.raw" "$W/qemu.raw"
    nbdcopy "$uri" "$W/copy.raw" || tb_fail "$what: nbdcopy failed"
    tb_compare_raw "$W/copy.raw" "$W/snap.raw" "$what: nbdcopy"
    qemu-img convert --object "$object" --image-opts \
        "driver=nbd,$server,export=vda,tls-creds=tls0" -O raw "$W/qemu.raw" ||
        tb_fail "$what: qemu-img convert failed"
    tb_compare_raw "$W/qemu.raw" "$W/snap.raw" "$what: qemu-img"
}

# no_session WHAT LOGNAME TEXT CMD...: CMD fails and the server's log says TEXT once more
no_session() {
    local what="$1" log="$W/$2.log" text="$3" before
    shift 3
    before=$(grep -cF -- "$text" "$log" || true)
    tb_expect_fail "$what" "$@"
    for _ in $(seq 1 50); do
        [ "$(grep -cF -- "$text" "$log" || true)" -gt "$before" ] && return 0
        sleep 0.1
    done
    tb_fail "$what: the server's log does not say '$text': $(cat "$log")"
}

tb_step "x509: nbdinfo, nbdcopy and qemu-img with a client certificate read the chain"
start x509 -p 0 --tls-creds "$W/server"
grep -qE '^nbds://127\.0\.0\.1:[0-9]+/vda$' <<<"${URI[x509]}" || tb_fail "no nbds:// URI: ${URI[x509]}"
P=$(port "${URI[x509]}")
copies "x509" "${URI[x509]}?tls-certificates=$W/client" \
    "tls-creds-x509,id=tls0,endpoint=client,dir=$W/client" \
    "server.type=inet,server.host=127.0.0.1,server.port=$P"

tb_step "x509: refused without TLS, without a certificate, with another CA's certificate"
tb_expect_fail "nbdinfo in plain text" nbdinfo "nbd://127.0.0.1:$P/vda"
tb_expect_fail "qemu-img in plain text" qemu-img info "nbd://127.0.0.1:$P/vda"
"${CLIENTS[@]}" tls-required "tcp:127.0.0.1:$P" vda || tb_fail "plain-text options (see above)"
no_session "no client certificate" x509 "the client sent no certificate signed by the CA" \
    nbdinfo "${URI[x509]}?tls-certificates=$W/nocert"
no_session "a certificate of another CA" x509 "the client sent no certificate signed by the CA" \
    nbdinfo "${URI[x509]}?tls-certificates=$W/foreign"
stop x509

tb_step "x509 with ca-crl.pem: the revoked client certificate is refused"
mkdir -p "$W/server-crl"
cp "$W/server"/*.pem "$W/server-crl/"
printf 'crl_next_update = 30\ncrl_number = 1\n' >"$W/ca/crl.tmpl"
certtool_q --generate-crl --load-ca-privkey "$W/ca/ca-key.pem" \
    --load-ca-certificate "$W/ca/ca-cert.pem" --load-certificate "$W/client/client-cert.pem" \
    --template "$W/ca/crl.tmpl" --outfile "$W/server-crl/ca-crl.pem"
start crl -p 0 --tls-creds "$W/server-crl"
no_session "a revoked certificate" crl "client certificate refused" \
    nbdinfo "${URI[crl]}?tls-certificates=$W/client"
tb_log "$(grep 'client certificate refused' "$W/crl.log")"
stop crl

tb_step "x509 --tls-no-verify-peer: a client without a certificate is served"
start noverify -p 0 --tls-creds "$W/server" --tls-no-verify-peer
nbdcopy "${URI[noverify]}?tls-certificates=$W/nocert" "$W/copy.raw" ||
    tb_fail "--tls-no-verify-peer: nbdcopy without a certificate failed"
tb_compare_raw "$W/copy.raw" "$W/snap.raw" "--tls-no-verify-peer"
tb_expect_fail "still no plain text" nbdinfo "nbd://127.0.0.1:$(port "${URI[noverify]}")/vda"
stop noverify

tb_step "PSK on the default (private) unix socket: nbdinfo, nbdcopy and qemu-img read the chain"
mkdir -p "$W/psk" "$W/psk-wrong" "$W/psk-bob"
hexkey() { head -c 32 /dev/urandom | xxd -p -c 64; }
echo "alice:$(hexkey)" >"$W/psk/keys.psk"
echo "alice:$(hexkey)" >"$W/psk-wrong/keys.psk"
echo "bob:$(hexkey)" >"$W/psk-bob/keys.psk"
chmod 0600 "$W"/psk*/keys.psk
start psk --tls-psk "$W/psk/keys.psk"
grep -qE '^nbds\+unix:///vda\?socket=/run/virtmap/[^/]+/nbd\.sock$' <<<"${URI[psk]}" ||
    tb_fail "no nbds+unix URI on the private socket: ${URI[psk]}"
S=${URI[psk]#*socket=}
psk_uri() { echo "nbds+unix://$1@/vda?socket=$S&tls-psk-file=$2"; }
copies "PSK" "$(psk_uri alice "$W/psk/keys.psk")" \
    "tls-creds-psk,id=tls0,endpoint=client,dir=$W/psk,username=alice" \
    "server.type=unix,server.path=$S"
tb_step "PSK: refused with a wrong key, an unknown user, in plain text"
no_session "a wrong key" psk "TLS handshake with a PSK client" \
    nbdinfo "$(psk_uri alice "$W/psk-wrong/keys.psk")"
no_session "an unknown user" psk "TLS handshake with a PSK client" nbdinfo "$(psk_uri bob "$W/psk-bob/keys.psk")"
tb_expect_fail "plain text" nbdinfo "nbd+unix:///vda?socket=$S"
"${CLIENTS[@]}" tls-required "unix:$S" vda || tb_fail "plain-text options on the socket (see above)"
stop psk

tb_step "--allow-remote with TLS listens beyond loopback, and TLS is still required"
start remote -l 0.0.0.0 -p 0 --allow-remote --tls-psk "$W/psk/keys.psk"
P=$(port "${URI[remote]}")
nbdcopy "nbds://alice@127.0.0.1:$P/vda?tls-psk-file=$W/psk/keys.psk" "$W/copy.raw" ||
    tb_fail "--allow-remote: nbdcopy with the key failed"
tb_compare_raw "$W/copy.raw" "$W/snap.raw" "--allow-remote with PSK"
tb_expect_fail "--allow-remote: plain text" nbdinfo "nbd://127.0.0.1:$P/vda"
stop remote

tb_step "refused at start: missing or malformed credentials, two kinds, TLS with --boot"
# refused WHAT TEXT ARGS...: virtmap exits 1 before serving, saying TEXT
refused() {
    local what="$1" want="$2" rc=0 out
    shift 2
    out=$("$VIRTMAP" -d none -r -i "$W/out" "$@" --run 'echo SERVED' 2>&1) || rc=$?
    tb_assert_eq 1 "$rc" "$what: exit status"
    grep -q SERVED <<<"$out" && tb_fail "$what: served: $out"
    grep -qF -- "$want" <<<"$out" || tb_fail "$what: does not say '$want': $out"
    tb_log "refused ($what): $(grep -F -- "$want" <<<"$out" | head -1)"
}
refused "--allow-remote without TLS" "--allow-remote needs TLS" -l 0.0.0.0 -p 0 --allow-remote
refused "no server certificate" "$W/nocert/server-cert.pem" --tls-creds "$W/nocert"
refused "no such PSK file" "$W/none.psk" --tls-psk "$W/none.psk"
printf 'alice:%s\ncarol:notakey\n' "$(hexkey)" >"$W/bad.psk"
refused "a malformed PSK file" "$W/bad.psk, line 2: not 'username:hexkey'" --tls-psk "$W/bad.psk"
out=$("$VIRTMAP" -d none -r -i "$W/out" --tls-psk "$W/bad.psk" 2>&1 || true)
grep -q "$(head -1 "$W/bad.psk" | cut -d: -f2)" <<<"$out" && tb_fail "a key was printed: $out"
refused "both kinds" "--tls-creds and --tls-psk exclude each other" \
    --tls-creds "$W/server" --tls-psk "$W/psk/keys.psk"
refused "TLS with --boot" "--boot serves its VM on a private unix socket" --boot \
    --tls-psk "$W/psk/keys.psk"
tb_pass "TLS (x509, PSK) required and working with nbdinfo, nbdcopy and qemu-img; refusals hold"
