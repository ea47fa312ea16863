#!/bin/bash
# Incrementals into a repository across libvirtd restarts (virtbackup(1), REPOSITORY OUTPUT: a
# checkpoint libvirt lost is redefined from the manifest). A running domain, a repository of
# the default 4 MiB chunks:
#  - full; libvirtd restarted: the next inc uses the checkpoint libvirt kept, reads only the
#    changed chunk and restores equal to the disk;
#  - libvirtd stopped, the domain's checkpoint metadata files removed, libvirtd started: the
#    domain still runs with its bitmaps but libvirt knows no checkpoint; the next inc says it
#    redefined the checkpoint from the manifest, stays an inc of the previous snapshot, copies
#    the unchanged chunks from it and reads only the changed one, and restores equal to the
#    disk; the redefined checkpoint is deleted after the commit (one repository checkpoint);
#  - one more inc after that continues the chain.
# Restarts libvirtd: runs alone (tests/CMakeLists.txt, INTEGRATION_ALONE).
set -euo pipefail

# shellcheck source=../lib/testbed.sh
source "$(dirname "${BASH_SOURCE[0]}")/../lib/testbed.sh"
tb_init

VIRTBACKUP="$VB_BUILD_DIR/src/backup/virtbackup"
VIRTREPO="$VB_BUILD_DIR/src/virtrepo/virtrepo"
VR="$VB_BUILD_DIR/src/restore/virtrestore"
for t in "$VIRTBACKUP" "$VIRTREPO" "$VR"; do [ -x "$t" ] || tb_fail "$t not built"; done
W=$TB_WORKDIR
R=$W/repo
MiB=1048576
# where libvirtd's qemu driver keeps a domain's checkpoint metadata (one XML file each)
CPDIR=/var/lib/libvirt/qemu/checkpoint

# a failed step must not leave the machine without libvirtd
start_libvirtd() {
    if ! virsh -c qemu:///system version >/dev/null 2>&1; then
        rm -f /run/libvirtd.pid
        tb_daemon libvirtd -d
        tb_wait_for "" eval 'virsh -c qemu:///system version >/dev/null 2>&1'
    fi
}
tb_on_exit start_libvirtd
stop_libvirtd() {
    local old
    old=$(cat /run/libvirtd.pid)
    kill "$old"
    tb_wait_for "" eval '! kill -0 "$old" 2>/dev/null' || tb_fail "libvirtd ($old) does not exit"
}
restart_libvirtd() {
    start_libvirtd || tb_fail "libvirtd did not come back"
    tb_assert_eq running "$(tb_virsh domstate "$DOM")" "the domain's state after the restart"
}

tb_create_domain rst 32M
DOM=$TB_DOMAIN
UUID=$(tb_virsh domuuid "$DOM")
IMG=$(basename "${TB_IMAGES[0]}")
"$VIRTREPO" init "$R" >/dev/null
RID=$(jq -r .id "$R/config")
tb_virsh resume "$DOM" >/dev/null

# run LEVEL NAME: vda as of now into $W/NAME.raw, then virtbackup -l LEVEL into the
# repository; output in $W/NAME.out, summary in $W/NAME.json
run() {
    local rc=0
    tb_snapshot_image "$DOM" vda "$W/$2.raw"
    "$VIRTBACKUP" -n -d "$DOM" -l "$1" -o "$R" --json="$W/$2.json" >"$W/$2.out" 2>&1 || rc=$?
    sed 's/^/    | /' "$W/$2.out" >&2
    [ "$rc" -eq 0 ] || tb_fail "virtbackup -l $1 ($2) exited $rc"
}
id_of() { jq -r .snapshot "$W/$1.json"; }
manifest() { echo "$R/snapshots/$UUID/$(id_of "$1").json"; }
vda() { jq -r ".disks[] | select(.disk == \"vda\") | .$2" "$W/$1.json"; }
# restored NAME: the snapshot of run NAME restored equals vda as of the run
restored() {
    rm -rf "$W/restore"
    "$VR" -i "$R" -o "$W/restore" -n --snapshot "$(id_of "$1")" ||
        tb_fail "virtrestore --snapshot $(id_of "$1") failed"
    qemu-img compare -F raw "$W/restore/$IMG" "$W/$1.raw" >/dev/null ||
        tb_fail "$1: vda of snapshot $(id_of "$1") differs from the disk as of its run"
    tb_log "identical: snapshot $(id_of "$1") ($1) == vda as of its run"
}
# an_inc NAME PARENT: run NAME is an inc of run PARENT's snapshot that copied 5 chunks of data
# (vda holds 6, 24 MiB) and read at most the one 4 MiB chunk that changed
an_inc() {
    tb_assert_eq "inc $(id_of "$2")" "$(jq -r '"\(.level) \(.parent)"' "$(manifest "$1")")" \
        "level and parent of $1"
    tb_assert_eq 5 "$(vda "$1" chunks_copied)" "chunks $1 copied from the base"
    local r
    r=$(vda "$1" bytes_read)
    [ "$r" -gt 0 ] && [ "$r" -le $((4 * MiB)) ] || tb_fail "$1 read $r bytes of vda"
}
repo_checkpoints() { tb_virsh checkpoint-list "$DOM" --name | grep -c "^virtnbdbackup\.$RID\." || true; }

tb_step "full of a running domain"
tb_qemu_io "$DOM" vda "write -P 0x11 0 24M"
run full full
restored full
tb_assert_eq full "$(jq -r .level "$(manifest full)")" "level of the full"

tb_step "libvirtd restarted (metadata kept): the next inc uses the checkpoint libvirt kept"
stop_libvirtd
restart_libvirtd
tb_qemu_io "$DOM" vda "write -P 0x22 5M 64k"
run inc kept
! grep -q "redefined checkpoint" "$W/kept.out" || tb_fail "kept: a checkpoint libvirt kept was redefined"
an_inc kept full
restored kept

tb_step "libvirtd stopped, the checkpoint metadata removed, libvirtd started"
cp=$(jq -r .checkpoint.name "$(manifest kept)")
[ -f "$CPDIR/$DOM/$cp.xml" ] || tb_fail "no metadata file $CPDIR/$DOM/$cp.xml: $(ls -R "$CPDIR")"
stop_libvirtd
rm -f "$CPDIR/$DOM"/*.xml
restart_libvirtd
tb_assert_eq 0 "$(repo_checkpoints)" "checkpoints libvirt knows after the restart"
tb_qemu_io "$DOM" vda "write -P 0x33 13M 64k"
run inc lost
grep -q "redefined checkpoint $cp from the manifest of snapshot $(id_of kept)" "$W/lost.out" ||
    tb_fail "the inc did not say it redefined $cp from the manifest"
an_inc lost kept
restored lost
tb_assert_eq 1 "$(repo_checkpoints)" "the repository's checkpoints after the inc"

tb_step "the chain continues"
tb_qemu_io "$DOM" vda "write -P 0x44 22M 64k"
run inc next
! grep -q "redefined checkpoint" "$W/next.out" || tb_fail "next: redefined a checkpoint again"
an_inc next lost
restored next
tb_assert_eq 1 "$(repo_checkpoints)" "the repository's checkpoints after the next inc"

tb_pass "repository incs across libvirtd restarts: checkpoint metadata lost, redefined from the manifest"
