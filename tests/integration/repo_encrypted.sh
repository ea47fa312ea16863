#!/bin/bash
# An encrypted repository (virtbackup-repository(5), ENCRYPTION; virtrepo(1), KEYS): a key
# with a passphrase, `virtrepo init --encrypt`, -l full then -l inc of a running domain with a
# pflash loader and an nvram of its own into it; virtrestore of both snapshots equal to the
# source at each point, virtmap serves the latest equal, virtrepo export of it restores equal,
# virtrepo import of a backup directory into another encrypted repository restores equal,
# virtrepo verify passes. Without the key: virtrestore and virtmap fail before reading
# anything with the message naming --key and VIRTBACKUP_KEY_FILE and leave no output, while
# `virtrepo check` and `snapshots` work; a wrong key is refused at open. No file of the
# repository holds the domain's XML (<name>DOM</name>), the nvram's marker or a 4 KiB pattern
# written into the disk; all three are found in an unencrypted repository of the same
# settings made from the same domain (the control).
set -euo pipefail

# shellcheck source=../lib/testbed.sh
source "$(dirname "${BASH_SOURCE[0]}")/../lib/testbed.sh"
# shellcheck source=../lib/chain.sh
source "$(dirname "${BASH_SOURCE[0]}")/../lib/chain.sh"
tb_init

VIRTREPO="$VB_BUILD_DIR/src/virtrepo/virtrepo"
VIRTMAP="$VB_BUILD_DIR/src/map/virtmap"
for t in "$VIRTREPO" "$VIRTMAP" "$VIRTRESTORE" "$VIRTBACKUP"; do
    [ -x "$t" ] || tb_fail "$t not built"
done
W=$TB_WORKDIR
R=$W/repo
PLAIN=$W/plain
KEY=$W/repo.key
LOADER=/usr/share/OVMF/OVMF_CODE_4M.fd
VARS=/usr/share/OVMF/OVMF_VARS_4M.fd
[ -f "$LOADER" ] && [ -f "$VARS" ] || tb_fail "OVMF is not installed ($LOADER, $VARS)"
export TMPDIR=$W/tmp
mkdir -p "$TMPDIR"

# found DIR WHAT HEX: whether any file under DIR holds the bytes HEX (exit 0 found, 1 not)
found() {
    python3 - "$1" "$3" <<'PY'
import os, sys
needle = bytes.fromhex(sys.argv[2])
for root, _, names in os.walk(sys.argv[1]):
    for n in names:
        with open(os.path.join(root, n), "rb") as f:
            if needle in f.read():
                print(os.path.join(root, n))
                sys.exit(0)
sys.exit(1)
PY
}
hex_of() { printf '%s' "$1" | od -An -tx1 -v | tr -d ' \n'; }

tb_step "a running domain: one disk with a 4 KiB pattern, a loader and an nvram with a marker"
DOM="vbtest-$$-enc"
TB_IMAGES=("$W/enc-vda.qcow2")
NVRAM=$W/enc_VARS.fd
MARK="vbtest-nvram-secret-$$-$RANDOM$RANDOM"
qemu-img create -q -f qcow2 -o compat=1.1 "${TB_IMAGES[0]}" 16M
cp "$VARS" "$NVRAM"
printf '%s' "$MARK" | dd of="$NVRAM" bs=1 seek=409600 conv=notrunc status=none
tb_uefi_domain_xml "$DOM" "$LOADER" "$NVRAM" "${TB_IMAGES[0]}" >"$W/enc.xml"
tb_on_exit "tb_virsh destroy $DOM; tb_virsh undefine --nvram --checkpoints-metadata $DOM"
tb_virsh define "$W/enc.xml" >/dev/null
tb_virsh start --paused "$DOM" >/dev/null
tb_qemu_io "$DOM" vda "write -P 0x5a 1M 4k"
tb_qemu_io "$DOM" vda "write -P 0x21 3M 2M"
tb_snapshot_image "$DOM" vda "$W/vda1.raw"
PATTERN=$(printf '5a%.0s' $(seq 4096))
DOMXML=$(hex_of "<name>$DOM</name>")
NVMARK=$(hex_of "$MARK")

