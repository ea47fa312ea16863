#!/bin/bash
# The repository (virtbackup-repository(5)) and virtrepo(1), with raw images fed through the
# snapshot writer and read back through the snapshot reader (tests/tools/repo-raw): a real
# domain's disk, random data with a short last chunk, an all-zero disk, each exported and
# compared byte for byte; a second VM sharing most data adds only its changed chunks;
# snapshots (text and --json); check and verify pass on a sound repository and name the
# damaged snapshots and chunks of a damaged one (a missing chunk: both fail; a flipped payload
# byte: check passes, verify fails); forget removes a manifest; an import killed with -9
# leaves no snapshot, check still passes and a new import works.
set -euo pipefail

# shellcheck source=../lib/testbed.sh
source "$(dirname "${BASH_SOURCE[0]}")/../lib/testbed.sh"
tb_init

VIRTREPO="$VB_BUILD_DIR/src/virtrepo/virtrepo"
[ -x "$VIRTREPO" ] || tb_fail "$VIRTREPO not built"
RAW=$(tb_tool repo-raw)
W=$TB_WORKDIR
R=$W/repo
MiB=$((1024 * 1024))
UUID1=11111111-2222-3333-4444-555555555555
UUID2=66666666-7777-8888-9999-aaaaaaaaaaaa
UUID3=bbbbbbbb-cccc-dddd-eeee-ffffffffffff

nchunks() { find "$R/chunks" -type f ! -name '.*' | wc -l; }
# chunk_key FILE N: the key of the N-th 1 MiB chunk of FILE (its SHA-256)
chunk_key() {
    local h
    h=$(dd if="$1" bs=1M skip="$2" count=1 status=none | sha256sum | cut -c1-64)
    echo "chunks/${h:0:2}/$h"
}

tb_step "a domain's disk with data written by qemu-io, random data, zeros"
tb_create_domain repo 24M
DOM=$TB_DOMAIN
tb_qemu_io "$DOM" vda "write -P 0x5a 0 3M"
tb_qemu_io "$DOM" vda "write -P 0x11 5M 64k"
tb_qemu_io "$DOM" vda "write -z 1M 1M"
tb_qemu_io "$DOM" vda "write -P 0x77 20M 1M"
tb_snapshot_image "$DOM" vda "$W/vda.raw"
# 10 MiB and 12345 bytes: the last chunk is short
head -c $((10 * MiB + 12345)) /dev/urandom >"$W/rand.raw"
truncate -s 5M "$W/zero.raw"

tb_step "virtrepo init"
"$VIRTREPO" init "$R" --chunk-size 1M --compression zstd:3
jq -e '.format == "virtbackup-repository" and .chunk_size == 1048576 and .compression == "zstd"
       and .compression_level == 3' "$R/config" >/dev/null ||
    tb_fail "config: $(cat "$R/config")"
tb_expect_fail "init of an existing repository" "$VIRTREPO" init "$R"
tb_expect_fail "a chunk size that is not a power of two" "$VIRTREPO" init "$W/r2" --chunk-size 3M

tb_step "import VM 1 (three disks) and export every disk"
ID1=$("$RAW" import "$R" vm1 $UUID1 vda="$W/vda.raw" vdb="$W/rand.raw" vdc="$W/zero.raw")
for d in vda:vda vdb:rand vdc:zero; do
    "$RAW" export "$R" "$ID1" "${d%%:*}" "$W/out.raw"
    cmp "$W/${d#*:}.raw" "$W/out.raw" || tb_fail "disk ${d%%:*} exported differs from its source"
done
C1=$(nchunks)
# vda's non-zero chunks: 0 and 2 (0x5a, stored once), 5 (0x11 and zeros), 20 (0x77);
# rand: 10 whole chunks and a short one; zero: none
tb_log "after VM 1: $C1 chunks"
[ "$C1" -eq $((3 + 11)) ] || tb_fail "VM 1 should need 14 chunks (vda 3 distinct, rand 11), has $C1"

