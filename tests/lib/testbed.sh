# shellcheck shell=bash disable=SC2034 # TB_* globals are read by the sourcing tests
# Test bed library for virtbackup integration tests: real libvirtd + qemu domains.
# Source it from a test script that runs with `set -euo pipefail`, then call tb_init.
#
# Facts this relies on are in the shared docs (testbed.md): /dev/kvm permissions,
# daemons without systemd, qemu running as libvirt-qemu (group kvm), HMP qemu-io
# writing through the guest's block backend with its output going to the domain log.
#
# Environment:
#   VB_SOURCE_DIR  source tree (default: two levels above this file)
#   VB_BUILD_DIR   cmake build dir; test tools are at $VB_BUILD_DIR/tests/<tool>
#                  (default: $VB_SOURCE_DIR/build)
#   VB_KEEP=1      keep the work dir after the test (domains are always removed)
#   VB_DETECT_LEAKS=0  switch LeakSanitizer off instead of using tests/lsan.supp
#
# Globals set for the test:
#   TB_WORKDIR        per-test directory, traversable by the qemu user
#   TB_DOMAIN         name of the domain made by the last tb_create_domain
#   TB_IMAGES         array of its image paths (index 0 = vda, 1 = vdb, ...)
#   TB_STEP           name of the current step (tb_step), reported on failure

TB_URI=qemu:///system
TB_ROOT=/var/lib/virtbackup-tests
TB_LIB_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
VB_SOURCE_DIR="${VB_SOURCE_DIR:-$(cd "$TB_LIB_DIR/../.." && pwd)}"
VB_BUILD_DIR="${VB_BUILD_DIR:-$VB_SOURCE_DIR/build}"
export VB_SOURCE_DIR VB_BUILD_DIR

TB_NAME="$(basename "${0%.sh}")"
TB_WORKDIR=""
TB_DOMAIN=""
TB_IMAGES=()
TB_STEP="startup"
TB_EXTRA_CLEANUP=()

# Sanitizer builds: libvirt, glib and GnuTLS keep global state alive until exit,
# which LeakSanitizer reports as leaks. Suppress those libraries, keep the rest.
if [ "${VB_DETECT_LEAKS:-1}" = 0 ]; then
    export ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}detect_leaks=0"
else
    export LSAN_OPTIONS="${LSAN_OPTIONS:+$LSAN_OPTIONS:}suppressions=$VB_SOURCE_DIR/tests/lsan.supp:print_suppressions=0"
fi

# ---------------------------------------------------------------------------
# Messages and assertions

tb_log() { printf '[%s %s] %s\n' "$TB_NAME" "$(date +%H:%M:%S)" "$*" >&2; }

# tb_step NAME: names what the following commands prove; failures report it.
tb_step() {
    TB_STEP="$1"
    tb_log "---- step: $1"
}

tb_fail() {
    printf '[%s] FAIL (step: %s): %s\n' "$TB_NAME" "$TB_STEP" "$*" >&2
    exit 1
}

tb_pass() { printf '[%s] PASS: %s\n' "$TB_NAME" "$*" >&2; }

# tb_assert_eq A B WHAT: fails naming WHAT unless A and B are equal
tb_assert_eq() {
    if [ "$1" != "$2" ]; then
        tb_fail "$3: '$1' differs from '$2'"
    fi
}

# tb_expect_fail WHAT CMD...: CMD must exit non-zero (its stderr is shown).
tb_expect_fail() {
    local what="$1"
    shift
    local rc=0
    "$@" || rc=$?
    if [ "$rc" -eq 0 ]; then
        tb_fail "$what: '$*' succeeded but must fail"
    fi
    tb_log "as expected, '$*' failed (exit $rc): $what"
}