tb_step "a key with a passphrase; an encrypted repository records only its fingerprint"
export VIRTBACKUP_KEY_PASSPHRASE="pass-$$"
"$VIRTREPO" key create --passphrase "$KEY"
tb_assert_eq "$(stat -c %a "$KEY")" 600 "the key file's mode"
FPR=$("$VIRTREPO" key fingerprint "$KEY")
"$VIRTREPO" init "$R" --chunk-size 1M --compression none --encrypt "$KEY" >/dev/null
tb_assert_eq "$(jq -r '.encryption + " " + .key_fingerprint' "$R/config")" "aes-256-gcm $FPR" \
    "the config's encryption"
! grep -q "$(jq -r .wrapped "$KEY")" "$R/config" || tb_fail "the config holds the key"

tb_step "-l full and -l inc into it (--key, then VIRTBACKUP_KEY_FILE)"
vb_backup -d "$DOM" -l full -o "$R" --key "$KEY"
ID1=$("$VIRTREPO" snapshots --key "$KEY" "$R" --json | jq -r '.[-1].id')
tb_qemu_io "$DOM" vda "write -P 0x77 9M 1M"
tb_qemu_io "$DOM" vda "write -z 3M 1M"
tb_snapshot_image "$DOM" vda "$W/vda2.raw"
VIRTBACKUP_KEY_FILE=$KEY vb_backup -d "$DOM" -l inc -o "$R"
ID2=$("$VIRTREPO" snapshots "$R" --json | jq -r '.[-1].id')
[ "$ID1" != "$ID2" ] || tb_fail "the inc made no snapshot"
tb_assert_eq "$("$VIRTREPO" snapshots "$R" --json | jq -r '[.[].level] | join(" ")')" \
    "full inc" "the snapshots' levels (listed without the key)"
sha_nvram=$(sha256sum <"$NVRAM")

tb_step "virtrestore of both snapshots with the key: equal to the source at each point"
vr_restore_compare "$R" "$W/vda2.raw" "latest (inc), --key" --key "$KEY"
VIRTBACKUP_KEY_FILE=$KEY vr_restore_compare "$R" "$W/vda1.raw" "$ID1 (full), env" \
    --snapshot "$ID1"
O=$W/vr-c
"$VIRTRESTORE" -n -i "$R" -o "$O" -c --key "$KEY" >"$O.log" 2>&1 ||
    tb_fail "virtrestore -c: $(tail -5 "$O.log")"
tb_assert_eq "$(sha256sum <"$O/$(basename "$NVRAM")")" "$sha_nvram" "the restored nvram"
grep -qF "<name>restore_$DOM</name>" "$O/vmconfig.xml" || tb_fail "the restored config"

tb_step "virtmap serves the latest equal; export restores equal; verify passes"
sock=$W/map.sock
"$VIRTMAP" -d none --socket "$sock" -r -i "$R" --key "$KEY" --run \
    "qemu-img compare -f raw -F raw 'nbd+unix:///vda?socket=$sock' '$W/vda2.raw'" \
    >"$W/map.log" 2>&1 || tb_fail "virtmap: $(tail -5 "$W/map.log")"
tb_log "identical: vda served by virtmap"
"$VIRTREPO" --key "$KEY" export "$R" latest "$W/export" >/dev/null 2>&1 ||
    tb_fail "virtrepo export failed"
vr_restore_compare "$W/export" "$W/vda2.raw" "the export of the latest"
"$VIRTREPO" verify "$R" --key "$KEY" >"$W/verify.log" 2>&1 ||
    tb_fail "verify: $(tail -3 "$W/verify.log")"
