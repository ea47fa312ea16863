#!/bin/bash
# A saved overlay belongs to the backup it was made for: an overlay written through virtmap
# on one VM's backup is refused on another VM's backup of the same disk name and size (a
# full chain, and raw .copy.data images), with one line naming both (checkpoint and date of
# each, or the raw images' samples); the other VM served with a fresh overlay shows none of
# the first one's data.
set -euo pipefail
source "$(dirname "$0")/../lib/testbed.sh"
source "$(dirname "$0")/../lib/chain.sh"
tb_init
source "$(dirname "$0")/../lib/map_overlay.sh"
W=$TB_WORKDIR

tb_create_domain a 64M
tb_qemu_io "$TB_DOMAIN" vda "write -P 0x5a 0 8M"
vb_backup -d "$TB_DOMAIN" -l full -o "$W/a"
tb_snapshot_image "$TB_DOMAIN" vda "$W/a.raw"

tb_step "another VM's backup (same disk name and size) refuses the first VM's overlay"
tb_create_domain b 64M
DOMB=$TB_DOMAIN
tb_qemu_io "$DOMB" vda "write -P 0xb1 0 8M"
vb_backup -d "$DOMB" -l full -o "$W/b"
tb_snapshot_image "$DOMB" vda "$W/b.raw"
OVL=$W/ovl-a
start_map -i "$W/a" --overlay "$OVL"
nbdsh -u "$URI" -c 'h.pwrite(b"\xee" * 65536, 1 << 20); h.flush()' || tb_fail "write on vm a"
stop_map
date_a=$("$STREAM_CHECK" "$W/a/vda.full.data" | jq -r .meta.date)
date_b=$("$STREAM_CHECK" "$W/b/vda.full.data" | jq -r .meta.date)
rc=0
out=$("$VIRTMAP" -d none --socket "$SOCK" -i "$W/b" --overlay "$OVL" --run true 2>&1) || rc=$?
tb_assert_eq 1 "$rc" "exit status serving vm b with vm a's overlay"
if ! grep -q "belongs to another chain or point in time" <<<"$out" ||
    ! grep -qF "$date_a" <<<"$out" || ! grep -qF "$date_b" <<<"$out"; then
    tb_fail "the refusal does not name both backups ($date_a, $date_b): $out"
fi
tb_log "refused as expected: $out"
"$VIRTMAP" -d none --socket "$SOCK" -i "$W/b" --overlay "$W/ovl-b" \
    --run "qemu-img compare -f raw -F raw \"\$uri\" '$W/b.raw'" 2>>"$W/map.log" ||
    tb_fail "vm b with a fresh overlay differs from vm b's disk"

tb_step "raw .copy.data images of two VMs (same name and size): the overlay is refused"
mkdir -p "$W/ra" "$W/rb"
cp --sparse=always "$W/a.raw" "$W/ra/vda.copy.data"
cp --sparse=always "$W/b.raw" "$W/rb/vda.copy.data"
OVL=$W/ovl-ra
"$VIRTMAP" -d none --socket "$SOCK" -f "$W/ra/vda.copy.data" -e vda --overlay "$OVL" \
    --run "nbdsh -u \"\$uri\" -c 'h.pwrite(b\"\\xee\" * 4096, 0); h.flush()'" 2>>"$W/map.log" ||
    tb_fail "write on the raw image of vm a"
rc=0
out=$("$VIRTMAP" -d none --socket "$SOCK" -f "$W/rb/vda.copy.data" -e vda --overlay "$OVL" \
    --run true 2>&1) || rc=$?
tb_assert_eq 1 "$rc" "exit status serving vm b's raw image with vm a's overlay"
grep -q "belongs to another chain or point in time: .*raw image, sample crc32 .*raw image" \
    <<<"$out" ||
    tb_fail "the refusal does not name both raw images: $out"
tb_log "refused as expected: $out"

tb_pass "an overlay is refused on another VM's backup, naming both"