# tb_wait_for PID CMD...: polls CMD (every 0.05 s) until it succeeds and returns 0. Returns 1
# once the process PID, the one expected to bring the state about, has exited while CMD still
# fails (PID may be empty), or after TB_WAIT_LIMIT seconds (default 600): a bound for a hung
# run, far beyond any healthy one, never a speed expectation. The caller reports the failure.
tb_wait_for() {
    local pid="$1" deadline=$((SECONDS + ${TB_WAIT_LIMIT:-600}))
    shift
    until "$@"; do
        if [ -n "$pid" ] && ! kill -0 "$pid" 2>/dev/null; then
            "$@"
            return
        fi
        [ "$SECONDS" -lt "$deadline" ] || return 1
        sleep 0.05
    done
}

# tb_daemon CMD...: starts a daemon (libvirtd -d) with every inherited descriptor above 2
# closed. libvirtd keeps what it inherits: the lock a test runs under (flock around ctest)
# would be held by the daemon for as long as it runs, blocking every later run.
tb_daemon() {
    (
        local fd
        for fd in /proc/$BASHPID/fd/*; do
            fd=${fd##*/}
            if [ "$fd" -gt 2 ] 2>/dev/null; then eval "exec $fd>&-"; fi
        done
        exec "$@" </dev/null
    )
}

# tb_tool NAME: path of a test tool from the build tree; fails if it is not built.
tb_tool() {
    local p="$VB_BUILD_DIR/tests/$1"
    [ -x "$p" ] || tb_fail "test tool $p not built (cmake --build $VB_BUILD_DIR)"
    echo "$p"
}

tb_have_tool() { [ -x "$VB_BUILD_DIR/tests/$1" ]; }

# tb_on_exit CMD: run CMD (a string, eval'ed) during cleanup, before domains go.
tb_on_exit() { TB_EXTRA_CLEANUP+=("$1"); }

tb_virsh() { virsh -q -c "$TB_URI" "$@"; }

# ---------------------------------------------------------------------------
# Set-up and cleanup

# Removes one domain whatever its state, including checkpoint metadata
# (undefine refuses a domain that still has checkpoints).
tb_remove_domain() {
    local dom="$1"
    tb_virsh domjobabort "$dom" >/dev/null 2>&1 || true
    tb_virsh destroy "$dom" >/dev/null 2>&1 || true
    tb_virsh undefine --checkpoints-metadata --snapshots-metadata "$dom" >/dev/null 2>&1 ||
        tb_virsh undefine "$dom" >/dev/null 2>&1 || true
    rm -f "/var/log/libvirt/qemu/$dom.log"
}

# Leftovers of earlier runs that were killed before their EXIT trap ran:
# domains vbtest-<pid>-* and work dirs <pid>-* whose pid is gone.
tb_sweep_leftovers() {
    local dom pid dir
    # line by line: domain names may hold spaces
    while IFS= read -r dom; do
        pid="${dom#vbtest-}"
        pid="${pid%%-*}"
        if ! kill -0 "$pid" 2>/dev/null; then
            tb_log "removing leftover domain $dom (pid $pid is gone)"
            tb_remove_domain "$dom"
        fi
    done < <(tb_virsh list --all --name 2>/dev/null | grep '^vbtest-[0-9]*-' || true)
    for dir in "$TB_ROOT"/[0-9]*-*; do
        [ -d "$dir" ] || continue
        [ ! -e "$dir/.keep" ] || continue
        pid="$(basename "$dir")"
        pid="${pid%%-*}"
        if ! kill -0 "$pid" 2>/dev/null; then
            tb_log "removing leftover work dir $dir"
            rm -rf "$dir"
        fi
    done
}

tb_cleanup() {
    local rc=$?
    set +e
    trap - EXIT INT TERM ERR
    local c
    for c in "${TB_EXTRA_CLEANUP[@]}"; do
        eval "$c" >/dev/null 2>&1
    done
    local dom
    while IFS= read -r dom; do
        if [ "$rc" -ne 0 ] && [ -f "/var/log/libvirt/qemu/$dom.log" ]; then
            tb_log "last lines of $dom's qemu log:"
            tail -n 15 "/var/log/libvirt/qemu/$dom.log" >&2
        fi
        tb_remove_domain "$dom"
    done < <(tb_virsh list --all --name 2>/dev/null | grep "^vbtest-$$-")
    if [ -n "$TB_WORKDIR" ] && [ -d "$TB_WORKDIR" ]; then
        if [ "${VB_KEEP:-0}" = 1 ]; then
            touch "$TB_WORKDIR/.keep" # the next run's sweep leaves it alone
            tb_log "VB_KEEP=1: keeping $TB_WORKDIR"
        else
            rm -rf "$TB_WORKDIR"
        fi
    fi
    if [ "$rc" -ne 0 ]; then
        printf '[%s] FAILED (exit %s) in step: %s\n' "$TB_NAME" "$rc" "$TB_STEP" >&2
    else
        printf '[%s] all steps passed\n' "$TB_NAME" >&2
    fi
    exit "$rc"
}

