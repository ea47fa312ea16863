#!/bin/bash
# A backup's domain XML is untrusted input (virtrestore(1), THE DOMAIN CONFIG OF A
# BACKUP). A real backup of a test domain
# gets a hostile vmconfig planted: a <filesystem> exporting /, a <hostdev>,
# <qemu:commandline> with -device, a serial port writing to a host file, an <emulator>
# elsewhere, a loader and an nvram template naming a host file, <seclabel type='none'>, the
# guest agent's channel on a chosen host socket. Then:
#   - virtrestore -D defines, and virtmap --boot starts (TCG), a domain whose XML has none
#     of them, and each tool's log names every one dropped with the host path it named; the
#     restored disk equals the source;
#   - with --trust-config, virtrestore -c keeps them all, and virtmap --boot boots a trusted
#     config with its <filesystem>, its file-backed serial port made a pty (the copy never
#     writes to the original's files);
#   - a boot file copy that is a symbolic link to a host file is not copied;
#   - a META checkpointName that is not a plain name ("../../../../t.0", a leading '.', a
#     control character) is refused by virtrestore (directory and zip) and virtmap, naming
#     the file; so is a zip's vmconfig.<ident>.xml whose ident holds a '/'.
set -euo pipefail
source "$(dirname "$0")/../lib/testbed.sh"
source "$(dirname "$0")/../lib/chain.sh"
tb_init
VIRTMAP="$VB_BUILD_DIR/src/map/virtmap"
for t in "$VIRTBACKUP" "$VIRTRESTORE" "$VIRTMAP"; do [ -x "$t" ] || tb_fail "$t not built"; done
W=$TB_WORKDIR
export TMPDIR=$W/tmp
mkdir -p "$TMPDIR"

tb_create_domain hcfg 32M
DOM=$TB_DOMAIN
tb_step "a full backup of $DOM with a known pattern"
tb_qemu_io "$DOM" vda "write -P 0x5a 1M 1M"
tb_snapshot_image "$DOM" vda "$W/snap.raw"
vb_backup -d "$DOM" -l full -o "$W/out"
CFG=vmconfig.virtnbdbackup.0.xml
[ -f "$W/out/$CFG" ] || tb_fail "no $CFG in the backup: $(ls "$W/out")"

# Stand-ins for host files the backup's author wants: a secret, an emulator of their choice.
printf 'vbtest-host-secret\n' >"$W/host-secret"
chmod 0600 "$W/host-secret"
ln -s "$(command -v qemu-system-x86_64)" "$W/evil-emulator"

tb_step "planting a hostile $CFG"
cp -a "$W/out" "$W/hostile"
/usr/bin/python3 - "$W/hostile/$CFG" "$W" <<'PY'
import re, sys
path, w = sys.argv[1], sys.argv[2]
x = open(path).read()
x = x.replace("<domain ", "<domain xmlns:qemu='http://libvirt.org/schemas/domain/qemu/1.0' ", 1)
x = re.sub(r"\s*<seclabel\b.*?(/>|</seclabel>)", "", x, flags=re.S)
x = re.sub(r"<emulator>.*?</emulator>", "<emulator>%s/evil-emulator</emulator>" % w, x)
x = re.sub(r"\s*<(serial|console|channel)\b.*?</\1>", "", x, flags=re.S)
if "<features>" in x:  # a pflash loader needs ACPI to be defined at all
    x = x.replace("<features>", "<features><acpi/>", 1)
else:
    x = x.replace("</os>", "</os>\n  <features><acpi/></features>", 1)
x = x.replace("</type>", "</type>\n    <loader readonly='yes' type='pflash'>%s/host-secret</loader>"
              "\n    <nvram template='%s/host-secret'>%s/hostile_VARS.fd</nvram>" % (w, w, w), 1)
x = x.replace("</devices>", """
    <filesystem type='mount' accessmode='passthrough'>
      <source dir='/'/><target dir='vbhostroot'/><readonly/>
    </filesystem>
    <hostdev mode='subsystem' type='pci' managed='no'>
      <source><address domain='0x0000' bus='0xfe' slot='0x1f' function='0x7'/></source>
    </hostdev>
    <serial type='file'><source path='%(w)s/hostile-serial.log'/><target port='0'/></serial>
    <channel type='unix'>
      <source mode='bind' path='%(w)s/agent-hostile.sock'/>
      <target type='virtio' name='org.qemu.guest_agent.0'/>
    </channel>
  </devices>
  <seclabel type='none'/>
  <qemu:commandline>
    <qemu:arg value='-device'/><qemu:arg value='virtio-rng-pci,id=vbhostile'/>
  </qemu:commandline>""" % {"w": w}, 1)
