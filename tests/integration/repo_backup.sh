#!/bin/bash
# virtbackup -o REPO (virtbackup(1), REPOSITORY OUTPUT): a running domain with two disks (data
# written by qemu-io, holes, a short last chunk) backed up -l full into a repository of 1 MiB
# chunks, each disk exported from the snapshot (tests/tools/repo-raw) and compared with the
# disk; the manifest (level, checkpoint, disks, sizes); --json's bytes_new/bytes_stored;
# the repository's checkpoint made beside the domain's stream-directory chain, which goes on
# with an inc after the repository full (repo_checkpoints.sh tests the checkpoints in depth); a shut-off domain (-l copy); two VMs cloned from one image
# backed up into the repository at the same time: both correct, the shared chunks stored
# once; -l diff refused with nothing written (repo_inc.sh tests -l inc); a run killed with -9 (debug builds) leaves no
# snapshot, virtrepo check passes and the next backup works; virtrepo verify passes.
set -euo pipefail

# shellcheck source=../lib/testbed.sh
source "$(dirname "${BASH_SOURCE[0]}")/../lib/testbed.sh"
# shellcheck source=../lib/chain.sh
source "$(dirname "${BASH_SOURCE[0]}")/../lib/chain.sh"
tb_init

VIRTREPO="$VB_BUILD_DIR/src/virtrepo/virtrepo"
[ -x "$VIRTREPO" ] || tb_fail "$VIRTREPO not built"
RAW=$(tb_tool repo-raw)
W=$TB_WORKDIR
R=$W/repo
DIR=$W/chain
MiB=$((1024 * 1024))

nchunks() { find "$R/chunks" -type f ! -name '.*' 2>/dev/null | wc -l; }
nobjects() { find "$R" -type f | wc -l; }
# snapshots_of VM: the ids of VM's snapshots, oldest first
snapshots_of() { "$VIRTREPO" snapshots "$R" --vm "$1" --json | jq -r '.[].id'; }
# manifest VM ID: the manifest's path
manifest() {
    local uuid
    uuid=$(tb_virsh domuuid "$1")
    echo "$R/snapshots/$uuid/$2.json"
}
# export_compare ID DISK SNAPSHOT.raw WHAT
export_compare() {
    "$RAW" export "$R" "$1" "$2" "$W/export.raw" || tb_fail "$4: repo-raw export of $2 failed"
    cmp "$W/export.raw" "$3" || tb_fail "$4: disk $2 of snapshot $1 differs from the disk"
    tb_log "identical: snapshot $1 disk $2 == $(basename "$3") ($4)"
    rm -f "$W/export.raw"
}

HAVE_STALL=0
if strings "$VIRTBACKUP" | grep -x VIRTBACKUP_DEBUG_STALL >/dev/null; then
    HAVE_STALL=1
fi

tb_step "virtrepo init with 1 MiB chunks"
"$VIRTREPO" init "$R" --chunk-size 1M >/dev/null
RID=$(jq -r .id "$R/config")
# checkpoints_of DOMAIN: its checkpoint names, sorted, on one line
checkpoints_of() { tb_virsh checkpoint-list "$1" --name | LC_ALL=C sort | xargs; }

tb_step "a domain with two disks; vda's size is not a multiple of the chunk size"
# vda: 9 MiB + 512 bytes, its last chunk 512 bytes long
tb_create_domain rb 9437696 16M
DOM=$TB_DOMAIN
tb_qemu_io "$DOM" vda "write -P 0x5a 0 3M"
tb_qemu_io "$DOM" vda "write -P 0x11 5M 64k"
tb_qemu_io "$DOM" vda "write -P 0x33 9M 512"
tb_qemu_io "$DOM" vdb "write -P 0x61 1M 2M"
tb_qemu_io "$DOM" vdb "write -P 0x62 12582912 65536"

tb_step "the domain's stream-directory chain: a full"
vb_backup -d "$DOM" -l full -o "$DIR"
tb_assert_eq "virtnbdbackup.0" "$(tb_virsh checkpoint-list "$DOM" --name | xargs)" \
    "checkpoints after the directory full"

