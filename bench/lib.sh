# shellcheck shell=bash disable=SC2034 # BL_* globals are read by run.sh
# Benchmark library: work dir, throwaway domains, HMP qemu-io, timing of one command.
# Sourced by bench/run.sh (which runs with `set -euo pipefail`).
#
# Modelled on tests/lib/testbed.sh, but separate on purpose: benchmark domains are named
# vbbench-<pid>-*, live in their own root, and the cleanup also ends NBD servers, backup
# jobs and a tmpfs mount that tests never make.

BL_URI=qemu:///system
BL_ROOT=/var/lib/virtbackup-bench
BL_WORKDIR=""
BL_TMPFS=""        # tmpfs mounted for backup/restore outputs (unmounted at exit)
BL_PIDS=()         # background servers we started (qemu-nbd, nbdkit): killed at exit
BL_RESULTS=""      # JSON lines, one per timed run
BL_LOGDIR=""       # stdout/stderr of every timed run

bl_log() { printf '[bench %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
bl_die() {
    printf '[bench] ERROR: %s\n' "$*" >&2
    exit 1
}

# Other sessions' tests on this machine restart libvirtd (domains keep running meanwhile):
# wait for it to answer again instead of failing the whole benchmark.
bl_wait_libvirt() {
    local i
    for i in $(seq 1 120); do
        virsh -q -c "$BL_URI" version >/dev/null 2>&1 && return 0
        sleep 0.5
    done
    return 1
}

bl_virsh() {
    local out rc=0
    out=$(virsh -q -c "$BL_URI" "$@" 2>&1) || rc=$?
    if [ "$rc" -ne 0 ] && grep -qE "libvirt-sock|failed to connect to the hypervisor|End of file while reading|Cannot recv data" <<<"$out"; then
        bl_log "libvirtd unreachable (restarted by someone?): waiting, then retrying virsh $1"
        bl_wait_libvirt
        rc=0
        out=$(virsh -q -c "$BL_URI" "$@" 2>&1) || rc=$?
    fi
    [ -z "$out" ] || printf '%s\n' "$out"
    return "$rc"
}

# ---------------------------------------------------------------------------
# Set-up and cleanup

bl_remove_domain() {
    local dom="$1"
    bl_virsh domjobabort "$dom" >/dev/null 2>&1 || true
    bl_virsh destroy "$dom" >/dev/null 2>&1 || true
    bl_virsh undefine --checkpoints-metadata --snapshots-metadata "$dom" >/dev/null 2>&1 ||
        bl_virsh undefine "$dom" >/dev/null 2>&1 || true
    rm -f "/var/log/libvirt/qemu/$dom.log"
}

# Leftovers of a benchmark that was killed (SIGKILL skips traps): its pid is gone.
bl_sweep_leftovers() {
    local dom pid dir
    for dom in $(bl_virsh list --all --name 2>/dev/null | grep '^vbbench-[0-9]*-' || true); do
        pid="${dom#vbbench-}"
        pid="${pid%%-*}"
        kill -0 "$pid" 2>/dev/null && continue
        bl_log "removing leftover domain $dom"
        bl_remove_domain "$dom"
    done
    for dir in "$BL_ROOT"/[0-9]*; do
        [ -d "$dir" ] || continue
        pid="$(basename "$dir")"
        kill -0 "$pid" 2>/dev/null && continue
        bl_log "removing leftover work dir $dir"
        mountpoint -q "$dir/out" && umount -l "$dir/out"
        rm -rf "$dir"
    done
}

bl_cleanup() {
    local rc=$?
    set +e
    trap - EXIT INT TERM ERR
    local p dom
    for p in "${BL_PIDS[@]}"; do
        kill "$p" 2>/dev/null
    done
    for dom in $(bl_virsh list --all --name 2>/dev/null | grep "^vbbench-$$-"); do
        bl_remove_domain "$dom"
    done
    if [ -n "$BL_TMPFS" ] && mountpoint -q "$BL_TMPFS"; then
        umount "$BL_TMPFS" || umount -l "$BL_TMPFS"
    fi
    if [ -n "$BL_WORKDIR" ] && [ -d "$BL_WORKDIR" ]; then
        if [ "${BENCH_KEEP:-0}" = 1 ]; then
            bl_log "BENCH_KEEP=1: keeping $BL_WORKDIR"
        else
            rm -rf "$BL_WORKDIR"
        fi
    fi
    [ "$rc" -eq 0 ] || printf '[bench] FAILED (exit %s); logs of timed runs were in %s\n' "$rc" "$BL_LOGDIR" >&2
    exit "$rc"
}

bl_on_err() {
    printf '[bench] command failed (exit %s) at %s line %s: %s\n' "$1" "${BASH_SOURCE[1]:-$0}" "$2" "$3" >&2
}

# bl_init: root, daemons up, traps, a work dir qemu (libvirt-qemu, group kvm) can traverse.
bl_init() {
    [ "$(id -u)" -eq 0 ] || bl_die "run as root (libvirtd, qemu domains, tmpfs mount)"
    VB_SKIP_INSTALL=1 "$VB_SOURCE_DIR/scripts/setup-testbed.sh"
    trap bl_cleanup EXIT
    trap 'exit 130' INT
    trap 'exit 143' TERM
    set -E
    trap 'bl_on_err $? $LINENO "$BASH_COMMAND"' ERR
    bl_sweep_leftovers
    # root:kvm 0770 is verified to let qemu open images and create sockets/scratch files.
    install -d -o root -g kvm -m 0770 "$BL_ROOT"
    BL_WORKDIR="$BL_ROOT/$$"
    install -d -o root -g kvm -m 0770 "$BL_WORKDIR"
    BL_LOGDIR="$BL_WORKDIR/logs"
    mkdir -p "$BL_LOGDIR"
    BL_RESULTS="$BL_WORKDIR/results.jsonl"
    : >"$BL_RESULTS"
    bl_log "work dir $BL_WORKDIR"
}

# bl_free_gib DIR: free space of DIR's filesystem in GiB.
bl_free_gib() { df -P -B1G "$1" | awk 'NR == 2 {print $4}'; }

bl_mem_available_gib() { awk '/^MemAvailable:/ {print int($2 / 1048576)}' /proc/meminfo; }

# bl_setup_outputs NEED_GIB: backup and restore outputs go to a private tmpfs when memory
# allows. Why: virtbackup fsyncs its files and the reference and nbdcopy do not; on this
# disk (~530 MB/s) the fsync alone would dominate, and the benchmark compares the tools'
# own work. BENCH_OUTPUT=disk puts them on disk instead.
bl_setup_outputs() {
    local need="$1" mode="${BENCH_OUTPUT:-tmpfs}"
    BL_OUT="$BL_WORKDIR/out"
    install -d -o root -g kvm -m 0770 "$BL_OUT"
    if [ "$mode" = tmpfs ]; then
        local avail
        avail=$(bl_mem_available_gib)
        if [ "$avail" -lt $((need + 4)) ]; then
            bl_log "only ${avail} GiB memory available (< ${need}+4): outputs on disk instead of tmpfs"
            mode=disk
        fi
    fi
    if [ "$mode" = tmpfs ]; then
        mount -t tmpfs -o "size=${need}G,mode=0770,gid=$(getent group kvm | cut -d: -f3)" bench-out "$BL_OUT"
        BL_TMPFS="$BL_OUT"
    fi
    BL_OUTPUT_MODE="$mode"
    bl_log "outputs on $mode ($BL_OUT)"
}

# ---------------------------------------------------------------------------
# Domains

bl_domain_type() {
    if [ -c /dev/kvm ] && runuser -u libvirt-qemu -- test -r /dev/kvm -a -w /dev/kvm 2>/dev/null; then
        echo kvm
    else
        echo qemu
    fi
}

# bl_create_domain SUFFIX IMAGE [IMAGE...]: defines vbbench-$$-SUFFIX with the given qcow2
# images as vda, vdb, ... and starts it paused (backups need no running guest).
bl_create_domain() {
    local suffix="$1"
    shift
    local dom="vbbench-$$-$suffix" letters=abcdefghijklmnopqrstuvwxyz disks="" i=0 img
    for img in "$@"; do
        chgrp kvm "$img"
        chmod 0660 "$img"
        disks+="    <disk type='file' device='disk'>
      <driver name='qemu' type='qcow2' discard='unmap'/>
      <source file='$img'/>
      <target dev='vd${letters:$i:1}' bus='virtio'/>
    </disk>
"
        i=$((i + 1))
    done
    local xml="$BL_WORKDIR/$suffix.xml"
    cat >"$xml" <<EOF
<domain type='$(bl_domain_type)'>
  <name>$dom</name>
  <memory unit='MiB'>128</memory>
  <vcpu>1</vcpu>
  <os><type arch='x86_64'>hvm</type></os>
  <devices>
$disks    <graphics type='vnc' listen='127.0.0.1' autoport='yes'/>
  </devices>
</domain>
EOF
    bl_virsh define "$xml" >/dev/null
    bl_virsh start --paused "$dom" >/dev/null
    echo "$dom"
}

# bl_qom_path DOMAIN DEV: QOM path of DEV's virtio block backend (for HMP qemu-io -d).
bl_qom_path() {
    local alias
    alias=$(bl_virsh dumpxml "$1" | xmllint --xpath "string(//disk[target/@dev='$2']/alias/@name)" -)
    [ -n "$alias" ] || bl_die "no alias for disk $2 of $1"
    echo "/machine/peripheral/$alias/virtio-backend"
}

# bl_hmp_writes DOMAIN DEV SRCFILE LEN OFFSET...: one HMP qemu-io write per offset with data
# from SRCFILE, then waits until the domain log shows every "wrote" line: HMP qemu-io says
# nothing through virsh, so a silent failure would otherwise make the increment empty.
bl_hmp_writes() {
    local dom="$1" dev="$2" src="$3" len="$4"
    shift 4
    local path logf before off out i n=$#
    path=$(bl_qom_path "$dom" "$dev")
    logf="/var/log/libvirt/qemu/$dom.log"
    before=$(stat -c %s "$logf")
    for off in "$@"; do
        out=$(bl_virsh qemu-monitor-command "$dom" --hmp "qemu-io -d $path \"write -s $src $off $len\"")
        [ -z "$out" ] || bl_die "qemu-io write on $dom: $out"
    done
    out=$(bl_virsh qemu-monitor-command "$dom" --hmp "qemu-io -d $path \"flush\"")
    for i in $(seq 1 400); do
        if [ "$(tail -c +"$((before + 1))" "$logf" | grep -c "^wrote $len/$len bytes")" -ge "$n" ]; then
            return 0
        fi
        sleep 0.05
    done
    bl_die "qemu-io writes on $dom did not all take effect; log: $(tail -c +"$((before + 1))" "$logf" | tail -5)"
}

# bl_settle: writes back and drops the page cache before a case. Without it the first run
# of a case pays for reclaiming the corpus build's cache (measured: the first full backup
# took 12-13 s and twice the CPU of the next two, 6-7 s, whichever tool came first).
bl_settle() {
    sync
    echo 3 >/proc/sys/vm/drop_caches 2>/dev/null || bl_log "cannot drop the page cache (not root?)"
    sleep 1
}

# bl_write_floor KEY BYTES: notes how long writing BYTES into a new file on the outputs' file
# system takes (dd from /dev/zero, 1 MiB blocks), and overwriting that file again. Every
# backup and restore writes its bytes into fresh page-cache pages; on these VMs a fresh page
# costs a fault on the host (the balloon's free page reporting hands freed memory back),
# measured 2-4x an overwrite: this floor lies under every tool's time, the limit's too.
# Settles the page cache first; removing the file leaves it settled.
bl_write_floor() {
    local key="$1" mib=$(($2 / 1048576)) f="$BL_OUT/write-floor" t0 t1 t2
    bl_settle
    t0=$(date +%s.%N)
    dd if=/dev/zero of="$f" bs=1M count="$mib" conv=fsync status=none
    t1=$(date +%s.%N)
    dd if=/dev/zero of="$f" bs=1M count="$mib" conv=notrunc,fsync status=none
    t2=$(date +%s.%N)
    rm -f "$f"
    bl_note "$key" "$(awk -v a="$t0" -v b="$t1" -v c="$t2" -v m="$mib" 'BEGIN {printf "writing %d MiB into a new file on the outputs'"'"' file system takes %.2f s (dd); overwriting the same file %.2f s: the cost of fresh pages here", m, b - a, c - b}')"
}