# Reports the failing command when `set -e` ends the test, so a failure is never silent.
tb_on_err() {
    printf '[%s] command failed (exit %s) at %s line %s: %s\n' \
        "$TB_NAME" "$1" "${BASH_SOURCE[1]:-$0}" "$2" "$3" >&2
}

tb_init() {
    if [ "$(id -u)" -ne 0 ]; then
        echo "$TB_NAME: integration tests need root (libvirtd, qemu domains)" >&2
        exit 1
    fi
    # install-deps only if a command we need is missing: keeps tb_init fast.
    local need_install=0 c
    for c in virsh libvirtd virtlogd qemu-img qemu-system-x86_64 virtnbdbackup jq; do
        command -v "$c" >/dev/null 2>&1 || need_install=1
    done
    if [ "$need_install" = 1 ]; then
        "$VB_SOURCE_DIR/scripts/setup-testbed.sh"
    else
        VB_SKIP_INSTALL=1 "$VB_SOURCE_DIR/scripts/setup-testbed.sh"
    fi

    trap tb_cleanup EXIT
    trap 'exit 130' INT
    trap 'exit 143' TERM
    set -E
    trap 'tb_on_err $? $LINENO "$BASH_COMMAND"' ERR

    tb_sweep_leftovers

    # qemu (libvirt-qemu, group kvm) must traverse to images, scratch files and
    # sockets and create sockets there: root:kvm 0770 is verified to work.
    install -d -o root -g kvm -m 0770 "$TB_ROOT"
    TB_WORKDIR="$TB_ROOT/$$-$TB_NAME"
    rm -rf "$TB_WORKDIR"
    install -d -o root -g kvm -m 0770 "$TB_WORKDIR"
    tb_log "work dir $TB_WORKDIR"
}

# ---------------------------------------------------------------------------
# Domains

tb_domain_type() {
    if [ -c /dev/kvm ] && runuser -u libvirt-qemu -- test -r /dev/kvm -a -w /dev/kvm 2>/dev/null; then
        echo kvm
    else
        echo qemu
    fi
}

# tb_uefi_domain_xml NAME LOADER NVRAM IMAGE...: the XML of a UEFI domain (the read-only
# OVMF LOADER, its own NVRAM), one qcow2 disk per IMAGE as vda, vdb, ...; on stdout.
tb_uefi_domain_xml() {
    local name=$1 loader=$2 nvram=$3 img dev=a
    shift 3
    printf "<domain type='%s'>\n  <name>%s</name>\n  <memory unit='MiB'>128</memory>\n" \
        "$(tb_domain_type)" "$name"
    printf "  <vcpu>1</vcpu>\n  <os>\n    <type arch='x86_64'>hvm</type>\n"
    printf "    <loader readonly='yes' type='pflash'>%s</loader>\n    <nvram>%s</nvram>\n" \
        "$loader" "$nvram"
    printf "  </os>\n  <features><acpi/></features>\n  <devices>\n"
    for img in "$@"; do
        printf "    <disk type='file' device='disk'>\n"
        printf "      <driver name='qemu' type='qcow2' discard='unmap'/>\n"
        printf "      <source file='%s'/>\n      <target dev='vd%s' bus='virtio'/>\n" "$img" "$dev"
        printf "    </disk>\n"
        dev=$(echo "$dev" | tr 'a-y' 'b-z')
    done
    printf "  </devices>\n</domain>\n"
}

