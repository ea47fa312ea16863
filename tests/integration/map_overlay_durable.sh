#!/bin/bash
# virtmap --overlay DIR keeps what it acknowledged: a FUA write or a flush that virtmap
# acknowledged survives kill -9. The issue's case (X at 0 flushed, Y at 4096 with FUA, kill
# -9: 4096 reads Y), then 6 rounds of random writes and zeroes (aligned and not, some with
# FUA) and flushes through a real NBD client, killed at a random point, each round checked
# sector by sector against the journal of what was acknowledged, with untouched regions
# still reading the backup. A second virtmap on an overlay in use, a damaged map and one of
# the older format are refused with one line naming the file.
set -euo pipefail
source "$(dirname "$0")/../lib/testbed.sh"
source "$(dirname "$0")/../lib/chain.sh"
tb_init
source "$(dirname "$0")/../lib/map_overlay.sh"
W=$TB_WORKDIR

tb_create_domain a 64M
DOMA=$TB_DOMAIN
tb_qemu_io "$DOMA" vda "write -P 0x5a 0 8M"
tb_qemu_io "$DOMA" vda "write -P 0x5b 32M 4M"
tb_qemu_io "$DOMA" vda "write -P 0x5c 48M 4M" # never written through virtmap below
vb_backup -d "$DOMA" -l full -o "$W/a"
tb_snapshot_image "$DOMA" vda "$W/a.raw"

tb_step "the issue's case: X at 0 + flush, Y at 4096 with FUA, kill -9: 4096 reads Y"
OVL=$W/ovl-repro
start_map -i "$W/a" --overlay "$OVL"
$MAP_CLIENT repro "$URI" || tb_fail "the writes failed"
kill9_map
start_map -i "$W/a" --overlay "$OVL"
$MAP_CLIENT repro-check "$URI" || tb_fail "an acknowledged FUA write was lost by kill -9"
stop_map

tb_step "random FUA writes, zeroes and flushes, kill -9 at a random point, 6 rounds"
OVL=$W/ovl-random
cp "$W/a.raw" "$W/base.raw"
LIMIT=$((40 << 20))
for round in 1 2 3 4 5 6; do
    start_map -i "$W/a" --overlay "$OVL"
    rm -f "$W/ready"
    $MAP_CLIENT random "$URI" "$W/journal.$round" "$round$RANDOM" "$W/ready" $LIMIT \
        >"$W/client.$round.log" 2>&1 &
    CLIENTS=($!)
    wait_file "$W/ready" "round $round"
    sleep "0.$((RANDOM % 10))$((RANDOM % 10))"
    kill9_map
    wait "${CLIENTS[0]}" || true
    CLIENTS=()
    tb_log "round $round: killed after $(grep -c '^ack' "$W/journal.$round") acknowledged" \
        "requests; $(cat "$W/client.$round.log")"
    start_map -i "$W/a" --overlay "$OVL"
    $MAP_CLIENT random-check "$URI" "$W/journal.$round" "$W/base.raw" "$W/state.raw" ||
        tb_fail "round $round: acknowledged data lost after kill -9"
    mv "$W/state.raw" "$W/base.raw"
    stop_map
done
cmp -s <(tail -c +$((LIMIT + 1)) "$W/base.raw") <(tail -c +$((LIMIT + 1)) "$W/a.raw") ||
    tb_fail "the region no request touched does not read the backup"
no_temporaries "$OVL"

tb_step "a second virtmap on an overlay in use is refused; the first one goes on"
start_map -i "$W/a" --overlay "$OVL"
rc=0
out=$("$VIRTMAP" -d none --socket "$W/other.sock" -i "$W/a" --overlay "$OVL" --run true 2>&1) ||
    rc=$?
tb_assert_eq 1 "$rc" "exit status of a second virtmap on one overlay"
grep -qF "$OVL/vda.overlay: in use by another virtmap" <<<"$out" || tb_fail "no clear refusal: $out"
nbdsh -u "$URI" -c 'h.pwrite(b"\x42" * 4096, 0, nbd.CMD_FLAG_FUA)' || tb_fail "the first one stopped"
stop_map

tb_step "a damaged map is refused with one line naming it"
MAP=$W/ovl-random/vda.overlay.map
printf '\xff' | dd of="$MAP" bs=1 seek=$(($(stat -c %s "$MAP") / 2)) conv=notrunc status=none
rc=0
out=$("$VIRTMAP" -d none --socket "$SOCK" -i "$W/a" --overlay "$W/ovl-random" --run true 2>&1) ||
    rc=$?
tb_assert_eq 1 "$rc" "exit status with a damaged map"
grep -qF "$MAP: damaged" <<<"$out" || tb_fail "the refusal does not name the map: $out"
tb_log "refused as expected: $out"

tb_step "a map of the older format (VBOVMAP1) is refused, saying so"
mkdir -p "$W/ovl-old"
printf 'VBOVMAP1\0\0\0\0\0\0\0\0' >"$W/ovl-old/vda.overlay.map"
rc=0
out=$("$VIRTMAP" -d none --socket "$SOCK" -i "$W/a" --overlay "$W/ovl-old" --run true 2>&1) || rc=$?
tb_assert_eq 1 "$rc" "exit status with an old-format map"
grep -qF "$W/ovl-old/vda.overlay.map: an overlay map of an older virtmap" <<<"$out" ||
    tb_fail "the refusal does not say what is wrong: $out"
tb_log "refused as expected: $out"

tb_pass "acknowledged FUA writes and flushes survive kill -9; damaged maps are refused"
