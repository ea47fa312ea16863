#!/bin/bash
# Instant boot time: how long after `virtmap --boot` starts the lab guest (a real Debian
# kernel, tests/lib/lab-bootdisk.sh, BIOS, TCG) reaches its init on the served disk, served
# from a backup directory and from a repository snapshot of the same disk (virtrepo init's
# defaults). Both backups are copies (-l copy: no checkpoint) of the VM while shut off. Each
# round boots from each, alternating which goes first; a boot's time runs from the start
# of virtmap to the moment the OS's "@@vb-os init" line is in its console log (polled every
# 50 ms), and to virtmap's exit after the OS powered off. Prints one line per boot and the
# medians, and writes them as JSON to OUT.
#
#   sudo bench/map-boot-time.sh [OUT.json]     (BOOT_ROUNDS=N, default 3)
# Needs what the lab-guest tests need (scripts/install-deps.sh); run alone (flock -x
# /tmp/vb-libvirtd.lock): the boot of a TCG guest is CPU-bound.
set -euo pipefail
VB_SOURCE_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
export VB_SOURCE_DIR
source "$VB_SOURCE_DIR/tests/lib/testbed.sh"
source "$VB_SOURCE_DIR/tests/lib/chain.sh"
source "$VB_SOURCE_DIR/tests/lib/labguest.sh"
source "$VB_SOURCE_DIR/tests/lib/lab-bootdisk.sh"
OUT_JSON=$(realpath -m "${1:-$VB_SOURCE_DIR/bench/results/map-boot-time.json}")
tb_init
bd_init
export PATH="/usr/bin:$PATH"
VIRTMAP="$VB_BUILD_DIR/src/map/virtmap"
VIRTREPO="$VB_BUILD_DIR/src/virtrepo/virtrepo"
W=$TB_WORKDIR
export TMPDIR=$W/tmp
mkdir -p "$TMPDIR"

dom="vbtest-$$-boot"
bd_make_disk bios "$W/bios.raw" "boot-time-$$"
qemu-img convert -O qcow2 -o compat=1.1 "$W/bios.raw" "$W/bios.qcow2"
chown --reference="$W" "$W/bios.qcow2"
rm -f "$W/bios.raw"
bd_define "$dom" bios "$W/bios.qcow2" "$W/orig-console.log"
vb_backup -d "$dom" -l copy -o "$W/dir"
"$VIRTREPO" init "$W/repo" >/dev/null
vb_backup -d "$dom" -l copy -o "$W/repo"

now_ms() { date +%s%3N; }
# boot KIND: one boot from the directory or the repository; prints "INIT_MS END_MS"
boot() {
    local kind=$1 input=$W/$1 console=$W/$1-console.log name="vbtest-$$-$1-booted" t0 t_init="" pid
    rm -f "$console"
    t0=$(now_ms)
    "$VIRTMAP" -d none -i "$input" --boot --name "$name" --console-log "$console" \
        >/dev/null 2>"$W/$kind-virtmap.log" &
    pid=$!
    while kill -0 $pid 2>/dev/null; do
        if [ -z "$t_init" ] && grep -aq "@@vb-os init" "$console" 2>/dev/null; then
            t_init=$(now_ms)
        fi
        sleep 0.05
    done
    wait $pid || tb_fail "$kind: virtmap --boot exited $?: $(tail -3 "$W/$kind-virtmap.log")"
    [ -n "$t_init" ] || tb_fail "$kind: the guest never reached its init: $(tail -5 "$console")"
    echo "$((t_init - t0)) $(($(now_ms) - t0))"
}

rounds=${BOOT_ROUNDS:-3}
: >"$W/times"
for ((r = 1; r <= rounds; r++)); do
    order=(dir repo)
    [ $((r % 2)) = 1 ] || order=(repo dir)
    for kind in "${order[@]}"; do
        read -r init end <<<"$(boot "$kind")"
        tb_log "round $r, $kind: init after ${init} ms, virtmap ended after ${end} ms"
        echo "$kind $r $init $end" >>"$W/times"
    done
done
jq -R -s --arg rounds "$rounds" '
    [split("\n")[] | select(length > 0) | split(" ")
     | {input: .[0], round: (.[1] | tonumber), init_ms: (.[2] | tonumber), end_ms: (.[3] | tonumber)}]
    | def median: sort | if length == 0 then null else .[length / 2 | floor] end;
      {what: "virtmap --boot to the lab guest'"'"'s init (BIOS, TCG), backup directory vs repository snapshot",
       rounds: ($rounds | tonumber), boots: .,
       median_init_ms: {dir: ([.[] | select(.input == "dir") | .init_ms] | median),
                        repo: ([.[] | select(.input == "repo") | .init_ms] | median)},
       median_end_ms: {dir: ([.[] | select(.input == "dir") | .end_ms] | median),
                       repo: ([.[] | select(.input == "repo") | .end_ms] | median)}}' \
    "$W/times" >"$OUT_JSON"
jq -c '.median_init_ms, .median_end_ms' "$OUT_JSON"
tb_log "written $OUT_JSON"