# tb_create_domain SUFFIX SIZE [SIZE...]: one qcow2 (v3) disk per SIZE (vda, vdb, ...),
# defines vbtest-$$-SUFFIX and starts it paused. Sets TB_DOMAIN and TB_IMAGES.
tb_create_domain() {
    local suffix="$1"
    shift
    [ $# -ge 1 ] || tb_fail "tb_create_domain: need at least one disk size"
    local dom="vbtest-$$-$suffix"
    local letters=abcdefghijklmnopqrstuvwxyz
    local disks="" i=0 size img dev
    TB_IMAGES=()
    for size in "$@"; do
        dev="vd${letters:$i:1}"
        img="$TB_WORKDIR/$suffix-$dev.qcow2"
        # compat=1.1 (qcow2 v3) is required for persistent dirty bitmaps.
        # discard='unmap' below: without it qemu ignores discards (qemu-io still
        # reports "discard N/N bytes" but the data stays).
        qemu-img create -q -f qcow2 -o compat=1.1 "$img" "$size"
        TB_IMAGES+=("$img")
        disks+="    <disk type='file' device='disk'>
      <driver name='qemu' type='qcow2' discard='unmap'/>
      <source file='$img'/>
      <target dev='$dev' bus='virtio'/>
    </disk>
"
        i=$((i + 1))
    done
    local xml="$TB_WORKDIR/$suffix.xml"
    cat >"$xml" <<EOF
<domain type='$(tb_domain_type)'>
  <name>$dom</name>
  <memory unit='MiB'>128</memory>
  <vcpu>1</vcpu>
  <os><type arch='x86_64'>hvm</type></os>
  <on_poweroff>destroy</on_poweroff>
  <on_crash>destroy</on_crash>
  <devices>
$disks    <graphics type='vnc' listen='127.0.0.1' autoport='yes'/>
  </devices>
</domain>
EOF
    tb_virsh define "$xml" >/dev/null || tb_fail "virsh define $xml failed"
    tb_virsh start --paused "$dom" >/dev/null || tb_fail "virsh start --paused $dom failed"
    TB_DOMAIN="$dom"
    tb_log "domain $dom ($(tb_domain_type), paused) disks: ${TB_IMAGES[*]}"
}

# tb_qom_path DOMAIN DEV: QOM path of the virtio block backend of target DEV (vda...),
# from the alias libvirt gave the disk in the live XML (virtio-disk0, ...).
tb_qom_path() {
    local dom="$1" dev="$2" alias
    alias=$(tb_virsh dumpxml "$dom" | python3 -c '
import sys, xml.etree.ElementTree as ET
dev = sys.argv[1]
for d in ET.parse(sys.stdin).getroot().iter("disk"):
    t = d.find("target")
    if t is not None and t.get("dev") == dev:
        a = d.find("alias")
        print(a.get("name") if a is not None else "")
' "$dev")
    [ -n "$alias" ] || tb_fail "no disk $dev (or no alias) in live XML of $dom"
    echo "/machine/peripheral/$alias/virtio-backend"
}

tb_domain_log() { echo "/var/log/libvirt/qemu/$1.log"; }

# Sends one qemu-io command over HMP. qemu-io's output goes to the domain log, not to
# virsh, so prints what the log gained (waits until a line matching $4 shows up).
tb_qemu_io_raw() {
    local dom="$1" dev="$2" cmd="$3" want="$4"
    local path logf before out i
    path=$(tb_qom_path "$dom" "$dev")
    logf=$(tb_domain_log "$dom")
    before=$(stat -c %s "$logf" 2>/dev/null || echo 0)
    out=$(tb_virsh qemu-monitor-command "$dom" --hmp "qemu-io -d $path \"$cmd\"" 2>&1) ||
        tb_fail "qemu-io '$cmd' on $dom/$dev: virsh failed: $out"
    # Errors of HMP itself (wrong path...) come back through virsh.
    [ -z "$out" ] || tb_fail "qemu-io '$cmd' on $dom/$dev: monitor said: $out"
    # virtlogd writes the log asynchronously: poll for the expected line.
    for i in $(seq 1 200); do
        out=$(tail -c +"$((before + 1))" "$logf" 2>/dev/null || true)
        if [ -z "$want" ] || grep -qE "$want" <<<"$out"; then
            printf '%s' "$out"
            return 0
        fi
        grep -qiE 'failed|error|Invalid|Permission' <<<"$out" && break
        sleep 0.05
    done
    printf '%s' "$out"
    return 1
}

# tb_qemu_io DOMAIN DEV 'qemu-io command': runs write/write -z/discard/read/flush and
# asserts from the domain log that it took effect; fails loudly otherwise.
tb_qemu_io() {
    local dom="$1" dev="$2" cmd="$3"
    local -a w
    read -r -a w <<<"$cmd"
    local verb="${w[0]}" want="" len off
    # The last two words of write/read/discard are OFFSET LENGTH; qemu-io echoes
    # them back in bytes ("wrote 65536/65536 bytes at offset 1048576").
    case "$verb" in
    write | read | discard)
        off=$(tb_bytes "${w[${#w[@]} - 2]}")
        len=$(tb_bytes "${w[${#w[@]} - 1]}")
        case "$verb" in
        write) want="^wrote $len/$len bytes at offset $off\$" ;;
        read) want="^read $len/$len bytes at offset $off\$" ;;
        discard) want="^discard $len/$len bytes at offset $off\$" ;;
        esac
        ;;
    flush) want="" ;;
    *) tb_fail "tb_qemu_io: unsupported qemu-io verb '$verb'" ;;
    esac
    local out
    if ! out=$(tb_qemu_io_raw "$dom" "$dev" "$cmd" "$want"); then
        tb_fail "qemu-io '$cmd' on $dom/$dev did not take effect; domain log says: ${out:-<nothing>}"
    fi
    # A read -P whose pattern does not match still prints "read N/N bytes".
    if grep -q 'Pattern verification failed' <<<"$out"; then
        tb_fail "qemu-io '$cmd' on $dom/$dev: $(grep 'Pattern verification failed' <<<"$out")"
    fi
}

