#!/bin/bash
# A repository end to end with the real tools: virtbackup -l full -o REPO of a running
# domain with two disks (its qcow2 options kept), twice with changes between, then
# virtrestore -i REPO of each snapshot (latest, --snapshot ID, --until a time between them)
# with -c; every restored image compared with the disk as it was at that backup, the
# config's disks pointing at the restored images; the second run's --json names its
# snapshot; -D -N defines a VM (new name and uuid) on the restored images that starts;
# virtrepo verify passes.
set -euo pipefail

# shellcheck source=../lib/testbed.sh
source "$(dirname "${BASH_SOURCE[0]}")/../lib/testbed.sh"
# shellcheck source=../lib/chain.sh
source "$(dirname "${BASH_SOURCE[0]}")/../lib/chain.sh"
tb_init

VIRTREPO="$VB_BUILD_DIR/src/virtrepo/virtrepo"
[ -x "$VIRTREPO" ] || tb_fail "$VIRTREPO not built"
W=$TB_WORKDIR
R=$W/repo

# restore_compare WHAT SNAP_vda.raw SNAP_vdb.raw ARGS...: virtrestore -i REPO ARGS -c into a
# fresh directory, both images compared
restore_compare() {
    local what="$1" va="$2" vb="$3" out rc=0
    shift 3
    out=$(mktemp -d "$W/r.XXXXXX")
    "$VIRTRESTORE" -n -i "$R" -o "$out" -c "$@" >"$out.log" 2>&1 || rc=$?
    [ "$rc" -eq 0 ] || tb_fail "$what: virtrestore exited $rc: $(tail -5 "$out.log")"
    compare_qcow_raw "$out/rt-vda.qcow2" "$va" "$what, vda"
    compare_qcow_raw "$out/rt-vdb.qcow2" "$vb" "$what, vdb"
    grep -q "$out/rt-vda.qcow2" "$out/vmconfig.xml" || tb_fail "$what: the config does not name the restored vda"
    rm -rf "$out" "$out.log"
}

tb_step "two full backups into a repository, the disk changed between them"
"$VIRTREPO" init "$R" >/dev/null
tb_create_domain rt 64M 32M
DOM=$TB_DOMAIN
tb_qemu_io "$DOM" vda "write -P 0x41 0 12M"
tb_qemu_io "$DOM" vda "write -P 0x42 40M 1M"
tb_qemu_io "$DOM" vdb "write -P 0x43 4M 3M"
tb_snapshot_image "$DOM" vda "$W/a1.raw"
tb_snapshot_image "$DOM" vdb "$W/b1.raw"
"$VIRTBACKUP" -n -d "$DOM" -l full -o "$R" >"$W/b1.log" 2>&1 || tb_fail "first backup: $(cat "$W/b1.log")"
ID1=$("$VIRTREPO" snapshots "$R" --json | jq -r '.[-1].id')
sleep 1.1 # ids and --until resolve to the second
MID=$(date '+%Y-%m-%d %H:%M:%S')
sleep 1.1
tb_qemu_io "$DOM" vda "write -P 0x51 2M 1M"
tb_qemu_io "$DOM" vda "write -z 40M 1M"
tb_qemu_io "$DOM" vdb "write -P 0x52 30M 2M"
tb_snapshot_image "$DOM" vda "$W/a2.raw"
tb_snapshot_image "$DOM" vdb "$W/b2.raw"
"$VIRTBACKUP" -n -d "$DOM" -l full -o "$R" --json=$W/b2.json >"$W/b2.log" 2>&1 ||
    tb_fail "second backup: $(cat "$W/b2.log")"
tb_assert_eq "$("$VIRTREPO" snapshots "$R" --json | jq length)" 2 "snapshots"
# --json names the snapshot the run committed (virtbackup(1), REPOSITORY OUTPUT)
tb_assert_eq "$(jq -r .snapshot "$W/b2.json")" "$("$VIRTREPO" snapshots "$R" --json | jq -r '.[-1].id')" \
    "the --json summary's snapshot"

tb_step "restores of each snapshot equal the disks at their backups"
restore_compare "latest" "$W/a2.raw" "$W/b2.raw"
restore_compare "--snapshot $ID1" "$W/a1.raw" "$W/b1.raw" --snapshot "$ID1"
restore_compare "--until '$MID'" "$W/a1.raw" "$W/b1.raw" --until "$MID"

tb_step "virtrestore -D -N of the first snapshot defines a VM on the restored images that starts"
RDOM=vbtest-$$-rtrestored
tb_on_exit "virsh -q -c qemu:///system destroy $RDOM; virsh -q -c qemu:///system undefine $RDOM"
"$VIRTRESTORE" -n -i "$R" --snapshot "$ID1" -o "$W/rD" -D -N "$RDOM" >"$W/rD.log" 2>&1 ||
    tb_fail "virtrestore -D: $(tail -5 "$W/rD.log")"
compare_qcow_raw "$W/rD/rt-vda.qcow2" "$W/a1.raw" "-D, vda"
compare_qcow_raw "$W/rD/rt-vdb.qcow2" "$W/b1.raw" "-D, vdb"
defined=$(tb_virsh dumpxml --inactive "$RDOM") || tb_fail "$RDOM is not defined: $(tail -5 "$W/rD.log")"
for img in rt-vda rt-vdb; do
    grep -qF "<source file='$W/rD/$img.qcow2'" <<<"$defined" ||
        tb_fail "$RDOM does not use the restored $img: $(grep -F '<source' <<<"$defined")"
done
grep -qF "<uuid>$(tb_virsh domuuid "$DOM")</uuid>" <<<"$defined" &&
    tb_fail "$RDOM kept the uuid of $DOM"
tb_virsh start --paused "$RDOM" >/dev/null || tb_fail "the restored domain does not start"
tb_virsh destroy "$RDOM" >/dev/null

tb_step "virtrepo verify"
"$VIRTREPO" -q verify "$R" >"$W/verify.out" || tb_fail "verify failed: $(cat "$W/verify.out")"
tb_pass "repository round trip"
