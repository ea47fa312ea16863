#!/bin/bash
# virtrepo stats (virtrepo(1), STATS): three running domains backed up into one repository of
# 1 MiB chunks: a (16 MiB; 4 MiB of one pattern, 1 MiB of another) twice, b (a's data and
# 1 MiB of its own) and c (8 MiB; data of its own). The figures are checked exactly: the
# snapshots and logical bytes per VM (also against virtrepo snapshots --json), the bytes in
# chunks that are not all-zero, the distinct chunks each VM uses and those only it uses (a
# none, b its one MiB, c its two chunks, with their objects' sizes on disk), the store's
# objects and bytes (against the files of the repository), the ratios from those figures and
# against what the backups reported (bytes_new, bytes_stored); the table names every VM. After
# c's snapshot is forgotten its chunks are counted as unused, their bytes what stats said
# only c used. A repository of 1280 chunks (more than a page of the store's listing) counts
# them all.
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
M=1048576

# bytes_of FILE...: the sum of their sizes
bytes_of() { stat -c %s "$@" | awk '{ s += $1 } END { print s + 0 }'; }
# chunk DIGEST: the object of the chunk
chunk() { echo "$R/chunks/${1:0:2}/$1"; }
# pattern_digest BYTE: the SHA-256 of 1 MiB of that byte (octal escape for tr)
pattern_digest() { head -c $M /dev/zero | tr '\0' "\\$1" | sha256sum | cut -d' ' -f1; }
# stats_json: virtrepo stats --json, checked to succeed
stats_json() {
    "$VIRTREPO" stats "$R" --json >"$W/stats.json" 2>"$W/stats.err" ||
        tb_fail "virtrepo stats --json: $(cat "$W/stats.err")"
    cat "$W/stats.json"
}
# vm_field NAME FIELD: a VM's figure from the last stats_json
vm_field() { jq -r --arg n "$1" --arg f "$2" '.vms[] | select(.name == $n) | .[$f]' "$W/stats.json"; }
total() { jq -r --arg f "$1" '.total[$f]' "$W/stats.json"; }

tb_step "three domains: a, b (a's data and a MiB of its own), c (data of its own)"
tb_create_domain a 16M
A=$TB_DOMAIN
tb_create_domain b 16M
B=$TB_DOMAIN
tb_create_domain c 8M
C=$TB_DOMAIN
for dom in "$A" "$B"; do
    tb_qemu_io "$dom" vda "write -P 0x5a 0 4M"
    tb_qemu_io "$dom" vda "write -P 0x11 8M 1M"
done
tb_qemu_io "$B" vda "write -P 0x99 12M 1M"
tb_qemu_io "$C" vda "write -P 0x21 0 2M"
tb_qemu_io "$C" vda "write -P 0x22 4M 1M"
D_B=$(pattern_digest 231) # 0x99
D_C1=$(pattern_digest 041) # 0x21
D_C2=$(pattern_digest 042) # 0x22

tb_step "a full and a copy of a, a full of b and of c into one repository"
"$VIRTREPO" init "$R" --chunk-size 1M >/dev/null
vb_backup -d "$A" -l full -o "$R"
vb_backup -d "$A" -l copy -o "$R"
vb_backup -d "$B" -l full -o "$R"
vb_backup -d "$C" -l full -o "$R"
for d in "$D_B" "$D_C1" "$D_C2"; do
    [ -f "$(chunk "$d")" ] || tb_fail "no chunk $d in the repository"
done
"$VIRTREPO" snapshots "$R" --json >"$W/snapshots.json"

tb_step "per VM: snapshots, logical and non-zero bytes, chunks, the chunks only it uses"
stats_json >/dev/null
tb_log "stats: $(jq -c . "$W/stats.json")"
tb_assert_eq "$(total vms)" 3 "VMs"
jq -e '[.vms[].name] == ([.vms[].name] | sort)' "$W/stats.json" >/dev/null ||
    tb_fail "the VMs are not sorted by name: $(jq -c '[.vms[].name]' "$W/stats.json")"
for vm in "$A" "$B" "$C"; do
    tb_assert_eq "$(vm_field "$vm" logical_bytes)" \
        "$(jq --arg n "$vm" '[.[] | select(.vm == $n) | .disks[].virtual_size] | add' \
            "$W/snapshots.json")" "$vm's logical bytes against virtrepo snapshots"
done
# name: snapshots logical nonzero chunks exclusive_chunks exclusive_raw_bytes
row() {
    local f out=""
    for f in snapshots logical_bytes nonzero_bytes chunks exclusive_chunks exclusive_raw_bytes; do
        out+="$(vm_field "$1" "$f") "
    done
    echo "$out"
}
tb_assert_eq "$(row "$A")" "2 $((32 * M)) $((10 * M)) 2 0 0 " "a's figures"
tb_assert_eq "$(row "$B")" "1 $((16 * M)) $((6 * M)) 3 1 $M " "b's figures"
tb_assert_eq "$(row "$C")" "1 $((8 * M)) $((3 * M)) 2 2 $((2 * M)) " "c's figures"
tb_assert_eq "$(vm_field "$A" exclusive_stored_bytes)" 0 "a's exclusive stored bytes"
tb_assert_eq "$(vm_field "$B" exclusive_stored_bytes)" "$(bytes_of "$(chunk "$D_B")")" \
    "b's exclusive stored bytes (its chunk's object)"