tb_step "import VM 2 sharing most data: only its changed chunks are added"
cp "$W/rand.raw" "$W/rand2.raw"
head -c 4096 /dev/urandom | dd of="$W/rand2.raw" bs=4096 seek=$((3 * 256 + 5)) conv=notrunc status=none
head -c 100 /dev/urandom | dd of="$W/rand2.raw" bs=1 seek=$((7 * MiB + 3)) conv=notrunc status=none
ID2=$("$RAW" import "$R" vm2 $UUID2 vda="$W/vda.raw" vdb="$W/rand2.raw")
C2=$(nchunks)
tb_assert_eq $((C1 + 2)) "$C2" "chunks after VM 2 (two changed chunks)"
"$RAW" export "$R" "$ID2" vdb "$W/out.raw"
cmp "$W/rand2.raw" "$W/out.raw" || tb_fail "VM 2 vdb exported differs"

tb_step "virtrepo snapshots, text and --json"
out=$("$VIRTREPO" snapshots "$R")
grep -q "^$ID1 .*vm1 .*copy .*vda,vdb,vdc" <<<"$out" || tb_fail "snapshots lacks $ID1: $out"
grep -q "^$ID2 .*vm2 .*copy .*vda,vdb" <<<"$out" || tb_fail "snapshots lacks $ID2: $out"
"$VIRTREPO" snapshots "$R" --json >"$W/s.json"
# sorted by id: time to the second, then random (two imports in one second may come in
# either order)
jq -e --arg a "$ID1" --arg b "$ID2" --arg u "$UUID1" '
    length == 2 and (map(.id) == (map(.id) | sort)) and (map(.id) | sort) == ([$a, $b] | sort)
    and (.[] | select(.id == $a) | .vm == "vm1" and .uuid == $u and .level == "copy"
         and [.disks[].target] == ["vda", "vdb", "vdc"])
    and (.[] | select(.id == $b) | (.time | test("^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}[+-][0-9]{2}:[0-9]{2}$"))
         and .disks[1].bytes_read == 10498105)' "$W/s.json" >/dev/null ||
    tb_fail "snapshots --json: $(cat "$W/s.json")"
tb_assert_eq "$ID2" "$("$VIRTREPO" snapshots "$R" --vm vm2 --json | jq -r '.[].id')" "--vm vm2"

tb_step "check and verify pass on the sound repository"
"$VIRTREPO" check "$R" >"$W/check.out" || tb_fail "check failed: $(cat "$W/check.out")"
"$VIRTREPO" -q verify "$R" >"$W/verify.out" || tb_fail "verify failed: $(cat "$W/verify.out")"
grep -q "verify: 2 snapshots, 16 chunks: ok" "$W/verify.out" || tb_fail "verify: $(cat "$W/verify.out")"

tb_step "a missing chunk: check and verify exit 1 naming both snapshots that use it"
SHARED=$(chunk_key "$W/rand.raw" 0)
mv "$R/$SHARED" "$W/aside"
rc=0
"$VIRTREPO" check "$R" >"$W/check.out" || rc=$?
tb_assert_eq 1 "$rc" "check exit status with a chunk missing"
for id in "$ID1" "$ID2"; do
    grep -q "^damaged snapshot $id " "$W/check.out" || tb_fail "check does not name $id: $(cat "$W/check.out")"
done
grep -q "chunk ${SHARED##*/}: missing" "$W/check.out" || tb_fail "check does not name the chunk: $(cat "$W/check.out")"
rc=0
"$VIRTREPO" -q verify "$R" >"$W/verify.out" || rc=$?
tb_assert_eq 1 "$rc" "verify exit status with a chunk missing"
grep -c "^damaged snapshot " "$W/verify.out" | grep -qx 2 || tb_fail "verify: $(cat "$W/verify.out")"
tb_expect_fail "export of a disk with a missing chunk" "$RAW" export "$R" "$ID1" vdb "$W/out.raw"
mv "$W/aside" "$R/$SHARED"