open(path, "w").write(x)
PY
xmllint --noout "$W/hostile/$CFG" || tb_fail "the planted $CFG is not XML"
# what must not reach libvirt, and how the logs name each drop
MARKERS=("<filesystem" "<hostdev" "qemu:commandline" "vbhostile" "evil-emulator"
    "seclabel type='none'" "host-secret" "hostile-serial.log" "agent-hostile.sock" "hostile_VARS")
DROPS=("devices/filesystem (type='mount', /)" "devices/hostdev (type='pci')"
    "qemu:commandline (-device, virtio-rng-pci,id=vbhostile)" "devices/emulator ($W/evil-emulator)"
    "seclabel (type='none')" "os/loader (type='pflash', $W/host-secret)"
    "os/nvram ($W/host-secret, $W/hostile_VARS.fd)"
    "devices/serial backend (now a pty) (type='file', $W/hostile-serial.log)"
    "devices/channel source path (libvirt chooses one) ($W/agent-hostile.sock)")

# none_of WHAT XML: fails if XML holds any marker
none_of() {
    local m
    for m in "${MARKERS[@]}"; do
        ! grep -qF -- "$m" <<<"$2" || tb_fail "$1 still holds '$m': $(grep -F -- "$m" <<<"$2" | head -3)"
    done
    tb_log "$1 holds none of the ${#MARKERS[@]} host references"
}
# all_dropped LOG: every drop is reported, naming its host path
all_dropped() {
    local d
    for d in "${DROPS[@]}"; do
        grep -qF -- "dropped $d" "$1" ||
            tb_fail "$1 does not report 'dropped $d': $(grep dropped "$1" || echo "(nothing dropped)")"
    done
    tb_log "$(basename "$1"): all ${#DROPS[@]} kinds reported"
}

RDOM=vbtest-$$-restored
tb_on_exit "virsh -q -c qemu:///system undefine --nvram $RDOM"
tb_step "virtrestore -D of the hostile backup defines a domain without the host references"
rc=0
"$VIRTRESTORE" -n -i "$W/hostile" -o "$W/rD" -D -N "$RDOM" >"$W/rD.log" 2>&1 || rc=$?
cat "$W/rD.log" >&2
[ "$rc" = 0 ] || tb_fail "virtrestore -D exited $rc"
none_of "the written $W/rD/vmconfig.xml" "$(cat "$W/rD/vmconfig.xml")"
none_of "the defined $RDOM" "$(tb_virsh dumpxml --inactive "$RDOM")"
all_dropped "$W/rD.log"
compare_qcow_raw "$W/rD/$(basename "${TB_IMAGES[0]}")" "$W/snap.raw" "restore -D of the hostile backup"
tb_virsh start --paused "$RDOM" >/dev/null || tb_fail "the restored domain does not start"
live=$(tb_virsh dumpxml "$RDOM")
none_of "the running $RDOM" "$live"
grep -q "<serial type='pty'>" <<<"$live" || tb_fail "the serial port is not a pty: $live"
grep -q "org.qemu.guest_agent.0" <<<"$live" || tb_fail "the guest agent channel is gone: $live"
[ ! -e "$W/hostile-serial.log" ] || tb_fail "qemu wrote the host file $W/hostile-serial.log"
tb_virsh destroy "$RDOM" >/dev/null
tb_virsh undefine "$RDOM" >/dev/null

BOOT=vbtest-$$-booted
tb_step "virtmap --boot of the hostile backup starts $BOOT without the host references"
"$VIRTMAP" -d none -i "$W/hostile" --boot --name "$BOOT" >"$W/uris" 2>"$W/boot.log" &
vmpid=$!
tb_on_exit "kill $vmpid"
for _ in $(seq 1 300); do [ -s "$W/uris" ] && break; kill -0 $vmpid || break; sleep 0.1; done
[ -s "$W/uris" ] || tb_fail "virtmap --boot did not become ready: $(cat "$W/boot.log")"
live=$(tb_virsh dumpxml "$BOOT")
none_of "the booted $BOOT" "$live"
all_dropped "$W/boot.log"
grep -q "protocol='nbd' name='vda'" <<<"$live" || tb_fail "vda is not on the NBD export: $live"
kill -TERM $vmpid
wait $vmpid || tb_fail "virtmap exited non-zero: $(tail -3 "$W/boot.log")"

