#!/bin/bash
# Restores of the reference's 4 GiB chains, with throughput and memory logged side by side
# (informal figures: the targets on time and RSS are bench/'s, measured there on a quiet
# machine; here a neighbour's load would decide them). What fails the test: a result that
# differs from the source, and a peak RSS (virtrestore's or its qemu-nbd's) of more than
# 512 MiB, half the default disk's data: only a restore that holds the data in memory gets
# there (a correct one stays below 100 MiB; sanitizer builds are not checked):
#   - virtnbdrestore 1.9.15 (the reference) and virtrestore, plain and compressed (-z) full
#     backups made by the reference of a 4 GiB disk with ~1 GiB of random data;
#   - the practical limit: nbdcopy from a raw image of the same content into the same kind
#     of target (a fresh qcow2 behind qemu-nbd -e 4).
# Every result is compared with the source image. VB_BENCH_SIZE / VB_BENCH_PERCENT change
# the disk.
set -euo pipefail

source "$(dirname "${BASH_SOURCE[0]}")/../lib/testbed.sh"
tb_init

VR="$VB_BUILD_DIR/src/restore/virtrestore"
[ -x "$VR" ] || tb_fail "$VR not built"
W="$TB_WORKDIR"
SIZE="${VB_BENCH_SIZE:-4G}"
PERCENT="${VB_BENCH_PERCENT:-25}"
DOM="vbtest-$$-bench"
IMG="$W/bench-vda.qcow2"

tb_step "source disk: $SIZE, $PERCENT% random data"
nbdkit -U - sparse-random "$SIZE" percent="$PERCENT" seed=42 random-content=true \
    --run "qemu-img convert -O qcow2 -o compat=1.1 \"\$uri\" $IMG"
chown libvirt-qemu:kvm "$IMG" 2>/dev/null || true
cat >"$W/bench.xml" <<XML
<domain type='$(tb_domain_type)'>
  <name>$DOM</name>
  <memory unit='MiB'>128</memory>
  <vcpu>1</vcpu>
  <os><type arch='x86_64'>hvm</type></os>
  <devices>
    <disk type='file' device='disk'>
      <driver name='qemu' type='qcow2'/>
      <source file='$IMG'/>
      <target dev='vda' bus='virtio'/>
    </disk>
    <graphics type='vnc' listen='127.0.0.1' autoport='yes'/>
  </devices>
</domain>
XML
tb_virsh define "$W/bench.xml" >/dev/null
tb_virsh start --paused "$DOM" >/dev/null
virtnbdbackup -d "$DOM" -l full -o "$W/B" -S "$W" -f "$W/b.sock" -n >/dev/null 2>&1 ||
    tb_fail "reference full backup failed"
virtnbdbackup -d "$DOM" -l full -o "$W/BZ" -S "$W" -f "$W/b.sock" -n -z >/dev/null 2>&1 ||
    tb_fail "reference compressed full backup failed"
tb_virsh destroy "$DOM" >/dev/null
qemu-img convert -O raw "$IMG" "$W/src.raw"
DATA=$(qemu-img map --output=json "$IMG" | jq '[.[] | select(.data) | .length] | add')
tb_log "allocated data: $DATA bytes; backup sizes: $(du -sh "$W/B" "$W/BZ" | awk '{print $1}' | xargs)"

timeit() { # timeit VAR CMD...: wall seconds (page cache dropped first) into VAR, peak RSS
    # in MiB (of the command and the children it waited for) into VAR_rss
    local var="$1" s e
    shift
    sync
    echo 3 >/proc/sys/vm/drop_caches 2>/dev/null || true
    s=$(date +%s.%N)
    /usr/bin/time -o "$W/last.time" -f %M "$@" >/dev/null 2>"$W/last.err" || {
        cat "$W/last.err" >&2
        tb_fail "$* failed"
    }
    e=$(date +%s.%N)
    printf -v "$var" '%.2f' "$(echo "$e - $s" | bc)"
    printf -v "${var}_rss" '%d' "$(($(tail -1 "$W/last.time") / 1024))"
    tb_log "$(basename "$1"): ${!var} s, peak RSS $(($(tail -1 "$W/last.time") / 1024)) MiB"
}

check() {
    local r
    r=$(qemu-img compare -f qcow2 -F qcow2 "$1" "$IMG" 2>&1) || tb_fail "$1 differs: $r"
}

tb_step "nbdcopy raw -> qemu-nbd -e 4 qcow2 (the practical limit)"
qemu-img create -q -f qcow2 "$W/nc.qcow2" "$SIZE"
qemu-nbd -t -e 4 --cache=writeback -f qcow2 -k "$W/nc.sock" "$W/nc.qcow2" &
NBDPID=$!
tb_on_exit "kill $NBDPID"
for _ in $(seq 100); do [ -S "$W/nc.sock" ] && break; sleep 0.05; done
timeit t_nbdcopy nbdcopy --target-is-zero "$W/src.raw" "nbd+unix:///?socket=$W/nc.sock"
kill "$NBDPID"
wait "$NBDPID" || true
check "$W/nc.qcow2"

tb_step "plain chain"
timeit t_ref virtnbdrestore -n -i "$W/B" -o "$W/R1"
timeit t_our "$VR" -n -i "$W/B" -o "$W/R2"
check "$W/R1/bench-vda.qcow2"
check "$W/R2/bench-vda.qcow2"

tb_step "compressed chain"
timeit t_refz virtnbdrestore -n -i "$W/BZ" -o "$W/R3"
timeit t_ourz "$VR" -n -i "$W/BZ" -o "$W/R4"
check "$W/R3/bench-vda.qcow2"
check "$W/R4/bench-vda.qcow2"

mbs() { echo "scale=0; $DATA / 1048576 / $1" | bc; }
tb_log "RESULT data=$((DATA / 1048576)) MiB: nbdcopy ${t_nbdcopy}s ($(mbs "$t_nbdcopy") MiB/s)"
tb_log "RESULT plain: virtnbdrestore ${t_ref}s ($(mbs "$t_ref") MiB/s, ${t_ref_rss} MiB RSS), virtrestore ${t_our}s ($(mbs "$t_our") MiB/s, ${t_our_rss} MiB RSS)"
tb_log "RESULT lz4:   virtnbdrestore ${t_refz}s ($(mbs "$t_refz") MiB/s, ${t_refz_rss} MiB RSS), virtrestore ${t_ourz}s ($(mbs "$t_ourz") MiB/s, ${t_ourz_rss} MiB RSS)"
# memory that grows with the data: a bound no streaming restore comes near (see the top)
RSS_BOUND=512
if grep -q '^VB_SANITIZE:BOOL=ON' "$VB_BUILD_DIR/CMakeCache.txt" 2>/dev/null; then
    tb_log "sanitizer build: peak RSS not checked"
elif [ "$t_our_rss" -gt "$RSS_BOUND" ] || [ "$t_ourz_rss" -gt "$RSS_BOUND" ]; then
    tb_fail "virtrestore peak RSS ${t_our_rss} / ${t_ourz_rss} MiB (plain / lz4) exceeds $RSS_BOUND MiB: the data is held in memory"
fi
tb_pass "restore_bench"
