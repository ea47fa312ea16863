#!/bin/bash
# virtrestore against chains made by the REFERENCE virtnbdbackup 1.9.15 from a real (paused)
# domain with two disks. The disks' content at every backup is kept as a raw snapshot taken
# with qemu-img (independently of both tools); every restore is compared with it.
#
#   P: plain chain        full -> inc1 -> inc2      (restored to every checkpoint)
#   Z: compressed (-z)    full -> inc1 -> inc2
#   D: diff chain         full -> diff -> diff      (latest = full + newest diff; --sequence)
# plus: scrambled mtimes, -d, dump, verify (flipped byte, truncated file), corrupt and
# missing files (error naming the file, exit 1, no image), zip input (one zip and a comma
# list), -c rewrite, -cD define + start, and an informal speed comparison with virtnbdrestore.
set -euo pipefail

source "$(dirname "${BASH_SOURCE[0]}")/../lib/testbed.sh"
tb_init

VR="$VB_BUILD_DIR/src/restore/virtrestore"
[ -x "$VR" ] || tb_fail "$VR not built"
W="$TB_WORKDIR"
SNAP="$W/snap"
mkdir -p "$SNAP"

# virtrestore must never leave a qemu-nbd behind. Other tests may run their own qemu-nbd at
# the same time: only those serving an image in our work dir count.
our_qemu_nbd() { ps -C qemu-nbd -o pid=,stat=,args= | awk -v w="$W/" '$2 !~ /^Z/ && index($0, w)' || true; }
tb_on_exit "for d in \$(virsh -q list --all --name | grep '^vrtest-$$-'); do virsh -q destroy \$d; virsh -q undefine --nvram \$d || virsh -q undefine \$d; done"

tb_create_domain rr 1G 64M
DOM="$TB_DOMAIN"
VDA_IMG="${TB_IMAGES[0]}"
VDB_IMG="${TB_IMAGES[1]}"
VDA_BASE="$(basename "$VDA_IMG")"
VDB_BASE="$(basename "$VDB_IMG")"

ref_backup() {
    local level="$1" dir="$2"
    shift 2
    local out rc=0
    out=$(virtnbdbackup -d "$DOM" -l "$level" -o "$dir" -S "$W" -f "$W/backup.sock" -n "$@" 2>&1) || rc=$?
    if [ "$rc" -ne 0 ]; then
        printf '%s\n' "$out" | tail -n 30 >&2
        tb_fail "virtnbdbackup -l $level -o $dir $* exited $rc"
    fi
    tb_log "virtnbdbackup -l $level $* -> $dir: ok"
}

snap() { # snap NAME: raw copies of both disks as they are now
    tb_snapshot_image "$DOM" vda "$SNAP/$1-vda.raw"
    tb_snapshot_image "$DOM" vdb "$SNAP/$1-vdb.raw"
}

io() { tb_qemu_io "$DOM" "$1" "$2"; }

# vr_restore OUT ARGS...: runs virtrestore (no progress), fails the test on a non-zero exit.
vr_restore() {
    local out="$1"
    shift
    "$VR" -n -o "$out" "$@" || tb_fail "virtrestore -o $out $* failed"
}

# compare_disks OUT SNAPNAME [DISKS]: restored images vs the snapshot
compare_disks() {
    local out="$1" name="$2" disks="${3:-vda vdb}" d base
    for d in $disks; do
        if [ "$d" = vda ]; then base="$VDA_BASE"; else base="$VDB_BASE"; fi
        [ -f "$out/$base" ] || tb_fail "no restored image $out/$base"
        local r
        r=$(qemu-img compare -f qcow2 -F raw "$out/$base" "$SNAP/$name-$d.raw" 2>&1) ||
            tb_fail "$out/$base differs from snapshot $name ($d): $r"
    done
    tb_log "identical to snapshot $name: $out ($disks)"
}

no_leftovers() { # no_leftovers DIR: nothing that looks like an image
    local f
    f=$(find "$1" -maxdepth 1 \( -name '*.qcow2' -o -name '*.partial' -o -name '*.raw' \) 2>/dev/null || true)
    [ -z "$f" ] || tb_fail "a failed restore left files behind in $1: $f"
}