tb_step "--trust-config: virtrestore -c keeps the hostile config whole, with a warning"
"$VIRTRESTORE" -n -i "$W/hostile" -o "$W/rT" -c --trust-config >"$W/rT.log" 2>&1 ||
    tb_fail "virtrestore -c --trust-config failed: $(tail -3 "$W/rT.log")"
grep -q "warning.*--trust-config" "$W/rT.log" || tb_fail "no --trust-config warning: $(cat "$W/rT.log")"
! grep -q "dropped" "$W/rT.log" || tb_fail "--trust-config dropped: $(grep dropped "$W/rT.log")"
for m in "${MARKERS[@]}"; do
    grep -qF -- "${m//\'/\"}" "$W/rT/vmconfig.xml" || grep -qF -- "$m" "$W/rT/vmconfig.xml" ||
        tb_fail "--trust-config lost '$m'"
done
tb_log "--trust-config kept all ${#MARKERS[@]} host references"

TBOOT=vbtest-$$-trusted
tb_step "--trust-config: virtmap --boot starts a trusted config with its filesystem, the serial a pty"
cp -a "$W/out" "$W/trusted"
mkdir -p "$W/share"
/usr/bin/python3 - "$W/trusted/$CFG" "$W" <<'PY'
import re, sys
path, w = sys.argv[1], sys.argv[2]
x = open(path).read()
x = re.sub(r"\s*<(serial|console)\b.*?</\1>", "", x, flags=re.S)
x = x.replace("</devices>", """
    <filesystem type='mount' accessmode='mapped'>
      <source dir='%(w)s/share'/><target dir='vbshare'/><readonly/>
    </filesystem>
    <serial type='file'><source path='%(w)s/trusted-serial.log'/><target port='0'/></serial>
  </devices>""" % {"w": w}, 1)
open(path, "w").write(x)
PY
"$VIRTMAP" -d none -i "$W/trusted" --boot --trust-config --name "$TBOOT" >"$W/turis" \
    2>"$W/tboot.log" &
tpid=$!
tb_on_exit "kill $tpid"
for _ in $(seq 1 300); do [ -s "$W/turis" ] && break; kill -0 $tpid || break; sleep 0.1; done
[ -s "$W/turis" ] || tb_fail "virtmap --boot --trust-config did not become ready: $(cat "$W/tboot.log")"
grep -q "warning.*--trust-config" "$W/tboot.log" || tb_fail "no --trust-config warning"
live=$(tb_virsh dumpxml "$TBOOT")
grep -qF "<source dir='$W/share'/>" <<<"$live" || tb_fail "the trusted filesystem is gone: $live"
! grep -qF "$W/trusted-serial.log" <<<"$live" || tb_fail "the copy writes to the original's serial file: $live"
grep -q "<serial type='pty'>" <<<"$live" || tb_fail "the trusted serial port is not a pty: $live"
kill -TERM $tpid
wait $tpid || tb_fail "virtmap exited non-zero: $(tail -3 "$W/tboot.log")"

tb_step "a boot file copy that is a symbolic link to a host file is not copied"
cp -a "$W/out" "$W/link"
sed -i "s|</type>|</type><nvram>/var/lib/libvirt/qemu/nvram/vbt_VARS.fd</nvram>|" "$W/link/$CFG"
ln -s "$W/host-secret" "$W/link/vbt_VARS.fd.virtnbdbackup.0"
rc=0
"$VIRTRESTORE" -n -i "$W/link" -o "$W/rL" >"$W/rL.log" 2>&1 || rc=$?
cat "$W/rL.log" >&2
[ "$rc" = 0 ] || tb_fail "virtrestore exited $rc"
! grep -rqs vbtest-host-secret "$W/rL" || tb_fail "the host file was copied through the link: $(ls -l "$W/rL")"
grep -q "vbt_VARS.fd.virtnbdbackup.0: not a regular file" "$W/rL.log" ||
    tb_fail "the link is not reported: $(cat "$W/rL.log")"
compare_qcow_raw "$W/rL/$(basename "${TB_IMAGES[0]}")" "$W/snap.raw" "restore of the backup with a link"