# bl_image_allocated IMAGE: bytes of data the image holds (allocated, not zero clusters).
bl_image_allocated() {
    qemu-img map -U --output=json "$1" | jq '[.[] | select(.data and (.zero | not)) | .length] | add // 0'
}

# ---------------------------------------------------------------------------
# Timing

# bl_hwm_kb PID: sets BL_HWM to the process's peak RSS so far (VmHWM, KiB). A variable,
# not output: a command substitution would fork for every sample.
bl_hwm_kb() {
    local k v _
    BL_HWM=0
    while read -r k v _; do
        if [ "$k" = VmHWM: ]; then
            BL_HWM=$v
            return 0
        fi
    done 2>/dev/null <"/proc/$1/status" || true
}

# bl_measure CASE TOOL REP BYTES CMD...: runs CMD under /usr/bin/time and appends one JSON
# line: wall (s), user+sys CPU (s) of the whole process tree, two peak RSS figures, exit
# code, the bytes the throughput is computed from, and the load average (other work on the
# machine makes a run noisy; the load shows it). Returns CMD's exit code.
#   rss_kb       /usr/bin/time's %M: the largest process of the tree that was waited for, so
#                a restore tool's own qemu-nbd counts when it is bigger than the tool;
#   rss_main_kb  the tool's own process (VmHWM sampled every 20 ms until it exits; VmHWM only
#                grows, so the last sample misses at most the last 20 ms of growth).
bl_measure() {
    local case="$1" tool="$2" rep="$3" bytes="$4"
    shift 4
    local tf="$BL_LOGDIR/$case.$tool.$rep.time" log="$BL_LOGDIR/$case.$tool.$rep.log${BL_RETRYING:+.retry}" rc=0
    # Writeback of the previous run's files must not land inside this run's time.
    sync
    /usr/bin/time -f '%e %U %S %M' -o "$tf" "$@" >"$log" 2>&1 &
    local tpid=$! child="" hwm=0
    while kill -0 "$tpid" 2>/dev/null; do
        if [ -z "$child" ]; then
            # the file has no trailing newline: read assigns, then returns 1 at EOF
            read -r child _ <"/proc/$tpid/task/$tpid/children" 2>/dev/null || true
        fi
        if [ -n "$child" ]; then
            bl_hwm_kb "$child"
            if [ "$BL_HWM" -gt "$hwm" ]; then hwm=$BL_HWM; fi
        fi
        sleep 0.02
    done
    wait "$tpid" || rc=$?
    local wall user sys rss load
    read -r wall user sys rss <<<"$(grep -E '^[0-9.]+ [0-9.]+ [0-9.]+ [0-9]+$' "$tf" | tail -1)"
    load=$(cut -d' ' -f1 /proc/loadavg)
    # A failed run keeps its last message in the results: the work dir (and the log) is
    # gone by the time anyone reads the table.
    local error=""
    if [ "$rc" -ne 0 ]; then
        # a run that printed nothing has no message (grep then fails: not the bench's end)
        error=$({ grep -v -e '^Command exited with' -e '^[[:space:]]*$' "$log" || true; } | tail -n 1 | cut -c1-200)
    fi
    jq -nc --arg case "$case" --arg tool "$tool" --argjson rep "$rep" --argjson bytes "$bytes" \
        --argjson wall "${wall:-0}" --argjson user "${user:-0}" --argjson sys "${sys:-0}" \
        --argjson rss "${rss:-0}" --argjson rssm "$hwm" --argjson rc "$rc" --argjson load "$load" \
        --arg env "${BL_MEASURE_ENV:-}" --arg error "$error" \
        '{case: $case, tool: $tool, rep: $rep, bytes: $bytes, wall: $wall, cpu: ($user + $sys),
          user: $user, sys: $sys, rss_kb: $rss, rss_main_kb: $rssm, rc: $rc, load: $load}
         + (if $env == "" then {} else {env: $env} end)
         + (if $error == "" then {} else {error: $error} end)' >>"$BL_RESULTS"
    if [ "$rc" -ne 0 ] && [ -z "${BL_RETRYING:-}" ] &&
        grep -qE "libvirt-sock|failed to connect to the hypervisor|End of file while reading|Cannot recv data|libvirtd" "$log"; then
        bl_log "$case/$tool rep $rep failed while libvirtd was away: once more after it is back"
        jq -nc --arg c "$case" --arg t "$tool" --argjson r "$rep" '{note: "retried", text: "\($c)/\($t) rep \($r): libvirtd restarted during the run"}' >>"$BL_RESULTS"
        bl_wait_libvirt || true
        # a job the interrupted tool left behind would make the retry fail
        local d
        for d in $(virsh -q -c "$BL_URI" list --name 2>/dev/null | grep "^vbbench-$$-" || true); do
            virsh -q -c "$BL_URI" domjobabort "$d" >/dev/null 2>&1 || true
        done
        BL_RETRYING=1 bl_measure "$case" "$tool" "$rep" "$bytes" "$@"
        return
    fi
    if [ "$rc" -ne 0 ]; then
        bl_log "$case/$tool rep $rep FAILED (exit $rc); last lines of $log:"
        tail -n 5 "$log" | sed 's/^/    | /' >&2
    else
        bl_log "$case/$tool rep $rep: ${wall}s wall, $(awk -v u="$user" -v s="$sys" 'BEGIN {printf "%.2f", u + s}')s cpu, rss $((hwm / 1024)) MiB own / $((rss / 1024)) MiB tree max"
    fi
    return "$rc"
}

# bl_note KEY TEXT [VALUE]: a remark stored with the results (skips, failed checks,
# settings); VALUE, a number, is what report.sh reads for a target that is not a timing
# (e.g. stored bytes relative to one VM).
bl_note() {
    jq -nc --arg key "$1" --arg text "$2" --arg value "${3:-}" \
        '{note: $key, text: $text} + (if $value == "" then {} else {value: ($value | tonumber)} end)' >>"$BL_RESULTS"
    bl_log "note [$1]: $2"
}

# bl_rotate N ITEM...: the items rotated left by N, so that the tools take turns going
# first across repetitions (cache state and background load then do not favour one tool).
bl_rotate() {
    local n="$1"
    shift
    local -a a=("$@")
    local k=$((n % ${#a[@]}))
    printf '%s\n' "${a[@]:k}" "${a[@]:0:k}"
}
