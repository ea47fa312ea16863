#!/bin/bash
# virtbackup -o -: a zip64 archive of STORED entries on stdout, as the reference's zip mode
# writes it (bookkeeping stays in the current directory), checked with Python's zipfile (an
# independent reader): entries, checksums, content; and a failed run leaves no valid zip.
set -euo pipefail
source "$(dirname "$0")/../lib/testbed.sh"
source "$(dirname "$0")/../lib/chain.sh"
tb_init

tb_create_domain zip 96M
DOM=$TB_DOMAIN
SNAP=$TB_WORKDIR/snap
Z=$TB_WORKDIR/zip
mkdir -p "$SNAP" "$Z"
tb_qemu_io "$DOM" vda "write -P 0x41 0 1M"
tb_qemu_io "$DOM" vda "write -P 0x42 40M 36M"

# unzip_check ZIP DIR: lists and extracts with python's zipfile (STORED entries only, CRCs
# verified), and checks each .chksum entry against the adler32 of its data entry
unzip_check() {
    /usr/bin/python3 - "$1" "$2" <<'PY'
import sys, zipfile, zlib
z = zipfile.ZipFile(sys.argv[1])
bad = z.testzip()
assert bad is None, "bad CRC in " + bad
for i in z.infolist():
    assert i.compress_type == zipfile.ZIP_STORED, i.filename
    assert "/" not in i.filename or i.filename.startswith("checkpoints/"), i.filename
z.extractall(sys.argv[2])
names = z.namelist()
for n in names:
    if n.endswith(".data"):
        want = int(z.read(n + ".chksum"))
        assert zlib.adler32(z.read(n)) == want, n
print(" ".join(sorted(names)))
PY
}

tb_step "full backup as a zip on stdout"
(cd "$Z" && "$VIRTBACKUP" -n -d "$DOM" -l full -o - >"$Z/full.zip") || tb_fail "virtbackup -o - failed"
tb_snapshot_image "$DOM" vda "$SNAP/full.raw"
names=$(unzip_check "$Z/full.zip" "$Z/x-full") || tb_fail "full.zip is not a valid zip"
tb_log "entries: $names"
for want in vda.full.data vda.full.data.chksum vmconfig.virtnbdbackup.0.xml \
    vda.virtnbdbackup.0.qcow.json "$DOM.cpt" checkpoints/virtnbdbackup.0.xml; do
    grep -qw -- "$want" <<<"$names" || tb_fail "full.zip lacks $want"
done
grep -q 'backup\.full\..*\.log' <<<"$names" || tb_fail "full.zip lacks the log"
ls "$Z"/*.data "$Z"/*.chksum 2>/dev/null && tb_fail "data or checksum files written to the current directory"
[ -f "$Z/$DOM.cpt" ] || tb_fail "the .cpt file must stay in the current directory"
! ls "$Z"/None* 2>/dev/null || tb_fail "a file named None was written"
assert_meta "$Z/x-full/vda.full.data" false virtnbdbackup.0 "" false
apply_compare "$SNAP/full.raw" "full from the zip" "$Z/x-full/vda.full.data"

tb_step "inc as a zip continues the chain kept in the current directory"
tb_qemu_io "$DOM" vda "write -P 0x43 2M 1M"
tb_qemu_io "$DOM" vda "write -z 50M 4M"
(cd "$Z" && "$VIRTBACKUP" -n -d "$DOM" -l inc -z -o - >"$Z/inc1.zip") || tb_fail "inc -o - failed"
tb_snapshot_image "$DOM" vda "$SNAP/inc1.raw"
unzip_check "$Z/inc1.zip" "$Z/x-inc1" >/dev/null || tb_fail "inc1.zip is not a valid zip"
assert_meta "$Z/x-inc1/vda.inc.virtnbdbackup.1.data" true virtnbdbackup.1 virtnbdbackup.0 2
apply_compare "$SNAP/inc1.raw" "full + inc from the zips" "$Z/x-full/vda.full.data" \
    "$Z/x-inc1/vda.inc.virtnbdbackup.1.data"

tb_step "virtrestore reads our zips in place (full, and full,inc)"
vr_restore_compare "$Z/full.zip" "$SNAP/full.raw" "full.zip"
vr_restore_compare "$Z/full.zip,$Z/inc1.zip" "$SNAP/inc1.raw" "full.zip + inc1.zip"

tb_step "a failed run leaves a stream that is not a valid zip"
# an unwritable checkpoint store makes the run fail after the data went out
(cd "$Z" && "$VIRTBACKUP" -n -d "$DOM" -l inc -C /proc/forbidden -o - >"$Z/bad.zip" 2>"$Z/bad.err") &&
    tb_fail "virtbackup succeeded with an unusable checkpoint directory"
grep -q "incomplete" "$Z/bad.err" || tb_fail "no warning that the archive is incomplete: $(cat "$Z/bad.err")"
if /usr/bin/python3 -c 'import sys, zipfile; zipfile.ZipFile(sys.argv[1])' "$Z/bad.zip" 2>/dev/null; then
    tb_fail "the archive of a failed run reads as a valid zip"
fi

tb_step "-o - refuses a terminal and --json on stdout"
vb_backup_fails "cannot be combined" -d "$DOM" -l inc --json -o -