grep -q "ok (0 damaged snapshots, 0 damaged chunks)" "$W/verify.log" ||
    tb_fail "verify: $(cat "$W/verify.log")"

tb_step "import of a backup directory into an encrypted repository restores equal; stats"
vb_backup -d "$DOM" -l full -o "$W/dir"
"$VIRTREPO" init "$W/imported" --chunk-size 1M --encrypt "$KEY" >/dev/null
rc=0
out=$("$VIRTREPO" import "$W/dir" "$W/imported" 2>&1) || rc=$?
[ "$rc" -ne 0 ] && grep -qF "$W/imported is encrypted: give --key" <<<"$out" ||
    tb_fail "import without the key: rc $rc, said: $out"
"$VIRTREPO" --key "$KEY" import "$W/dir" "$W/imported" >/dev/null 2>&1 ||
    tb_fail "virtrepo import into the encrypted repository failed"
vr_restore_compare "$W/imported" "$W/vda2.raw" "the imported full" --key "$KEY"
"$VIRTREPO" stats "$R" --json --key "$KEY" | jq -e '.total.snapshots == 2' >/dev/null ||
    tb_fail "stats: $("$VIRTREPO" stats "$R" --json --key "$KEY")"

tb_step "without the key: restore and virtmap fail before reading; check and snapshots work"
unset VIRTBACKUP_KEY_FILE
WANT="$R is encrypted: give --key FILE (or VIRTBACKUP_KEY_FILE)"
rc=0
out=$("$VIRTRESTORE" -n -i "$R" -o "$W/nokey" 2>&1) || rc=$?
[ "$rc" -ne 0 ] || tb_fail "virtrestore without the key succeeded"
grep -qF "$WANT" <<<"$out" || tb_fail "virtrestore without the key said: $out"
[ ! -e "$W/nokey" ] || tb_fail "virtrestore without the key made $W/nokey: $(ls -a "$W/nokey")"
tb_log "refused as expected: $(grep -F "$WANT" <<<"$out" | head -1)"
rc=0
out=$("$VIRTMAP" -d none --socket "$W/nokey.sock" -r -i "$R" --run true 2>&1) || rc=$?
[ "$rc" -ne 0 ] || tb_fail "virtmap without the key succeeded"
grep -qF "$WANT" <<<"$out" || tb_fail "virtmap without the key said: $out"
rc=0
out=$("$VIRTREPO" export "$R" latest "$W/nokey-export" 2>&1) || rc=$?
[ "$rc" -ne 0 ] && grep -qF "$WANT" <<<"$out" || tb_fail "export without the key: $out"
[ ! -e "$W/nokey-export" ] || tb_fail "export without the key made $W/nokey-export"
vb_backup_fails "$WANT" -d "$DOM" -l inc -o "$R"
"$VIRTREPO" check "$R" >"$W/check.log" 2>&1 || tb_fail "check without the key: $(cat "$W/check.log")"
grep -q "2 snapshots, .*: ok" "$W/check.log" || tb_fail "check: $(cat "$W/check.log")"
"$VIRTREPO" snapshots "$R" | grep -qF "$ID2" || tb_fail "snapshots without the key"
"$VIRTREPO" verify "$R" >"$W/verify-nokey.log" 2>&1 ||
    tb_fail "verify without the key: $(cat "$W/verify-nokey.log")"
grep -q "checking the stored bytes only" "$W/verify-nokey.log" &&
    grep -q "ok (0 damaged snapshots, 0 damaged chunks)" "$W/verify-nokey.log" ||
    tb_fail "verify without the key: $(cat "$W/verify-nokey.log")"
"$VIRTREPO" snapshots "$R" --json | jq -e 'all(.[].disks[]; .format == null and
    .bytes_read == null and (.index | length) == 64)' >/dev/null ||
    tb_fail "snapshots --json without the key: $("$VIRTREPO" snapshots "$R" --json)"