# tb_bytes 64M -> 67108864 (the size suffixes qemu-io accepts: k M G T, powers of 1024).
tb_bytes() {
    local v="$1" n u
    n="${v%[kKmMgGtT]}"
    u="${v:${#n}}"
    case "$u" in
    "") echo "$n" ;;
    k | K) echo $((n << 10)) ;;
    m | M) echo $((n << 20)) ;;
    g | G) echo $((n << 30)) ;;
    t | T) echo $((n << 40)) ;;
    esac
}

# tb_disks DOMAIN: target devs of the domain's disks.
tb_disks() {
    tb_virsh domblklist "$1" | awk '$1 ~ /^vd|^sd/ {print $1}'
}

# tb_flush DOMAIN: flush every disk, so that qcow2 metadata of recent writes
# (writeback cache) is on disk before the image is read from outside.
tb_flush() {
    local dev
    for dev in $(tb_disks "$1"); do
        tb_qemu_io "$1" "$dev" flush
    done
}

# tb_image DOMAIN DEV: image path of disk DEV.
tb_image() {
    tb_virsh domblklist "$1" | awk -v d="$2" '$1 == d {print $2}'
}

# tb_snapshot_image DOMAIN DEV OUT.raw: the disk's current content as a raw file.
tb_snapshot_image() {
    local dom="$1" dev="$2" out="$3" img
    img=$(tb_image "$dom" "$dev")
    [ -n "$img" ] || tb_fail "tb_snapshot_image: $dom has no disk $dev"
    tb_qemu_io "$dom" "$dev" flush
    qemu-img convert -U -f qcow2 -O raw "$img" "$out" ||
        tb_fail "qemu-img convert of $img to $out failed"
}

# tb_compare_raw A B WHAT: identical content (qemu-img compare treats holes as zeroes).
tb_compare_raw() {
    local out
    out=$(qemu-img compare -f raw -F raw "$1" "$2" 2>&1) ||
        tb_fail "$3: $1 differs from $2: $out"
    tb_log "identical: $1 == $2 ($3)"
}