c_only=$(bytes_of "$(chunk "$D_C1")" "$(chunk "$D_C2")")
tb_assert_eq "$(vm_field "$C" exclusive_stored_bytes)" "$c_only" \
    "c's exclusive stored bytes (its chunks' objects)"

tb_step "totals: the store's objects and bytes, the ratios, what the backups reported"
chunk_files=("$R"/chunks/*/*)
index_files=("$R"/indexes/*)
manifest_files=("$R"/snapshots/*/*.json)
t_line=""
for f in snapshots logical_bytes nonzero_bytes chunks chunks_used used_raw_bytes \
    chunks_unused chunks_missing indexes manifests; do
    t_line+="$(total "$f") "
done
tb_assert_eq "$t_line" "4 $((56 * M)) $((19 * M)) 5 5 $((5 * M)) 0 0 ${#index_files[@]} 4 " \
    "the totals"
tb_assert_eq "${#chunk_files[@]}" 5 "chunk objects in the repository"
tb_assert_eq "$(total chunk_bytes)" "$(bytes_of "${chunk_files[@]}")" "chunk bytes"
tb_assert_eq "$(total used_stored_bytes)" "$(bytes_of "${chunk_files[@]}")" "used stored bytes"
tb_assert_eq "$(total index_bytes)" "$(bytes_of "${index_files[@]}")" "index bytes"
tb_assert_eq "$(total manifest_bytes)" "$(bytes_of "${manifest_files[@]}")" "manifest bytes"
tb_assert_eq "$(total stored_bytes)" \
    "$(bytes_of "${chunk_files[@]}" "${index_files[@]}" "${manifest_files[@]}")" "stored bytes"
jq -e '.total | .dedup_ratio == .nonzero_bytes / .used_raw_bytes
        and .compression_ratio == .used_raw_bytes / .used_stored_bytes
        and .dedup_ratio > 3.79 and .dedup_ratio < 3.81 and .compression_ratio > 1' \
    "$W/stats.json" >/dev/null || tb_fail "the ratios: $(jq -c .total "$W/stats.json")"
# each chunk was new to exactly one backup, which reported its content and object bytes
tb_assert_eq "$(jq '[.[].disks[].bytes_new] | add' "$W/snapshots.json")" \
    "$(total used_raw_bytes)" "the backups' bytes_new against the used content bytes"
tb_assert_eq "$(jq '[.[].disks[].bytes_stored] | add' "$W/snapshots.json")" \
    "$(total used_stored_bytes)" "the backups' bytes_stored against the used stored bytes"
tb_log "deduplication $(total dedup_ratio), compression $(total compression_ratio)"

tb_step "the table: a row per VM, the ratios"
"$VIRTREPO" stats "$R" >"$W/stats.txt" 2>&1 || tb_fail "virtrepo stats: $(cat "$W/stats.txt")"
cat "$W/stats.txt" >&2
for vm in "$A" "$B" "$C"; do
    grep -qE "^$vm +[0-9a-f-]{36} +[0-9]+ " "$W/stats.txt" || tb_fail "no row of $vm"
done
grep -qE "^deduplication: +3\.80x" "$W/stats.txt" || tb_fail "the table's deduplication ratio"

tb_step "c forgotten: its chunks unused, their bytes what stats said only c used"
"$VIRTREPO" forget "$R" "$(jq -r --arg n "$C" '.[] | select(.vm == $n) | .id' \
    "$W/snapshots.json")" >/dev/null
stats_json >/dev/null
tb_assert_eq "$(total vms) $(total chunks) $(total chunks_used) $(total chunks_unused)" \
    "2 5 3 2" "VMs and chunks after the forget"
tb_assert_eq "$(total unused_bytes)" "$c_only" "unused bytes after the forget"
tb_assert_eq "$(total nonzero_bytes)" "$((16 * M))" "non-zero bytes after the forget"

tb_step "a repository of more chunks than one page of the store's listing"
# 80 MiB of random data in 64 KiB chunks: 1280 objects, the local store lists 1000 at a time
RAW=$(tb_tool repo-raw)
P=$W/paged
head -c $((80 * M)) /dev/urandom >"$W/random.raw"
"$VIRTREPO" init "$P" --chunk-size 64K >/dev/null
"$RAW" import "$P" vbtest-paged 7f0a6c1e-0000-4000-8000-0000000000bb vda="$W/random.raw" \
    >/dev/null 2>&1
"$VIRTREPO" stats "$P" --json >"$W/paged.json" || tb_fail "virtrepo stats of $P"
paged=("$P"/chunks/*/*)
tb_assert_eq "$(jq -r '.total | "\(.chunks) \(.chunks_used) \(.chunk_bytes)"' "$W/paged.json")" \
    "1280 1280 $(bytes_of "${paged[@]}")" "chunks, used chunks and chunk bytes of $P"

tb_pass "virtrepo stats: per VM, in total, exclusive chunks and ratios"