"$VIRTREPO" snapshots "$R" --json --key "$KEY" | jq -e 'all(.[].disks[]; .format == "qcow2"
    and .bytes_read > 0)' >/dev/null ||
    tb_fail "snapshots --json with the key: $("$VIRTREPO" snapshots "$R" --json --key "$KEY")"

tb_step "a wrong key is refused at open"
VIRTBACKUP_KEY_PASSPHRASE=other "$VIRTREPO" key create --passphrase "$W/other.key"
OTHER=$(VIRTBACKUP_KEY_PASSPHRASE=other "$VIRTREPO" key fingerprint "$W/other.key")
rc=0
out=$(VIRTBACKUP_KEY_PASSPHRASE=other "$VIRTRESTORE" -n -i "$R" -o "$W/wrong" \
    --key "$W/other.key" 2>&1) || rc=$?
[ "$rc" -ne 0 ] && grep -qF "wrong key" <<<"$out" || tb_fail "a wrong key: rc $rc, said: $out"
[ ! -e "$W/wrong" ] || tb_fail "a wrong key made $W/wrong"
tb_log "refused as expected: $(grep -F "wrong key" <<<"$out" | head -1) ($OTHER)"
rc=0
out=$(VIRTBACKUP_KEY_PASSPHRASE=nope "$VIRTRESTORE" -n -i "$R" -o "$W/wrongpass" \
    --key "$KEY" 2>&1) || rc=$?
[ "$rc" -ne 0 ] && grep -qF "wrong passphrase" <<<"$out" || tb_fail "a wrong passphrase: $out"

tb_step "the control: an unencrypted repository of the same settings holds all three"
"$VIRTREPO" init "$PLAIN" --chunk-size 1M --compression none >/dev/null
# a key file in the environment is not read for an unencrypted repository: no passphrase asked
(
    unset VIRTBACKUP_KEY_PASSPHRASE
    export VIRTBACKUP_KEY_FILE=$KEY
    vb_backup -d "$DOM" -l full -o "$PLAIN" </dev/null
)
f=$(found "$PLAIN" "the pattern" "$PATTERN") || tb_fail "control: no 4 KiB pattern in $PLAIN"
tb_log "control: the pattern is in $f"
f=$(found "$PLAIN" "the XML" "$DOMXML") || tb_fail "control: no <name>$DOM</name> in $PLAIN"
tb_log "control: the domain's XML is in $f"
f=$(found "$PLAIN" "the nvram" "$NVMARK") || tb_fail "control: no nvram marker in $PLAIN"
tb_log "control: the nvram marker is in $f"

tb_step "the encrypted repository holds none of them"
! f=$(found "$R" "the pattern" "$PATTERN") || tb_fail "the 4 KiB pattern is in $f"
! f=$(found "$R" "the XML" "$DOMXML") || tb_fail "<name>$DOM</name> is in $f"
! f=$(found "$R" "the nvram" "$NVMARK") || tb_fail "the nvram marker is in $f"

tb_step "a damaged chunk: verify finds it with the key and without"
chunk=$(find "$R/chunks" -type f -size +100k | head -1)
[ -n "$chunk" ] || tb_fail "no chunk of 100 KiB in $R"
printf 'X' | dd of="$chunk" bs=1 seek=5000 conv=notrunc status=none
name=$(basename "$chunk")
for k in "" "--key $KEY"; do
    rc=0
    # shellcheck disable=SC2086 # $k is empty or two words
    out=$("$VIRTREPO" verify "$R" $k 2>&1) || rc=$?
    [ "$rc" -eq 1 ] && grep -qF "$name" <<<"$out" ||
        tb_fail "verify ${k:-without the key} of a damaged chunk: rc $rc, said: $out"
    tb_log "verify ${k:-without the key}: $(grep -F "$name" <<<"$out" | head -1)"
done

tb_pass "encrypted repository: backups, restores, map, export, verify; nothing readable"