tb_step "META checkpointNames that are not plain names are refused, naming the file"
# name_meta DIR NAME: DIR gets a copy of the backup whose vda.full.data META says NAME (a
# JSON string of the same length as "virtnbdbackup.0", so the frame keeps its size), with
# its .chksum and the .cpt list agreeing: only the name is wrong.
name_meta() {
    rm -rf "$1"
    cp -a "$W/out" "$1"
    /usr/bin/python3 - "$1/vda.full.data" "$2" "$1/$DOM.cpt" <<'PY'
import json, sys, zlib
path, name, cpt = sys.argv[1], sys.argv[2], sys.argv[3]
data = open(path, "rb").read()
old = b'"checkpointName": "virtnbdbackup.0"'
new = b'"checkpointName": "' + name.encode() + b'"'
assert data.count(old) == 1 and len(new) == len(old), (data[:400], new)
data = data.replace(old, new)
open(path, "wb").write(data)
open(path + ".chksum", "w").write(str(zlib.adler32(data)))
names = json.load(open(cpt))
assert names == ["virtnbdbackup.0"], names
json.dump([json.loads('"' + name + '"')], open(cpt, "w"))
PY
}
for name in '../../../../t.0' '.virtnbdbackup0' 'virtnbd\u0001.0'; do
    name_meta "$W/evil" "$name"
    "$STREAM_CHECK" "$W/evil/vda.full.data" >/dev/null || tb_fail "stream-check rejects the rewritten file"
    rc=0
    out=$("$VIRTRESTORE" -n -i "$W/evil" -o "$W/rE" 2>&1) || rc=$?
    tb_assert_eq 1 "$rc" "virtrestore exit status with checkpointName $name"
    grep -qF "$W/evil/vda.full.data: refusing the unsafe checkpoint name" <<<"$out" ||
        tb_fail "virtrestore with checkpointName $name: $out"
    [ ! -e "$W/rE" ] || [ -z "$(ls -A "$W/rE")" ] || tb_fail "a refused restore wrote $(ls "$W/rE")"
    tb_log "virtrestore: $(grep -m1 refusing <<<"$out")"
    (cd "$W/evil" && /usr/bin/python3 -c 'import os, sys, zipfile
with zipfile.ZipFile(sys.argv[1], "w") as z:
    for f in sorted(os.listdir(".")):
        if os.path.isfile(f) and not f.endswith(".zip"):
            z.write(f)' evil.zip)
    rc=0
    out=$("$VIRTRESTORE" -n -i "$W/evil/evil.zip" -o "$W/rE" 2>&1) || rc=$?
    tb_assert_eq 1 "$rc" "virtrestore exit status (zip) with checkpointName $name"
    grep -qF "$W/evil/evil.zip:vda.full.data: refusing the unsafe checkpoint name" <<<"$out" ||
        tb_fail "virtrestore (zip) with checkpointName $name: $out"
    rc=0
    out=$("$VIRTMAP" -d none -r -i "$W/evil" --socket "$W/evil.sock" --run true 2>&1) || rc=$?
    tb_assert_eq 1 "$rc" "virtmap exit status with checkpointName $name"
    grep -qF "$W/evil/vda.full.data: refusing the unsafe checkpoint name" <<<"$out" ||
        tb_fail "virtmap with checkpointName $name: $out"
    tb_log "virtmap: $(grep -m1 refusing <<<"$out")"
done
tb_step "a zip whose only vmconfig entry has a '/' in its checkpoint part is refused, naming it"
# zip entry names may hold '/' (checkpoints/...); the <ident> of vmconfig.<ident>.xml may not
(cd "$W/out" && /usr/bin/python3 -c 'import os, sys, zipfile
with zipfile.ZipFile(sys.argv[1], "w") as z:
    for f in sorted(os.listdir(".")):
        if os.path.isfile(f):
            z.write(f, "vmconfig.a/b.xml" if f.startswith("vmconfig.") else f)' "$W/slash.zip")
rc=0
out=$("$VIRTRESTORE" -n -i "$W/slash.zip" -o "$W/rS" -c 2>&1) || rc=$?
tb_assert_eq 1 "$rc" "virtrestore exit status with vmconfig.a/b.xml"
grep -qF "$W/slash.zip:vmconfig.a/b.xml: refusing the unsafe checkpoint name \"a/b\"" <<<"$out" ||
    tb_fail "virtrestore with vmconfig.a/b.xml: $out"
tb_log "virtrestore: $(grep -m1 refusing <<<"$out")"
tb_pass "hostile domain configs and checkpoint names"
