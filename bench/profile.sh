#!/bin/bash
# Where does a virtbackup full backup spend its time? Builds the quick corpus (2 GiB disk,
# ~0.7 GB data) on a throwaway domain and reports, into bench/results/profile.txt:
#   - CPU seconds of the domain's qemu (the NBD server) during nbdcopy and during virtbackup
#     (/proc/PID/stat): shows whether the server, not the client, is the limit;
#   - strace -c -f of virtbackup plain (syscall counts and time);
#   - callgrind of virtbackup -z (top functions by instructions).
# usage: bench/profile.sh   (root; same environment as run.sh; ~3 min)
set -euo pipefail

BENCH_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
VB_SOURCE_DIR="$(cd "$BENCH_DIR/.." && pwd)"
VB_BUILD_DIR="${VB_BUILD_DIR:-$VB_SOURCE_DIR/build}"
BENCH_LIB_DIR="$BENCH_DIR"
# shellcheck source=bench/lib.sh
. "$BENCH_DIR/lib.sh"
# shellcheck source=bench/corpus.sh
. "$BENCH_DIR/corpus.sh"
VIRTBACKUP="$VB_BUILD_DIR/src/backup/virtbackup"
OUT="$BENCH_DIR/results/profile.txt"

VSIZE=2G FS_SIZE=768M FS_TREE=(/usr/include /usr/bin) RAND_OFF=$((1 << 30)) RAND_PERCENT=25
ZERO_RUNS=4 ZERO_LEN=$((8 << 20))

# qemu_cpu PID: user+sys CPU seconds of a process so far.
qemu_cpu() { awk -v hz="$(getconf CLK_TCK)" '{printf "%.2f", ($14 + $15) / hz}' "/proc/$1/stat"; }

# cpu_during LABEL CMD...: wall time of CMD and the CPU the domain's qemu used meanwhile.
cpu_during() {
    local label="$1" before after t0 t1
    shift
    before=$(qemu_cpu "$QPID")
    t0=$(date +%s.%N)
    "$@" >/dev/null 2>&1
    t1=$(date +%s.%N)
    after=$(qemu_cpu "$QPID")
    printf '%-34s wall %5.2f s   qemu (NBD server) CPU %5.2f s\n' "$label" \
        "$(echo "$t1 - $t0" | bc)" "$(echo "$after - $before" | bc)"
}

main() {
    bl_init
    bl_setup_outputs 4
    corpus_main "$BL_WORKDIR/main.qcow2"
    local bytes dom sock
    bytes=$(bl_image_allocated "$BL_WORKDIR/main.qcow2")
    dom=$(bl_create_domain prof "$BL_WORKDIR/main.qcow2")
    QPID=$(pgrep -f "guest=$dom," | head -1)
    cat "$BL_WORKDIR/main.qcow2" >/dev/null
    {
        echo "# profile of virtbackup on a $VSIZE disk with $bytes bytes of data ($(date -u +%FT%TZ))"
        echo
        echo "## NBD server (qemu) CPU while each client reads the whole disk"
        install -d -o root -g kvm -m 0770 "$BL_OUT/job"
        printf "<domainbackup mode='pull'><server transport='unix' socket='%s'/><disks><disk name='vda' backup='yes' type='file'><scratch file='%s'/></disk></disks></domainbackup>" \
            "$BL_OUT/job/nbd.sock" "$BL_OUT/job/scratch.vda" >"$BL_OUT/job/job.xml"
        bl_virsh backup-begin "$dom" "$BL_OUT/job/job.xml" >/dev/null
        sock="$BL_OUT/job/nbd.sock"
        cpu_during "nbdcopy -> file" nbdcopy "nbd+unix:///vda?socket=$sock" "$BL_OUT/x.raw"
        rm -f "$BL_OUT/x.raw"
        cpu_during "nbdcopy -> null:" nbdcopy "nbd+unix:///vda?socket=$sock" null:
        cpu_during "nbdcopy --connections=1 -> null:" nbdcopy --connections=1 "nbd+unix:///vda?socket=$sock" null:
        bl_virsh domjobabort "$dom" >/dev/null
        cpu_during "virtbackup -l copy" "$VIRTBACKUP" -n -d "$dom" -l copy -o "$BL_OUT/a"
        rm -rf "$BL_OUT/a"
        cpu_during "virtbackup -l copy -z" "$VIRTBACKUP" -n -d "$dom" -l copy -z -o "$BL_OUT/a"
        rm -rf "$BL_OUT/a"
        cpu_during "virtnbdbackup -l copy" virtnbdbackup -n -d "$dom" -l copy -o "$BL_OUT/a"
        rm -rf "$BL_OUT/a"
        echo
        echo "## strace -c -f virtbackup -l copy (plain)"
        strace -c -f -o "$BL_WORKDIR/strace.txt" "$VIRTBACKUP" -n -d "$dom" -l copy -o "$BL_OUT/a" >/dev/null 2>&1 || true
        head -n 25 "$BL_WORKDIR/strace.txt"
        rm -rf "$BL_OUT/a"
        echo
        echo "## callgrind virtbackup -l copy -z (instructions, top functions)"
        valgrind --tool=callgrind --callgrind-out-file="$BL_WORKDIR/cg.out" \
            "$VIRTBACKUP" -n -d "$dom" -l copy -z -o "$BL_OUT/a" >/dev/null 2>&1 || true
        callgrind_annotate "$BL_WORKDIR/cg.out" 2>/dev/null | sed -n '/^Ir/,$p' | head -n 25
        rm -rf "$BL_OUT/a"
    } | tee "$OUT"
}

main "$@"
