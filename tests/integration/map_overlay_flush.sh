#!/bin/bash
# Concurrent flushes through virtmap --overlay (multi-conn): 3 connections doing write +
# flush 150 times each: no flush fails and every write is there; then with kill -9 in the
# middle of a longer run: every write whose flush was acknowledged is there after a restart
# (a flush covers what completed before it, whatever another connection's flush is doing);
# no temporary files are left in the overlay directory.
set -euo pipefail
source "$(dirname "$0")/../lib/testbed.sh"
source "$(dirname "$0")/../lib/chain.sh"
tb_init
source "$(dirname "$0")/../lib/map_overlay.sh"
W=$TB_WORKDIR

tb_create_domain a 80M
tb_qemu_io "$TB_DOMAIN" vda "write -P 0x5a 0 8M"
vb_backup -d "$TB_DOMAIN" -l full -o "$W/a"

# failed_flushes: the sum of what the clients' logs report
failed_flushes() {
    sed -n 's/^client [0-9]*: \([0-9]*\) of.*/\1/p' "$W"/multi.?.log | awk '{s += $1} END {print s + 0}'
}

start_clients() { # COUNT: 3 clients in the background (CLIENTS)
    for id in 0 1 2; do
        rm -f "$W/multi-ready.$id"
        $MAP_CLIENT multi "$URI" "$W/multi.$id" $id "$1" "$W/multi-ready.$id" >"$W/multi.$id.log" 2>&1 &
        CLIENTS+=($!)
    done
}

tb_step "3 connections, 150 x (write + flush) each: no flush fails, all data there"
OVL=$W/ovl-multi
start_map -i "$W/a" --overlay "$OVL"
start_clients 150
for p in "${CLIENTS[@]}"; do wait "$p" || tb_fail "a client failed: $(cat "$W"/multi.*.log)"; done
CLIENTS=()
cat "$W"/multi.?.log >&2
tb_assert_eq 0 "$(failed_flushes)" "failed flushes of 450"
$MAP_CLIENT multi-check "$URI" 3 150 - || tb_fail "flushed writes missing"
stop_map
no_temporaries "$OVL"

tb_step "the same, killed -9 in the middle: every write whose flush was acknowledged is there"
OVL=$W/ovl-multi-kill
start_map -i "$W/a" --overlay "$OVL"
start_clients 6000
for id in 0 1 2; do wait_file "$W/multi-ready.$id" "client $id"; done
sleep "0.$((RANDOM % 10))"
kill9_map
for p in "${CLIENTS[@]}"; do wait "$p" || true; done
CLIENTS=()
cat "$W"/multi.?.log >&2
tb_assert_eq 0 "$(failed_flushes)" "flushes that failed before the kill"
start_map -i "$W/a" --overlay "$OVL"
$MAP_CLIENT multi-check "$URI" 3 6000 "$W/multi." || tb_fail "flushed writes lost by kill -9"
stop_map

tb_pass "concurrent flushes all succeed and keep what they acknowledged"