tb_step "a flipped payload byte: check passes (headers only), verify names chunk and snapshot"
ONLY2=$(chunk_key "$W/rand2.raw" 3)
byte=$(od -An -tu1 -j100 -N1 "$R/$ONLY2" | tr -d ' ')
# shellcheck disable=SC2059 # the format is the octal escape of the complemented byte
printf "\\$(printf %03o $((255 - byte)))" | dd of="$R/$ONLY2" bs=1 seek=100 conv=notrunc status=none
"$VIRTREPO" check "$R" >"$W/check.out" || tb_fail "check must pass (no data read): $(cat "$W/check.out")"
rc=0
"$VIRTREPO" -q verify "$R" >"$W/verify.out" || rc=$?
tb_assert_eq 1 "$rc" "verify exit status with a flipped byte"
grep -q "^damaged snapshot $ID2 " "$W/verify.out" || tb_fail "verify does not name $ID2: $(cat "$W/verify.out")"
grep -q "^damaged snapshot $ID1 " "$W/verify.out" && tb_fail "verify names $ID1, which does not use the chunk"
grep -q "chunk ${ONLY2##*/}: " "$W/verify.out" || tb_fail "verify does not name the chunk: $(cat "$W/verify.out")"
"$VIRTREPO" -q verify "$R" --snapshot "$ID1" >/dev/null || tb_fail "verify --snapshot $ID1 must pass"
tb_expect_fail "export through a flipped byte" "$RAW" export "$R" "$ID2" vdb "$W/out.raw"

tb_step "forget removes a manifest"
"$VIRTREPO" forget "$R" "$ID2"
[ ! -e "$R/snapshots/$UUID2/$ID2.json" ] || tb_fail "manifest of $ID2 still there"
tb_assert_eq "$ID1" "$("$VIRTREPO" snapshots "$R" --json | jq -r '.[].id')" "snapshots after forget"
tb_expect_fail "forget of an unknown id" "$VIRTREPO" forget "$R" "$ID2"
"$VIRTREPO" -q verify "$R" >/dev/null || tb_fail "verify after forgetting the damaged snapshot"

tb_step "kill -9 of an import midway: no manifest, check passes, a new import works"
head -c $((16 * MiB)) /dev/urandom >"$W/big.raw"
before=$(nchunks)
REPO_RAW_SLOW_MS=300 "$RAW" import "$R" vm3 $UUID3 vda="$W/big.raw" >/dev/null 2>&1 &
pid=$!
chunks_grew() { [ "$(nchunks)" -gt $((before + 2)) ]; }
tb_wait_for "$pid" chunks_grew || tb_fail "the import put no chunks"
kill -9 $pid
wait $pid 2>/dev/null || true
mid=$(nchunks)
[ "$mid" -lt $((before + 16)) ] || tb_fail "the import finished before it was killed"
[ ! -d "$R/snapshots/$UUID3" ] || [ -z "$(ls -A "$R/snapshots/$UUID3")" ] ||
    tb_fail "a killed import left a manifest: $(ls "$R/snapshots/$UUID3")"
tb_assert_eq 1 "$("$VIRTREPO" snapshots "$R" --json | jq length)" "snapshots after the killed import"
"$VIRTREPO" check "$R" >"$W/check.out" || tb_fail "check after kill -9: $(cat "$W/check.out")"
ID3=$("$RAW" import "$R" vm3 $UUID3 vda="$W/big.raw")
"$RAW" export "$R" "$ID3" vda "$W/out.raw"
cmp "$W/big.raw" "$W/out.raw" || tb_fail "vm3 exported after the retry differs"
tb_assert_eq $((before + 16)) "$(nchunks)" "chunks after the retry (each stored once)"
"$VIRTREPO" -q verify "$R" >/dev/null || tb_fail "verify after the retry"

tb_pass "repository: import/export identical, dedup across VMs, snapshots, check, verify, forget, kill -9"