tb_step "-l full into the repository"
tb_qemu_io "$DOM" vda "write -P 0x44 7M 64k"
tb_snapshot_image "$DOM" vda "$W/vda.raw"
tb_snapshot_image "$DOM" vdb "$W/vdb.raw"
vb_backup -d "$DOM" -l full -o "$R" --json="$W/full.json"
mapfile -t IDS < <(snapshots_of "$DOM")
tb_assert_eq 1 "${#IDS[@]}" "snapshots of $DOM"
ID=${IDS[0]}
export_compare "$ID" vda "$W/vda.raw" "full, running"
export_compare "$ID" vdb "$W/vdb.raw" "full, running"
M=$(manifest "$DOM" "$ID")
jq -e --arg dom "$DOM" --arg cp "virtnbdbackup.$RID.0" '.vm == $dom and .level == "full"
    and .parent == null and .checkpoint.name == $cp and (.domain_xml | contains("<name>" + $dom + "</name>"))
    and ([.disks[].target] == ["vda", "vdb"])
    and .disks[0].virtual_size == 9437696 and .disks[1].virtual_size == 16777216
    and .disks[0].chunk_size == 1048576 and .disks[0].format == "qcow2"
    and (.disks[0].qcow_json | fromjson | .format == "qcow2")' "$M" >/dev/null ||
    tb_fail "manifest: $(jq -c 'del(.domain_xml)' "$M")"
# vda: chunks 0-2 (0x5a, one chunk stored once), 5, 7, 9 (short); vdb: 1-2 (0x61, once), 12
tb_assert_eq 6 "$(nchunks)" "chunks after the first full"
jq -e --arg cp "virtnbdbackup.$RID.0" '.status == "ok" and (.disks | length) == 2 and
    all(.disks[]; .level == "full" and .bytes_new > 0 and .bytes_stored > 0 and .bytes_read > 0
        and .checkpoint == $cp and .checksum == null)' "$W/full.json" >/dev/null ||
    tb_fail "--json: $(cat "$W/full.json")"
# six distinct chunks, each counted new once even when two workers put identical chunks
# (vda's 0-2, vdb's 1-2) at the same moment; bytes_new counts the bytes read into them (2 MiB
# of whole chunks, three 64 KiB clusters, vda's last 512 bytes), not the zeroes of their holes
tb_assert_eq $((2 * MiB + 3 * 65536 + 512)) "$(jq '[.disks[].bytes_new] | add' "$W/full.json")" \
    "bytes_new of the first full"
jq -e 'all(.disks[]; .bytes_new <= .bytes_read)' "$W/full.json" >/dev/null ||
    tb_fail "bytes_new above bytes_read: $(cat "$W/full.json")"
tb_assert_eq "$(jq '[.disks[].bytes_new] | add' "$M")" \
    "$(jq '[.disks[].bytes_new] | add' "$W/full.json")" "bytes_new in the manifest and --json"
tb_assert_eq "$(printf '%s\n' virtnbdbackup.0 "virtnbdbackup.$RID.0" | LC_ALL=C sort | xargs)" \
    "$(checkpoints_of "$DOM")" "checkpoints after the repository full (the directory's kept)"
[ -z "$(find "$R" -maxdepth 1 -name '*.log' -o -maxdepth 1 -name '*.data')" ] ||
    tb_fail "the run left files in the repository: $(ls "$R")"

tb_step "a second full of the unchanged domain adds no chunk"
vb_backup -d "$DOM" -l full -o "$R" --json="$W/full2.json"
tb_assert_eq 6 "$(nchunks)" "chunks after the second full"
tb_assert_eq 0 "$(jq '[.disks[].bytes_new] | add' "$W/full2.json")" "bytes_new of the second full"
tb_assert_eq "$(printf '%s\n' virtnbdbackup.0 "virtnbdbackup.$RID.1" | LC_ALL=C sort | xargs)" \
    "$(checkpoints_of "$DOM")" "checkpoints after the second repository full (.0 replaced)"

tb_step "-l diff and -z into the repository are refused, nothing written"
before=$(nobjects)
vb_backup_fails "-l diff does not apply to a repository" -d "$DOM" -l diff -o "$R"
vb_backup_fails "-z does not apply" -d "$DOM" -l full -z -o "$R"
tb_assert_eq "$before" "$(nobjects)" "objects after the refused runs"

tb_step "the directory chain goes on: an inc after the repository full"
tb_qemu_io "$DOM" vda "write -P 0x45 8M 64k"
tb_snapshot_image "$DOM" vda "$W/vda.inc.raw"
vb_backup -d "$DOM" -l inc -o "$DIR"
[ -f "$DIR/vda.inc.virtnbdbackup.1.data" ] || tb_fail "no inc file: $(ls "$DIR")"
vr_restore_compare "$DIR" "$W/vda.inc.raw" "directory chain after the repository full"