# ---------------------------------------------------------------------------
tb_step "plain chain P: full, inc1, inc2 (with zeroed and discarded ranges)"
io vda "write -P 0x11 0 8M"
io vda "write -P 0x12 64M 40M" # > 32 MiB: one large extent
io vda "write -P 0x13 900M 1M"
io vdb "write -P 0x21 0 4M"
ref_backup full "$W/P"
snap P0
io vda "write -P 0x14 4M 8M"   # overlaps the full's data
io vda "write -z 70M 2M"       # data that became zero
io vdb "write -P 0x22 32M 1M"
ref_backup inc "$W/P"
snap P1
io vda "discard 64M 1M"
io vda "write -P 0x15 500M 3M"
io vdb "write -P 0x23 0 64k"
ref_backup inc "$W/P"
snap P2
ls "$W/P" >&2

tb_step "restore P to every checkpoint"
vr_restore "$W/rP0" -i "$W/P" -u virtnbdbackup.0
compare_disks "$W/rP0" P0
vr_restore "$W/rP1" -i "$W/P" -u virtnbdbackup.1
compare_disks "$W/rP1" P1
vr_restore "$W/rP2" -i "$W/P" --json="$W/rP2.json"
compare_disks "$W/rP2" P2
jq -e '.status == "ok" and .exit_code == 0 and (.disks | length) == 2 and
       (.disks[] | select(.disk == "vda") | .checkpoint == "virtnbdbackup.2" and .bytes_written > 0)' \
    "$W/rP2.json" >/dev/null || tb_fail "unexpected --json summary: $(cat "$W/rP2.json")"
[ -f "$W/rP2/vmconfig.xml" ] || tb_fail "no vmconfig.xml written"
tb_pass "plain chain restored to checkpoints 0, 1, 2"

tb_step "never overwrite"
tb_expect_fail "restore into a directory holding the images" "$VR" -n -i "$W/P" -o "$W/rP2"
cmp -s "$W/rP2/$VDA_BASE" "$W/rP2/$VDA_BASE" || true

tb_step "--until with an unknown checkpoint lists the chain"
out=$("$VR" -n -i "$W/P" -o "$W/rbad" -u virtnbdbackup.9 2>&1) && tb_fail "unknown --until accepted"
grep -q "virtnbdbackup.9" <<<"$out" || tb_fail "error does not name the checkpoint: $out"
no_leftovers "$W/rbad"

