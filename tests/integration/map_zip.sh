#!/bin/bash
# virtmap serves backups kept as zip files (`virtbackup -o -`, one zip per backup), read in
# place as virtrestore reads them (virtmap(1), -i): every disk of `-i full.zip,inc1.zip`
# equals the disk at the inc's point, `--until` the full gives the full's point, and a
# missing, damaged or incomplete set fails with exit 1 and the error line virtrestore prints
# for the same input.
set -euo pipefail
source "$(dirname "$0")/../lib/testbed.sh"
source "$(dirname "$0")/../lib/chain.sh"
tb_init
# nbdcopy and qemu-img with the distribution's libraries
export PATH="/usr/bin:$PATH"

VIRTMAP="$VB_BUILD_DIR/src/map/virtmap"
[ -x "$VIRTMAP" ] || tb_fail "virtmap not built"
SOCK=$TB_WORKDIR/map.sock

tb_create_domain mapzip 96M 24M
DOM=$TB_DOMAIN
SNAP=$TB_WORKDIR/snap
Z=$TB_WORKDIR/zip
mkdir -p "$SNAP" "$Z"

tb_step "full and inc, each as a zip on stdout, of a domain with two disks"
tb_qemu_io "$DOM" vda "write -P 0x41 0 1M"
tb_qemu_io "$DOM" vda "write -P 0x42 40M 36M"
tb_qemu_io "$DOM" vdb "write -P 0x51 1M 2M"
(cd "$Z" && "$VIRTBACKUP" -n -d "$DOM" -l full -o - >"$Z/full.zip") || tb_fail "full -o - failed"
tb_snapshot_image "$DOM" vda "$SNAP/full-vda.raw"
tb_snapshot_image "$DOM" vdb "$SNAP/full-vdb.raw"
tb_qemu_io "$DOM" vda "write -P 0x43 2M 1M"
tb_qemu_io "$DOM" vda "write -z 50M 4M"
tb_qemu_io "$DOM" vdb "write -P 0x52 20M 1M"
(cd "$Z" && "$VIRTBACKUP" -n -d "$DOM" -l inc -z -o - >"$Z/inc1.zip") || tb_fail "inc -o - failed"
tb_snapshot_image "$DOM" vda "$SNAP/inc1-vda.raw"
tb_snapshot_image "$DOM" vdb "$SNAP/inc1-vdb.raw"
ls "$Z"/*.data 2>/dev/null && tb_fail "data files outside the zips: the test would not read zips"

# serve_compare INPUT POINT [ARGS...]: virtmap -i INPUT serves vda and vdb; each export,
# copied out with nbdcopy, equals the snapshot of that disk at POINT
serve_compare() {
    local in="$1" point="$2"
    shift 2
    local out=$TB_WORKDIR/out-$point
    mkdir -p "$out"
    "$VIRTMAP" -d none -r --socket "$SOCK" -i "$in" "$@" --run "
        nbdcopy 'nbd+unix:///vda?socket=$SOCK' '$out/vda.raw' &&
        nbdcopy 'nbd+unix:///vdb?socket=$SOCK' '$out/vdb.raw'" \
        2>>"$TB_WORKDIR/virtmap.log" || tb_fail "virtmap -i $in $*: failed: $(tail -3 "$TB_WORKDIR/virtmap.log")"
    for d in vda vdb; do
        [ -s "$out/$d.raw" ] || tb_fail "$point: nothing copied from export $d"
        qemu-img compare -q -f raw -F raw "$out/$d.raw" "$SNAP/$point-$d.raw" ||
            tb_fail "$point: export $d differs from the disk at that point"
    done
    rm -rf "$out"
}

tb_step "virtmap -i full.zip,inc1.zip: every disk equals the disk at the inc"
serve_compare "$Z/full.zip,$Z/inc1.zip" inc1
grep -q "export vdb" "$TB_WORKDIR/virtmap.log" || tb_fail "no export vdb logged"

tb_step "--until the full: the full's point"
serve_compare "$Z/full.zip,$Z/inc1.zip" full --until virtnbdbackup.0

tb_step "one zip alone (the full)"
serve_compare "$Z/full.zip" full

# same_error INPUT WHAT: virtmap and virtrestore both exit 1 on INPUT with the same error line
same_error() {
    local in="$1" what="$2" mrc=0 rrc=0
    "$VIRTMAP" -d none -r --socket "$SOCK" -i "$in" --run true >/dev/null 2>"$TB_WORKDIR/m.err" || mrc=$?
    "$VIRTRESTORE" -n -i "$in" -o "$TB_WORKDIR/r-out" >/dev/null 2>"$TB_WORKDIR/r.err" || rrc=$?
    [ "$mrc" -eq 1 ] || tb_fail "$what: virtmap exited $mrc, not 1: $(cat "$TB_WORKDIR/m.err")"
    [ "$rrc" -eq 1 ] || tb_fail "$what: virtrestore exited $rrc, not 1: $(cat "$TB_WORKDIR/r.err")"
    local m r
    m=$(sed -n 's/^virtmap: error: //p' "$TB_WORKDIR/m.err" | tail -1)
    r=$(sed -n 's/^virtrestore: error: //p' "$TB_WORKDIR/r.err" | tail -1)
    [ -n "$m" ] || tb_fail "$what: virtmap printed no error line: $(cat "$TB_WORKDIR/m.err")"
    [ "$m" = "$r" ] || tb_fail "$what: virtmap says '$m', virtrestore '$r'"
    tb_log "$what: both say: $m"
    rm -rf "$TB_WORKDIR/r-out"
}

tb_step "broken input: the same error from virtmap as from virtrestore"
same_error "$Z/full.zip,$Z/missing.zip" "a missing zip"
grep -q "missing.zip" "$TB_WORKDIR/m.err" || tb_fail "the error does not name the missing zip"
head -c 20000 "$Z/full.zip" >"$Z/cut.zip"
same_error "$Z/cut.zip" "a truncated zip"
same_error "$Z/inc1.zip" "an inc without its full"