if [ "$HAVE_STALL" = 1 ]; then
    tb_step "a run killed with -9 leaves no snapshot; check passes; the next run works"
    n_before=$(snapshots_of "$DOM" | wc -l)
    tb_qemu_io "$DOM" vdb "write -P 0x66 4M 1M"
    STALL=$W/stall
    touch "$STALL"
    VIRTBACKUP_DEBUG_STALL=$STALL "$VIRTBACKUP" -n -d "$DOM" -l full -o "$R" \
        >"$W/killed.out" 2>&1 &
    PID=$!
    tb_wait_for "$PID" test -e "$STALL.stalled" ||
        tb_fail "the run never reached its stall: $(cat "$W/killed.out")"
    kill -9 "$PID"
    wait "$PID" || true
    rm -f "$STALL" "$STALL.stalled"
    tb_assert_eq "$n_before" "$(snapshots_of "$DOM" | wc -l)" "snapshots after the killed run"
    "$VIRTREPO" check "$R" >"$W/check.out" 2>&1 || tb_fail "check after kill: $(cat "$W/check.out")"
    tb_snapshot_image "$DOM" vda "$W/vda.k.raw"
    tb_snapshot_image "$DOM" vdb "$W/vdb.k.raw"
    vb_backup -d "$DOM" -l full -o "$R"
    ID=$(snapshots_of "$DOM" | tail -1)
    export_compare "$ID" vda "$W/vda.k.raw" "full after a killed run"
    export_compare "$ID" vdb "$W/vdb.k.raw" "full after a killed run"
else
    tb_log "release build (no VIRTBACKUP_DEBUG_STALL): the kill -9 step is skipped"
fi

tb_step "a shut-off domain, -l copy"
tb_virsh destroy "$DOM" >/dev/null
qemu-img convert -U -f qcow2 -O raw "${TB_IMAGES[0]}" "$W/vda.off.raw"
qemu-img convert -U -f qcow2 -O raw "${TB_IMAGES[1]}" "$W/vdb.off.raw"
vb_backup -d "$DOM" -l copy -o "$R"
ID=$(snapshots_of "$DOM" | tail -1)
jq -e '.level == "copy" and .checkpoint == null' "$(manifest "$DOM" "$ID")" >/dev/null ||
    tb_fail "manifest of the copy: $(jq -c 'del(.domain_xml)' "$(manifest "$DOM" "$ID")")"
export_compare "$ID" vda "$W/vda.off.raw" "copy, shut off"
export_compare "$ID" vdb "$W/vdb.off.raw" "copy, shut off"
tb_assert_eq "shut off" "$(tb_virsh domstate "$DOM" | xargs)" "state after the offline copy"

tb_step "two VMs cloned from one image, backed up into the repository at the same time"
head -c $((6 * MiB)) /dev/urandom >"$W/base.raw"
truncate -s 8M "$W/base.raw"
CLONES=()
for c in c1 c2; do
    tb_create_domain "$c" 8M
    tb_virsh destroy "$TB_DOMAIN" >/dev/null
    qemu-img convert -f raw -O qcow2 -o compat=1.1 "$W/base.raw" "${TB_IMAGES[0]}"
    tb_virsh start --paused "$TB_DOMAIN" >/dev/null
    CLONES+=("$TB_DOMAIN")
done
# one chunk of each differs: 6 random chunks shared, chunk 7 of each its own
tb_qemu_io "${CLONES[0]}" vda "write -P 0xc1 7M 64k"
tb_qemu_io "${CLONES[1]}" vda "write -P 0xc2 7M 64k"
tb_snapshot_image "${CLONES[0]}" vda "$W/c1.raw"
tb_snapshot_image "${CLONES[1]}" vda "$W/c2.raw"
before=$(nchunks)
if [ "$HAVE_STALL" = 1 ]; then
    # the first stays in its run (its chunk writer open) while the second runs whole
    touch "$STALL"
    VIRTBACKUP_DEBUG_STALL=$STALL "$VIRTBACKUP" -n -d "${CLONES[0]}" -l full -o "$R" \
        >"$W/c1.out" 2>&1 &
    P1=$!
    tb_wait_for "$P1" test -e "$STALL.stalled" ||
        tb_fail "the first clone's run never reached its stall: $(cat "$W/c1.out")"
    vb_backup -d "${CLONES[1]}" -l full -o "$R"
    rm -f "$STALL"
else
    "$VIRTBACKUP" -n -d "${CLONES[0]}" -l full -o "$R" >"$W/c1.out" 2>&1 &
    P1=$!
    vb_backup -d "${CLONES[1]}" -l full -o "$R"
fi
wait "$P1" || tb_fail "the first clone's backup failed: $(cat "$W/c1.out")"
tb_assert_eq $((before + 8)) "$(nchunks)" "chunks after both clones (6 shared + 2 own)"
export_compare "$(snapshots_of "${CLONES[0]}")" vda "$W/c1.raw" "clone 1"
export_compare "$(snapshots_of "${CLONES[1]}")" vda "$W/c2.raw" "clone 2"

tb_step "virtrepo verify and check pass"
"$VIRTREPO" verify "$R" >"$W/verify.out" 2>&1 || tb_fail "verify: $(cat "$W/verify.out")"
"$VIRTREPO" check "$R" >"$W/check.out" 2>&1 || tb_fail "check: $(cat "$W/check.out")"

tb_pass "repository backups"