tb_step "scrambled modification times restore the same"
cp -r "$W/P" "$W/Pm" # cp without -p: new mtimes
for f in "$W/Pm"/*; do touch -d "@$((1500000000 + RANDOM * 1000))" "$f"; done
touch -d "2001-01-01" "$W/Pm/vda.inc.virtnbdbackup.2.data" "$W/Pm/vmconfig.virtnbdbackup.2.xml"
vr_restore "$W/rPm" -i "$W/Pm"
compare_disks "$W/rPm" P2

tb_step "-d: one disk only"
vr_restore "$W/rPd" -i "$W/P" -d vdb -u virtnbdbackup.1
compare_disks "$W/rPd" P1 vdb
[ ! -e "$W/rPd/$VDA_BASE" ] || tb_fail "-d vdb restored vda too"

tb_step "--sequence: explicit files"
vr_restore "$W/rPs" -i "$W/P" -s vda.full.data,vda.inc.virtnbdbackup.1.data
qemu-img compare -f qcow2 -F raw "$W/rPs/vda" "$SNAP/P1-vda.raw" >/dev/null ||
    tb_fail "--sequence full,inc1 differs from P1"

tb_step "dump"
"$VR" -i "$W/P" -o dump >"$W/dump.json"
jq -e 'length == 6 and all(.[]; has("file") and has("checkpointName") and .streamVersion == 2)' \
    "$W/dump.json" >/dev/null || tb_fail "unexpected dump: $(head -c 600 "$W/dump.json")"
jq -e '[.[] | select(.diskName == "vda")] | length == 3' "$W/dump.json" >/dev/null || tb_fail "dump per disk"
head -c 300 "$W/dump.json" >&2
echo >&2

tb_step "verify: ok, then a wrong .chksum, a flipped byte in a header, a truncated file"
"$VR" -i "$W/P" -o verify 2>"$W/verify.log" || tb_fail "verify of a good chain failed: $(cat "$W/verify.log")"
[ "$(grep -c ': OK (' "$W/verify.log")" = 6 ] || tb_fail "verify lines: $(cat "$W/verify.log")"
cp -r "$W/P" "$W/Pv"
python3 -c 'import sys,zlib; d=open(sys.argv[1],"rb").read(); open(sys.argv[1]+".chksum","w").write(str(zlib.adler32(d)))' \
    "$W/Pv/vda.inc.virtnbdbackup.1.data"
"$VR" -i "$W/Pv" -a verify 2>"$W/verify.log" || tb_fail "verify with a right chksum failed"
grep -q 'vda.inc.virtnbdbackup.1.data: OK (.*matches .chksum' "$W/verify.log" || tb_fail "chksum not used"
# flip one payload byte: only the adler32 can see it in an uncompressed stream
python3 - "$W/Pv/vda.inc.virtnbdbackup.1.data" <<'PY'
import sys
p = sys.argv[1]; b = bytearray(open(p, "rb").read()); b[len(b) // 2] ^= 0x01; open(p, "wb").write(b)
PY
out=$("$VR" -i "$W/Pv" -o verify 2>&1) && tb_fail "verify missed a flipped byte"
grep -q 'vda.inc.virtnbdbackup.1.data: FAILED: adler32' <<<"$out" || tb_fail "verify output: $out"
truncate -s -100 "$W/Pv/vdb.inc.virtnbdbackup.2.data"
out=$("$VR" -i "$W/Pv" -o verify 2>&1) && tb_fail "verify missed a truncated file"
grep -q 'vdb.inc.virtnbdbackup.2.data: FAILED' <<<"$out" || tb_fail "verify output: $out"
tb_log "verify said: $(grep FAILED <<<"$out" | head -2)"

tb_step "truncated file: restore fails naming it, exit 1, no image"
rc=0
out=$("$VR" -n -i "$W/Pv" -o "$W/rPv" -d vdb 2>&1) || rc=$?
[ "$rc" = 1 ] || tb_fail "restore of a truncated chain exited $rc: $out"
grep -q 'vdb.inc.virtnbdbackup.2.data' <<<"$out" || tb_fail "error does not name the file: $out"
no_leftovers "$W/rPv"

tb_step "missing file (a gap) fails naming the checkpoint"
cp -r "$W/P" "$W/Pg"
rm "$W/Pg/vda.inc.virtnbdbackup.1.data"
rc=0
out=$("$VR" -n -i "$W/Pg" -o "$W/rPg" 2>&1) || rc=$?
[ "$rc" = 1 ] || tb_fail "restore with a gap exited $rc"
grep -q 'virtnbdbackup.1' <<<"$out" || tb_fail "gap error does not name the checkpoint: $out"
tb_log "gap: $(grep error <<<"$out" | head -1)"

tb_step "zip input: one zip (stream-written, zip64, STORED), and a comma list"
mkzip() { # mkzip OUT FILES...: written to a pipe, like virtbackup -o - / the reference
    local out="$1"
    shift
    python3 - "$@" <<'PY' | cat >"$out"
import os, sys, zipfile
with zipfile.ZipFile(sys.stdout.buffer, "x", zipfile.ZIP_STORED) as z:
    for p in sys.argv[1:]:
        with open(p, "rb") as src, z.open(os.path.basename(p), "w", force_zip64=True) as dst:
            while True:
                b = src.read(1 << 20)
                if not b:
                    break
                dst.write(b)
PY
}
mkzip "$W/all.zip" "$W/P"/*.data "$W/P"/*.xml "$W/P"/*.cpt
vr_restore "$W/rZip" -i "$W/all.zip"
compare_disks "$W/rZip" P2
mkzip "$W/full.zip" "$W/P"/*.full.data "$W/P/vmconfig.virtnbdbackup.0.xml" "$W/P"/*.cpt
mkzip "$W/inc1.zip" "$W/P"/*.inc.virtnbdbackup.1.data "$W/P/vmconfig.virtnbdbackup.1.xml" "$W/P"/*.cpt
vr_restore "$W/rZip2" -i "$W/full.zip,$W/inc1.zip"
compare_disks "$W/rZip2" P1
"$VR" -i "$W/full.zip,$W/inc1.zip" -o verify 2>/dev/null || tb_fail "verify of zips failed"
# unsafe names (.., absolute) and duplicate names are refused, naming the entry
for bad in "../evil.data:unsafe name '../evil.data'" "/etc/evil.data:unsafe name '/etc/evil.data'" \
    "vda.full.data vda.full.data:duplicate entry 'vda.full.data'"; do
    python3 -W ignore - "$W/evil.zip" "${bad%%:*}" <<'PY'
import sys, zipfile
with zipfile.ZipFile(sys.argv[1], "w") as z:
    for name in sys.argv[2].split():
        z.writestr(zipfile.ZipInfo(name), b"x")  # ZipInfo keeps the name as given
PY
    rc=0
    out=$("$VR" -n -i "$W/evil.zip" -o "$W/rEvil" 2>&1) || rc=$?
    tb_assert_eq 1 "$rc" "exit status for a zip with ${bad%%:*}"
    grep -qF "${bad#*:}" <<<"$out" || tb_fail "zip with ${bad%%:*}: $out"
    [ ! -e "$W/rEvil" ] || [ -z "$(ls -A "$W/rEvil")" ] || tb_fail "a refused zip wrote $(ls "$W/rEvil")"
done

tb_step "-c: adjusted config"
vr_restore "$W/rC" -i "$W/P" -c -N "vrtest-$$-c"
X="$W/rC/vmconfig.xml"
[ "$(xmllint --xpath 'string(/domain/name)' "$X")" = "vrtest-$$-c" ] || tb_fail "name not set"
[ -z "$(xmllint --xpath 'string(/domain/uuid)' "$X")" ] || tb_fail "uuid not removed"
[ "$(xmllint --xpath "string(//disk[target/@dev='vda']/source/@file)" "$X")" = "$W/rC/$VDA_BASE" ] ||
    tb_fail "vda source not at the restored image: $(grep -A3 '<disk' "$X")"
grep -q "$VDA_IMG" "$X" && tb_fail "config still references the original image"
compare_disks "$W/rC" P2

tb_step "-cD: define, start, undefine"
vr_restore "$W/rD" -i "$W/P" -D -N "vrtest-$$-d"
virsh -q start --paused "vrtest-$$-d" >/dev/null || tb_fail "the restored domain does not start"
virsh -q domblklist "vrtest-$$-d" | grep -q "$W/rD/$VDA_BASE" || tb_fail "defined domain does not use the restored image"
virsh -q destroy "vrtest-$$-d" >/dev/null
virsh -q undefine "vrtest-$$-d" >/dev/null
tb_pass "-cD domain started"

# ---------------------------------------------------------------------------
tb_step "compressed chain Z: full, inc1, inc2"
io vda "write -P 0x31 200M 34M"
ref_backup full "$W/Z" -z
snap Z0
io vda "write -P 0x32 210M 2M"
io vda "write -z 0 1M"
ref_backup inc "$W/Z" -z
snap Z1
io vdb "write -P 0x33 16M 2M"
ref_backup inc "$W/Z" -z
snap Z2
for i in 0 1; do
    vr_restore "$W/rZ$i" -i "$W/Z" -u virtnbdbackup.$i
    compare_disks "$W/rZ$i" Z$i
done
vr_restore "$W/rZ2" -i "$W/Z" --compress
compare_disks "$W/rZ2" Z2
"$VR" -i "$W/Z" -o verify 2>"$W/verifyz.log" || tb_fail "verify Z: $(cat "$W/verifyz.log")"
grep -q 'lz4 checksums ok' "$W/verifyz.log" || tb_fail "lz4 not checked: $(cat "$W/verifyz.log")"

tb_step "compressed: a flipped payload byte is found by verify and fails the restore"
cp -r "$W/Z" "$W/Zc"
python3 - "$W/Zc/vda.full.data" <<'PY'
import sys
p = sys.argv[1]; b = bytearray(open(p, "rb").read())
# the first DATA frame starts after META; flip a byte well inside its LZ4 payload
i = b.index(b"data 0000000000") + 40 + 100
b[i] ^= 0x40
open(p, "wb").write(b)
PY
out=$("$VR" -i "$W/Zc" -o verify 2>&1) && tb_fail "verify missed a corrupt lz4 frame"
grep -q 'vda.full.data: FAILED' <<<"$out" || tb_fail "verify output: $out"
rc=0
out=$("$VR" -n -i "$W/Zc" -o "$W/rZc" 2>&1) || rc=$?
[ "$rc" = 1 ] || tb_fail "restore of a corrupt file exited $rc"
grep -q 'vda.full.data' <<<"$out" || tb_fail "error does not name the file: $out"
[ ! -e "$W/rZc/$VDA_BASE" ] && [ ! -e "$W/rZc/$VDA_BASE.partial" ] || tb_fail "corrupt restore left an image"
tb_log "corrupt: $(grep -m1 error <<<"$out")"

# ---------------------------------------------------------------------------
tb_step "diff chain D: full, diff, diff"
ref_backup full "$W/D"
snap D0
io vda "write -P 0x41 300M 2M"
sleep 1 # diff file names carry the time in seconds
ref_backup diff "$W/D"
snap D1
io vda "write -P 0x42 310M 1M"
io vdb "write -P 0x43 40M 1M"
sleep 1
ref_backup diff "$W/D"
snap D2
ls "$W/D" >&2
vr_restore "$W/rD2" -i "$W/D"
compare_disks "$W/rD2" D2
first_diff=$(cd "$W/D" && ls vda.diff.*.data | sort | head -1)
vr_restore "$W/rD1" -i "$W/D" -s "vda.full.data,$first_diff"
qemu-img compare -f qcow2 -F raw "$W/rD1/vda" "$SNAP/D1-vda.raw" >/dev/null || tb_fail "--sequence full,diff1"

if strings "$VR" | grep -x VIRTBACKUP_DEBUG_STALL >/dev/null; then
    tb_step "SIGINT during a restore: exit 1, no image, no qemu-nbd"
    # held at the debug stall, where its qemu-nbd serves the .partial image: surely running
    gate=$W/int.gate
    touch "$gate"
    VIRTBACKUP_DEBUG_STALL=$gate "$VR" -n -i "$W/P" -o "$W/rInt" -d vda 2>"$W/rInt.log" &
    vpid=$!
    tb_on_exit "kill $vpid"
    tb_wait_for "$vpid" test -e "$gate.stalled" ||
        tb_fail "the restore never reached its stall: $(cat "$W/rInt.log")"
    [ -e "$W/rInt/$VDA_BASE.partial" ] || tb_fail "no $VDA_BASE.partial while the restore runs"
    kill -INT "$vpid"
    rc=0
    wait "$vpid" || rc=$?
    [ "$rc" = 1 ] || tb_fail "interrupted restore exited $rc: $(cat "$W/rInt.log")"
    grep -q "interrupted by SIGINT" "$W/rInt.log" || tb_fail "no 'interrupted by SIGINT': $(cat "$W/rInt.log")"
    no_leftovers "$W/rInt"
else
    tb_log "SKIP SIGINT during a restore: release build without the debug stall (sanitizer build has it)"
fi

tb_step "no qemu-nbd left behind"
[ -z "$(our_qemu_nbd)" ] || tb_fail "qemu-nbd processes left: $(our_qemu_nbd)"

# ---------------------------------------------------------------------------
tb_step "informal speed: virtnbdrestore vs virtrestore on the plain chain"
t() { local s e; s=$(date +%s.%N); "$@" >/dev/null 2>&1; e=$(date +%s.%N); echo "$e - $s" | bc; }
ref_t=$(t virtnbdrestore -i "$W/P" -o "$W/refP" -n)
our_t=$(t "$VR" -n -i "$W/P" -o "$W/ourP")
compare_disks "$W/ourP" P2
tb_log "restore of the plain chain: virtnbdrestore ${ref_t}s, virtrestore ${our_t}s"

tb_pass "restore_reference"
