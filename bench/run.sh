#!/bin/bash
# virtbackup benchmark: ours side by side with the reference (virtnbdbackup 1.9.15) and
# the practical limits (nbdcopy), on one corpus, in one go. Issue 5.
#
#   sudo bench/run.sh                  # full run: 16 GiB corpus, 3 repetitions (~15-35 min)
#   BENCH_QUICK=1 bench/run.sh         # quick: 2 GiB corpus, 1 repetition (~2-3 min; the clones case ~3 min more)
#
# Writes bench/results/latest.json (every run plus the summary) and bench/results/latest.md
# (the table, also printed). Needs root, libvirtd (started by scripts/setup-testbed.sh),
# qemu-utils, libnbd-bin, nbdkit, virtnbdbackup, jq, python3, /usr/bin/time.
#
# Cases (each timed as the whole command, tools alternating in every repetition):
#   full      full backup of the main disk: virtnbdbackup vs virtbackup, plain and -z;
#             nbdcopy (defaults) reading the backup job's export into a file = the limit
#   inc       "nightly" incremental after 1% of the disk changed, both tools, plain and -z
#             (each chain on its own copy of the domain: checkpoints are per domain)
#   restore   full + 3 incrementals, plain and -z: virtnbdrestore vs virtrestore; nbdcopy
#             from a raw image of the same content into a qemu-nbd qcow2 target = the limit
#   map       nbdcopy to null: from virtmap serving the reference's plain chain, our -z copy
#             and the reference's -z chain, vs nbdkit's file plugin serving a raw image of
#             the same content; map-tls: the plain chain over TLS (x509, TCP on
#             loopback) vs nbdkit's file plugin with TLS; map-repo: virtmap serving a
#             repository snapshot (virtrepo init's defaults, virtbackup -l copy) of the
#             same disk; each of nbdkit-file, virtmap, -z, -z-ref and repo also answers
#             2000 random 4 KiB reads one at a time (bench/nbd-latency.py): the median and
#             p99 latency are notes (map-lat-median-TOOL, map-lat-p99-TOOL, microseconds)
#   repo      full backup of the main disk into a repository (virtrepo init's defaults) vs
#             -z into a directory, by virtbackup; notes give the bytes each stored; then
#             virtrestore of each (repo-restore: the snapshot vs the -z full)
#   repo-disk the same as repo with the outputs on disk (the work dir's file system) and the
#             page cache dropped before every command: the image read from disk, the
#             committed bytes written back (not in the default list)
#   repo-inc  (not in the default list; BENCH_QUICK=1 sizes fit a 2-core VM) the nightly
#             incremental into a repository (4 MiB chunks and --chunk-size 1M) vs into a
#             directory, for 1% of the disk changed by 4 MiB aligned, scattered 64 KiB and
#             scattered 4 KiB writes: time, bytes read, bytes stored, amplification
#   repo-again  the second full backup of the unchanged main disk into the same repository
#             (what a monthly full costs there) vs a -z full into a new directory: wall time
#             and bytes each added
#   clones    ten domains cloned from one base image (each a complete qcow2 copy), each then
#             changed in 5% of its data by scattered 64 KiB writes; full backups of all ten
#             into a repository with the default 4 MiB chunks, one with 64 KiB chunks, and
#             -z into ten directories: stored bytes relative to one VM's, and the time;
#             clones-restore: the last clone restored from each, compared with its disk
#   remote    full backup of the main disk by virtbackup locally and as a remote host over
#             loopback (qemu+ssh:// through a test sshd on 127.0.0.1:2222, NBD over TCP)
#             (target: remote >= 80% of local throughput)
#   extents   full backup of a 1 TiB sparse disk and of a disk with 100,000 extents;
#             nbdinfo --map of the same export as a reference point
#   sweep     (BENCH_SWEEP=1) virtbackup full backups under VIRTBACKUP_REQUEST_SIZE,
#             VIRTBACKUP_REQUESTS, VIRTBACKUP_CONNECTIONS values
#
# Environment:
#   BENCH_REPS=N        repetitions (default 3; quick 1)
#   BENCH_QUICK=1       small corpus, 1 repetition
#   BENCH_SWEEP=1       also run the tuning sweep
#   BENCH_REF_EXTENTS=0 skip the reference on the extent disks (default: 1 rep, 600 s cap)
#   BENCH_OUTPUT=disk   outputs on disk instead of a private tmpfs (see lib.sh: fsync)
#   BENCH_CASES="full repo repo-again inc restore map remote extents clones"  only these
#                       cases (inc precedes restore, map)
#   BENCH_KEEP=1        keep the work dir (images, backups, logs) for inspection
#   BENCH_RESULTS_NAME=N  write results/N.json and results/N.md (default latest)
#   VB_BUILD_DIR=DIR    where virtbackup/virtrestore are built (default build/; built if
#                       missing, BENCH_BUILD=1 rebuilds)
set -euo pipefail

BENCH_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
VB_SOURCE_DIR="$(cd "$BENCH_DIR/.." && pwd)"
VB_BUILD_DIR="${VB_BUILD_DIR:-$VB_SOURCE_DIR/build}"
export VB_SOURCE_DIR VB_BUILD_DIR
BENCH_LIB_DIR="$BENCH_DIR"
# shellcheck source=bench/lib.sh
. "$BENCH_DIR/lib.sh"
# shellcheck source=bench/corpus.sh
. "$BENCH_DIR/corpus.sh"

VIRTBACKUP="$VB_BUILD_DIR/src/backup/virtbackup"
VIRTRESTORE="$VB_BUILD_DIR/src/restore/virtrestore"
VIRTMAP="$VB_BUILD_DIR/src/map/virtmap"
VIRTREPO="$VB_BUILD_DIR/src/virtrepo/virtrepo"

# ---------------------------------------------------------------------------
# Configuration

configure() {
    if [ "${BENCH_QUICK:-0}" = 1 ]; then
        MODE=quick
        REPS=${BENCH_REPS:-1}
        VSIZE=2G
        FS_SIZE=768M
        FS_TREE=(/usr/include /usr/bin)
        RAND_OFF=$((1 << 30))
        RAND_PERCENT=25
        ZERO_RUNS=4
        ZERO_LEN=$((8 << 20))
        NEED_DISK_GIB=10
        NEED_OUT_GIB=6
        REF_EXTENTS=${BENCH_REF_EXTENTS:-0}
        CLONE_VSIZE=512M
        CLONE_TEXT_BYTES=$((256 << 20))
        CLONE_TREE=(/usr/include /usr/bin)
    else
        MODE=full
        REPS=${BENCH_REPS:-3}
        VSIZE=16G
        FS_SIZE=4G
        FS_TREE=(/usr/bin /usr/include /usr/share /usr/lib/x86_64-linux-gnu)
        RAND_OFF=$((6 << 30))
        RAND_PERCENT=19
        ZERO_RUNS=16
        ZERO_LEN=$((16 << 20))
        NEED_DISK_GIB=35
        NEED_OUT_GIB=16
        REF_EXTENTS=${BENCH_REF_EXTENTS:-1}
        CLONE_VSIZE=1G
        CLONE_TEXT_BYTES=$((512 << 20))
        CLONE_TREE=(/usr/include /usr/bin /usr/share)
    fi
    # 1% of the disk changes per "night", as CHANGE_COUNT writes of CHANGE_LEN.
    CHANGE_LEN=$((4 << 20))
    CHANGE_COUNT=$(($(numfmt --from=iec "$VSIZE") / 100 / CHANGE_LEN))
    EXT_1T_COUNT=2000
    FRAG_COUNT=100000
    # The restore case restores full + 3 incrementals, so there are at least 3 rounds.
    INC_ROUNDS=$((REPS > 3 ? REPS : 3))
    CASES=" ${BENCH_CASES:-full repo repo-again inc restore map remote extents clones} "
    REF_TIMEOUT=${BENCH_REF_TIMEOUT:-600}
    # The clones case: CLONE_COUNT copies of a base image that is data from end to end, each
    # with CLONE_CHANGE_PERCENT of its 64 KiB clusters rewritten; the images (base and ten
    # clones) live on disk next to the corpus.
    CLONE_COUNT=10
    CLONE_CHANGE_PERCENT=5
    # repo-inc: its disk copy, and the outputs of three chains; the scattered writes touch
    # nearly every chunk, so each round's repository incs store about the disk's data again,
    # twice (4 MiB and 1 MiB chunks); aligned writes store only what changed
    if want_case repo-inc; then
        local gib
        gib=$(numfmt --from=iec --to-unit=1073741824 --round=up "$VSIZE")
        NEED_DISK_GIB=$((NEED_DISK_GIB + gib))
        if [[ "${BENCH_REPO_INC_PATTERNS:-4k}" == *k* ]]; then
            NEED_OUT_GIB=$((NEED_OUT_GIB + REPS * gib))
        else
            NEED_OUT_GIB=$((NEED_OUT_GIB + 1))
        fi
    fi
    if want_case clones; then
        NEED_DISK_GIB=$((NEED_DISK_GIB + (CLONE_COUNT + 1) * $(numfmt --from=iec --to-unit=1073741824 --round=up "$CLONE_VSIZE")))
    fi
}

want_case() { [[ "$CASES" == *" $1 "* ]]; }

# ---------------------------------------------------------------------------
# Preflight

check_tools() {
    local c
    for c in virsh virtnbdbackup virtnbdrestore qemu-img qemu-io qemu-nbd nbdcopy nbdinfo nbdkit \
        jq python3 xmllint numfmt mke2fs; do
        command -v "$c" >/dev/null || bl_die "missing command $c (scripts/install-deps.sh)"
    done
    [ -x /usr/bin/time ] || bl_die "missing /usr/bin/time (apt-get install time)"
    if [ "${BENCH_BUILD:-0}" = 1 ] || [ ! -x "$VIRTBACKUP" ]; then
        bl_log "building into $VB_BUILD_DIR"
        cmake -S "$VB_SOURCE_DIR" -B "$VB_BUILD_DIR" -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
        cmake --build "$VB_BUILD_DIR" -j2 >/dev/null || bl_log "build failed; using what exists"
    fi
    [ -x "$VIRTBACKUP" ] || bl_die "$VIRTBACKUP not built"
    HAVE_RESTORE=1
    if [ ! -x "$VIRTRESTORE" ]; then
        HAVE_RESTORE=0
    fi
}

# Free disk space first: the corpus and its copies must fit, with room to spare.
check_space() {
    install -d -o root -g kvm -m 0770 "$BL_ROOT"
    local free
    free=$(bl_free_gib "$BL_ROOT")
    bl_log "free space on $BL_ROOT: ${free} GiB (need $NEED_DISK_GIB)"
    [ "$free" -ge "$NEED_DISK_GIB" ] ||
        bl_die "not enough free space on $(df -P "$BL_ROOT" | awk 'NR==2 {print $6}'): ${free} GiB < ${NEED_DISK_GIB} GiB"
}

record_settings() {
    jq -nc --arg mode "$MODE" --argjson reps "$REPS" --arg vsize "$VSIZE" \
        --arg output "$BL_OUTPUT_MODE" --arg host "$(hostname)" --arg kernel "$(uname -r)" \
        --argjson cpus "$(nproc)" --arg ref "$(virtnbdbackup -V 2>&1 | tail -1)" \
        --arg ours "$("$VIRTBACKUP" -V 2>&1 | tail -1)" --arg commit "$(git -C "$VB_SOURCE_DIR" rev-parse --short HEAD 2>/dev/null || echo unknown)" \
        --arg qemu "$(qemu-img --version | sed -n 1p)" --arg nbdcopy "$(nbdcopy --version | sed -n 1p)" \
        --arg date "$(date -u +%Y-%m-%dT%H:%M:%SZ)" --arg cmd "${BENCH_CMDLINE:-bench/run.sh}" \
        --arg dtype "$(bl_domain_type)" --arg cpu "$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -n 1)" \
        '{settings: {mode: $mode, reps: $reps, virtual_size: $vsize, outputs: $output, host: $host,
          kernel: $kernel, cpus: $cpus, cpu_model: $cpu, domain_type: $dtype, reference: $ref,
          ours: $ours, commit: $commit, qemu: $qemu, nbdcopy: $nbdcopy, date: $date,
          command: $cmd}}' >>"$BL_RESULTS"
}

# ---------------------------------------------------------------------------
# Helpers for the cases

# job_start DOMAIN DIR DEV...: starts a pull backup job (no checkpoint) exporting DEVs over
# a unix socket in DIR; prints the socket. virsh, not `virtbackup -s`: the limit must not
# depend on the tool it bounds (and builds before 5a76305 removed the socket of -s on exit).
# DIR must be root:kvm 0770 for qemu to create the socket.
job_start() {
    local dom="$1" dir="$2" dev disks=""
    shift 2
    install -d -o root -g kvm -m 0770 "$dir"
    for dev in "$@"; do
        disks+="<disk name='$dev' backup='yes' type='file'><scratch file='$dir/scratch.$dev'/></disk>"
    done
    printf "<domainbackup mode='pull'><server transport='unix' socket='%s'/><disks>%s</disks></domainbackup>" \
        "$dir/nbd.sock" "$disks" >"$dir/job.xml"
    bl_virsh backup-begin "$dom" "$dir/job.xml" >/dev/null
    [ -S "$dir/nbd.sock" ] || bl_die "backup job of $dom: no socket $dir/nbd.sock"
    echo "$dir/nbd.sock"
}

job_end() { bl_virsh domjobabort "$1" >/dev/null 2>&1 || true; }

# restored_image DIR: the qcow2 a restore tool made in DIR.
restored_image() {
    local f
    for f in "$1"/*; do
        [ -f "$f" ] || continue
        case "$f" in *.xml | *.log | *.json | *.sock | *.pid) continue ;; esac
        qemu-img info -U "$f" 2>/dev/null | grep -q '^file format: qcow2' && {
            echo "$f"
            return 0
        }
    done
    return 1
}

# verify_restore TOOL CASE DIR SNAPSHOT: the restored disk must equal the snapshot; a fast
# but wrong restore must not look good in the table.
verify_restore() {
    local tool="$1" case="$2" dir="$3" snap="$4" img out
    if ! img=$(restored_image "$dir"); then
        bl_note "verify-$case-$tool" "no qcow2 image found in the output of $tool"
        return 0
    fi
    if out=$(qemu-img compare -U -f raw -F qcow2 "$snap" "$img" 2>&1); then
        bl_note "verify-$case-$tool" "restored image identical to the disk at virtnbdbackup.3"
    else
        bl_note "verify-$case-$tool" "restored image DIFFERS from the disk: $out"
    fi
}

# ---------------------------------------------------------------------------
# Corpus and domains

build_main_corpus() {
    local img="$BL_WORKDIR/main.qcow2"
    corpus_main "$img"
    MAIN_BYTES=$(bl_image_allocated "$img")
    bl_log "main disk: $VSIZE virtual, $MAIN_BYTES bytes allocated"
    bl_note corpus-main "$VSIZE virtual, $MAIN_BYTES bytes of data (ext4 $FS_SIZE from ${FS_TREE[*]}, sparse-random ${RAND_PERCENT}% from $RAND_OFF, $ZERO_RUNS zero runs of $ZERO_LEN)"
    # Copies for the incremental case, made before the first backup so that they carry no
    # bitmaps: each tool keeps its own chain of checkpoints on its own domain.
    if want_case repo-inc; then
        cp --sparse=always "$img" "$BL_WORKDIR/repoinc.qcow2"
    fi
    if want_case inc; then
        cp --sparse=always "$img" "$BL_WORKDIR/ours.qcow2"
        cp --sparse=always "$img" "$BL_WORKDIR/oursz.qcow2"
        cp --sparse=always "$img" "$BL_WORKDIR/refz.qcow2"
    fi
    mv "$img" "$BL_WORKDIR/ref.qcow2"
    DOM_REF=$(bl_create_domain ref "$BL_WORKDIR/ref.qcow2")
}

build_corpus() {
    if want_case full || want_case repo || want_case repo-disk || want_case repo-again || want_case repo-inc || want_case inc || want_case restore ||
        want_case remote; then
        build_main_corpus
    fi
    if want_case extents; then
        corpus_sparse_1t "$BL_WORKDIR/sparse1t.qcow2"
        corpus_fragmented "$BL_WORKDIR/frag.qcow2"
        SPARSE_BYTES=$(bl_image_allocated "$BL_WORKDIR/sparse1t.qcow2")
        FRAG_BYTES=$(bl_image_allocated "$BL_WORKDIR/frag.qcow2")
        bl_note corpus-extents "1 TiB disk: $EXT_1T_COUNT scattered 64 KiB extents ($SPARSE_BYTES bytes); fragmented disk: $FRAG_COUNT extents of 4 KiB, each followed by a 4 KiB hole, 4 KiB clusters ($FRAG_BYTES bytes)"
    fi
}

# ---------------------------------------------------------------------------
# Case 1: full backup

full_one() {
    local tool="$1" rep="$2" out="$BL_OUT/full.$1.$2" rc=0
    case "$tool" in
    virtnbdbackup) bl_measure full "$tool" "$rep" "$MAIN_BYTES" virtnbdbackup -d "$DOM_REF" -l full -o "$out" -n || rc=$? ;;
    virtnbdbackup-z) bl_measure full-z virtnbdbackup "$rep" "$MAIN_BYTES" virtnbdbackup -d "$DOM_REF" -l full -z -o "$out" -n || rc=$? ;;
    virtbackup) bl_measure full "$tool" "$rep" "$MAIN_BYTES" "$VIRTBACKUP" -d "$DOM_REF" -l full -o "$out" -n || rc=$? ;;
    virtbackup-z) bl_measure full-z virtbackup "$rep" "$MAIN_BYTES" "$VIRTBACKUP" -d "$DOM_REF" -l full -z -o "$out" -n || rc=$? ;;
    nbdcopy)
        local sock
        sock=$(job_start "$DOM_REF" "$out" vda)
        bl_measure full nbdcopy "$rep" "$MAIN_BYTES" nbdcopy "nbd+unix:///vda?socket=$sock" "$out/vda.raw" || rc=$?
        job_end "$DOM_REF"
        ;;
    esac
    rm -rf "$out"
    return 0
}

case_full() {
    bl_log "==== case full: $REPS repetitions"
    # The write floor starts from a settled page cache and removes its file: the cache is
    # settled after it. Then warm it: every tool reads the same (cached) image.
    bl_write_floor write-floor-full "$MAIN_BYTES"
    cat "$BL_WORKDIR/ref.qcow2" >/dev/null
    local rep t
    for ((rep = 1; rep <= REPS; rep++)); do
        for t in $(bl_rotate "$rep" virtnbdbackup virtbackup virtnbdbackup-z virtbackup-z nbdcopy); do
            full_one "$t" "$rep"
        done
    done
}

# Case: full backup into a repository (virtrepo init's defaults: 4 MiB chunks, zstd 1) vs -z
# into a directory, same disk, same tool; a note gives the bytes each left on the output.
# virtbackup-repo-enc: the same into an encrypted repository (virtrepo init --encrypt, a key
# without passphrase), for the cost of encryption.
# REPO_CASE names the case (repo, or repo-disk: outputs in REPO_OUT, on disk, and the page
# cache dropped before every command, so the image is read from disk and what the tools
# commit is written back -- the conditions of a backup server).
repo_one() {
    local tool="$1" rep="$2" out="${REPO_OUT:-$BL_OUT}/$REPO_CASE.$1.$2" rc=0
    mkdir -p "$out"
    [ "$REPO_CASE" = repo ] || bl_settle
    case "$tool" in
    virtbackup-z) bl_measure "$REPO_CASE" "$tool" "$rep" "$MAIN_BYTES" "$VIRTBACKUP" -d "$DOM_REF" -l full -z -o "$out/dir" -n || rc=$? ;;
    virtbackup-repo)
        "$VIRTREPO" init "$out/repo" >/dev/null
        bl_measure "$REPO_CASE" "$tool" "$rep" "$MAIN_BYTES" "$VIRTBACKUP" -d "$DOM_REF" -l full -o "$out/repo" -n || rc=$?
        ;;
    virtbackup-repo-enc)
        "$VIRTREPO" init "$out/repo" --encrypt "$REPO_KEY" >/dev/null
        bl_measure "$REPO_CASE" "$tool" "$rep" "$MAIN_BYTES" "$VIRTBACKUP" -d "$DOM_REF" -l full -o "$out/repo" --key "$REPO_KEY" -n || rc=$?
        ;;
    esac
    [ "$rc" -ne 0 ] || bl_note "stored-$REPO_CASE-$tool-$rep" "$(du -sb "$out" | cut -f1) bytes on the output"
    return 0
}

# ... and the restore of what each made (the repository's snapshot vs the -z full), into a
# fresh qcow2 through virtrestore's qemu-nbd, the same command for both.
repo_restore_one() {
    local tool="$1" rep="$2" in="${REPO_OUT:-$BL_OUT}/$REPO_CASE.$1.$2"
    local out="${REPO_OUT:-$BL_OUT}/$REPO_CASE-restore.$1.$2" src="" key=()
    case "$tool" in
    virtbackup-z) src="$in/dir" ;;
    virtbackup-repo) src="$in/repo" ;;
    virtbackup-repo-enc) src="$in/repo" key=(--key "$REPO_KEY") ;;
    esac
    [ -e "$src" ] || return 0
    [ "$REPO_CASE" = repo ] || bl_settle
    bl_measure "$REPO_CASE-restore" "$tool" "$rep" "$MAIN_BYTES" "$VIRTRESTORE" -n -i "$src" -o "$out" "${key[@]}" || true
    rm -rf "$out"
    return 0
}

case_repo() {
    REPO_CASE="${1:-repo}"
    bl_log "==== case $REPO_CASE: $REPS repetitions"
    [ "$REPO_CASE" != repo ] || cat "$BL_WORKDIR/ref.qcow2" >/dev/null
    REPO_KEY=$BL_OUT/repo-bench.key
    [ -e "$REPO_KEY" ] || "$VIRTREPO" -q key create "$REPO_KEY"
    local rep t
    for ((rep = 1; rep <= REPS; rep++)); do
        for t in $(bl_rotate "$rep" virtbackup-z virtbackup-repo virtbackup-repo-enc); do
            repo_one "$t" "$rep"
        done
        sync
        for t in $(bl_rotate "$rep" virtbackup-z virtbackup-repo virtbackup-repo-enc); do
            repo_restore_one "$t" "$rep"
        done
        rm -rf "${REPO_OUT:-$BL_OUT}/$REPO_CASE".*."$rep"
    done
}

# Case: the second full backup of an unchanged domain. Into the repository that holds its
# first full, every chunk is already there: the backup reads and hashes the disk and stores
# an index and a manifest. A -z full into a new directory (what a new monthly chain costs)
# stores all of it again. Notes give the bytes each added to its output.
repo_again_one() {
    local tool="$1" rep="$2" out="$BL_OUT/repo-again.$1.$2" before after
    mkdir -p "$out"
    case "$tool" in
    virtbackup-z)
        if bl_measure repo-again virtbackup-z "$rep" "$MAIN_BYTES" "$VIRTBACKUP" -d "$DOM_REF" -l full -z -o "$out/dir" -n; then
            after=$(du -sb "$out/dir" | cut -f1)
            bl_note repo-again-added-virtbackup-z "rep $rep: a -z full into a new directory stored $after bytes" "$after"
        fi
        ;;
    virtbackup-repo)
        "$VIRTREPO" -q init "$out/repo"
        if bl_measure repo-again virtbackup-repo-first "$rep" "$MAIN_BYTES" "$VIRTBACKUP" -d "$DOM_REF" -l full -o "$out/repo" -n; then
            before=$(du -sb "$out/repo" | cut -f1)
            if bl_measure repo-again virtbackup-repo "$rep" "$MAIN_BYTES" "$VIRTBACKUP" -d "$DOM_REF" -l full -o "$out/repo" -n; then
                after=$(du -sb "$out/repo" | cut -f1)
                bl_note repo-again-added-virtbackup-repo "rep $rep: the first full stored $before bytes in the repository, the second full of the unchanged disk added $((after - before)) bytes (index and manifest)" "$((after - before))"
            fi
        fi
        ;;
    esac
    rm -rf "$out"
    return 0
}

case_repo_again() {
    bl_log "==== case repo-again: $REPS repetitions"
    cat "$BL_WORKDIR/ref.qcow2" >/dev/null
    local rep t
    for ((rep = 1; rep <= REPS; rep++)); do
        for t in $(bl_rotate "$rep" virtbackup-z virtbackup-repo); do
            repo_again_one "$t" "$rep"
        done
    done
}

# Case: the nightly incremental into a repository vs into a stream directory, for three
# write patterns of the same amount of change (CHANGE_COUNT x CHANGE_LEN bytes, 1% of the
# disk): CHANGE_LEN-aligned writes of CHANGE_LEN (4 MiB), scattered 64 KiB writes, scattered
# 4 KiB writes. One domain on its own copy of the main disk carries three chains, each with
# its own checkpoints: a directory, a repository of the default 4 MiB chunks and one of
# `--chunk-size 1M` (their fulls are not timed). Each round writes one pattern, then times
# the three incs (taking turns going first). Notes give, per inc, the bytes read, the bytes
# the output gained (directory: written; repository: new chunks raw and stored) and the
# amplification: bytes read / bytes changed (a repository reads every chunk a write
# touches, whole).
# BENCH_REPO_INC_PATTERNS: a subset (e.g. "aligned" for the full-size corpus, whose outputs
# would not hold the scattered patterns' rounds in memory)
REPO_INC_PATTERNS="${BENCH_REPO_INC_PATTERNS:-aligned 64k 4k}"

# repo_inc_offsets PATTERN ROUND: distinct offsets of the pattern's writes, one a line
repo_inc_offsets() {
    local len
    len=$(repo_inc_len "$1")
    python3 - "$2" "$(numfmt --from=iec "$VSIZE")" "$len" "$((CHANGE_COUNT * CHANGE_LEN / len))" "$1" <<'EOF'
import random, sys
rnd, vsize, ln, count, pattern = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), sys.argv[5]
r = random.Random(3000 + rnd * 10 + {"aligned": 0, "64k": 1, "4k": 2}[pattern])
for o in sorted(r.sample(range(vsize // ln), count)):
    print(o * ln)
EOF
}

repo_inc_len() {
    case "$1" in
    aligned) echo "$CHANGE_LEN" ;;
    64k) echo 65536 ;;
    4k) echo 4096 ;;
    esac
}

# repo_inc_writes DOMAIN SRCDIR LEN OFFSETS_FILE: one HMP qemu-io write of LEN bytes per
# offset, the Nth from file SRCDIR/N (each write its own data: identical writes would
# deduplicate in a repository), all through one virsh (thousands of writes: a virsh per
# write would take minutes); then checks that the domain log shows every "wrote" line.
repo_inc_writes() {
    local dom="$1" src="$2" len="$3" offs="$4" path logf before n i
    path=$(bl_qom_path "$dom" vda)
    logf="/var/log/libvirt/qemu/$dom.log"
    before=$(stat -c %s "$logf")
    n=$(wc -l <"$offs")
    awk -v d="$dom" -v p="$path" -v s="$src" -v l="$len" \
        '{printf "qemu-monitor-command %s --hmp '"'"'qemu-io -d %s \"write -s %s/%d %s %s\"'"'"'\n", d, p, s, NR, $1, l}
         END {printf "qemu-monitor-command %s --hmp '"'"'qemu-io -d %s \"flush\"'"'"'\n", d, p}' \
        "$offs" | virsh -q -c "$BL_URI" >"$BL_LOGDIR/repo-inc.writes.log" 2>&1 ||
        bl_die "qemu-io writes on $dom failed: $(tail -3 "$BL_LOGDIR/repo-inc.writes.log")"
    for i in $(seq 1 600); do
        if [ "$(repo_inc_log_since "$logf" "$before" | grep -c "^wrote $len/$len bytes")" -ge "$n" ]; then
            return 0
        fi
        sleep 0.05
    done
    bl_die "qemu-io writes on $dom did not all take effect; log: $(repo_inc_log_since "$logf" "$before" | tail -5)"
}

# repo_inc_log_since LOG OFFSET: what the domain log gained since it was OFFSET bytes long;
# virtlogd rotates a log that outgrows its limit (2 MiB) into LOG.0, which thousands of
# qemu-io writes per round reach
repo_inc_log_since() {
    if [ "$(stat -c %s "$1")" -ge "$2" ]; then
        tail -c +"$(($2 + 1))" "$1"
    else
        tail -c +"$(($2 + 1))" "$1.0" 2>/dev/null || true
        cat "$1"
    fi
}

# repo_inc_one PATTERN TOOL ROUND BYTES DOMAIN: one timed inc and its notes
repo_inc_one() {
    local pattern="$1" tool="$2" round="$3" bytes="$4" dom="$5" out js="$BL_LOGDIR/repo-inc-$1.$2.$3.json"
    case "$tool" in
    virtbackup-dir) out="$BL_OUT/repo-inc.dir" ;;
    virtbackup-repo) out="$BL_OUT/repo-inc.repo" ;;
    virtbackup-repo1m) out="$BL_OUT/repo-inc.repo1m" ;;
    esac
    bl_measure "repo-inc-$pattern" "$tool" "$round" "$bytes" "$VIRTBACKUP" -d "$dom" -l inc -o "$out" -n --json="$js" || return 0
    local read new stored key="repo-inc-$pattern-$tool"
    read=$(jq '[.disks[].bytes_read] | add' "$js")
    if [ "$tool" = virtbackup-dir ]; then
        new=$(jq '[.disks[].bytes_written] | add' "$js")
        stored=$new
    else
        new=$(jq '[.disks[].bytes_new] | add' "$js")
        stored=$(jq '[.disks[].bytes_stored] | add' "$js")
    fi
    bl_note "$key-read" "round $round: $tool read $read bytes for $bytes bytes changed ($pattern)" "$read"
    bl_note "$key-new" "round $round: $tool added $new bytes of data ($stored bytes stored)" "$new"
    bl_note "$key-stored" "round $round: $tool stored $stored bytes" "$stored"
    bl_note "$key-amp" "round $round: $tool amplification (bytes read / bytes changed)" \
        "$(awk -v r="$read" -v b="$bytes" 'BEGIN {printf "%.3f", r / b}')"
}

case_repo_inc() {
    local bytes=$((CHANGE_COUNT * CHANGE_LEN)) dom round pattern t len offs src
    bl_log "==== case repo-inc: $REPS rounds of each pattern ($REPO_INC_PATTERNS), $bytes bytes changed each"
    bl_settle
    dom=$(bl_create_domain repoinc "$BL_WORKDIR/repoinc.qcow2")
    "$VIRTREPO" -q init "$BL_OUT/repo-inc.repo"
    "$VIRTREPO" -q init "$BL_OUT/repo-inc.repo1m" --chunk-size 1M
    "$VIRTBACKUP" -d "$dom" -l full -o "$BL_OUT/repo-inc.dir" -n >"$BL_LOGDIR/repo-inc.full.dir.log" 2>&1
    "$VIRTBACKUP" -d "$dom" -l full -o "$BL_OUT/repo-inc.repo" -n >"$BL_LOGDIR/repo-inc.full.repo.log" 2>&1
    "$VIRTBACKUP" -d "$dom" -l full -o "$BL_OUT/repo-inc.repo1m" -n >"$BL_LOGDIR/repo-inc.full.repo1m.log" 2>&1
    for ((round = 1; round <= REPS; round++)); do
        for pattern in $REPO_INC_PATTERNS; do
            len=$(repo_inc_len "$pattern")
            offs="$BL_WORKDIR/repo-inc.offsets"
            repo_inc_offsets "$pattern" "$round" >"$offs"
            # the data of the writes: LEN random bytes each, seeded by round and pattern
            src="$BL_WORKDIR/repo-inc.src"
            rm -rf "$src"
            install -d -o root -g kvm -m 0750 "$src"
            python3 - "$src" "$len" "$(wc -l <"$offs")" "$((4000 + round * 10))$len" <<'EOF'
import os, random, sys
d, ln, n, seed = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
r = random.Random(seed)
for i in range(1, n + 1):
    with open(os.path.join(d, str(i)), "wb") as f:
        f.write(r.randbytes(ln))
    os.chmod(os.path.join(d, str(i)), 0o644)
EOF
            repo_inc_writes "$dom" "$src" "$len" "$offs"
            bl_log "repo-inc round $round: $(wc -l <"$offs") writes of $len bytes ($pattern)"
            for t in $(bl_rotate "$round" virtbackup-dir virtbackup-repo virtbackup-repo1m); do
                repo_inc_one "$pattern" "$t" "$round" "$bytes" "$dom"
            done
        done
    done
    bl_note repo-inc-load "1-min load average at the end: $(cut -d' ' -f1-3 /proc/loadavg)"
    bl_remove_domain "$dom"
    rm -rf "$BL_OUT"/repo-inc.* "$BL_WORKDIR/repoinc.qcow2" "$BL_WORKDIR"/repo-inc.*
}

# Case: ten VMs cloned from one image. Each clone is its own complete qcow2 (a copy, not a
# backing file: what a backup reads is the whole disk) with its own 5% changed in 64 KiB
# writes at random places. "One VM's data" is what the first clone's backup alone stored in
# an output of the same kind: its -z directory, or the repository right after its snapshot
# (config, chunks, index, manifest); the ratio is what all ten stored divided by that.
CLONE_DOMS=()
declare -A CLONE_FIRST=()

clones_one() {
    local tool="$1" rep="$2" out="$BL_OUT/clones.$1" i dest wall sum=0 ok=1 first=0 total objects alloc ratio
    local -a z=()
    mkdir -p "$out"
    case "$tool" in
    virtbackup-z) z=(-z) ;;
    virtbackup-repo) "$VIRTREPO" -q init "$out/repo" ;;
    virtbackup-repo64k) "$VIRTREPO" -q init --chunk-size 64K "$out/repo" ;;
    esac
    for ((i = 1; i <= CLONE_COUNT; i++)); do
        dest="$out/repo"
        [ "$tool" != virtbackup-z ] || dest="$out/dir.$i"
        if bl_measure clones "$tool" $(((rep - 1) * CLONE_COUNT + i)) "$CLONE_BYTES" \
            "$VIRTBACKUP" -d "${CLONE_DOMS[i - 1]}" -l full "${z[@]}" -o "$dest" -n; then
            wall=$(tail -n 1 "$BL_RESULTS" | jq .wall)
            sum=$(awk -v a="$sum" -v b="$wall" 'BEGIN {print a + b}')
        else
            ok=0
        fi
        [ "$i" != 1 ] || first=$(du -sb "$out" | cut -f1)
    done
    total=$(du -sb "$out" | cut -f1)
    alloc=$(du -s -B1 "$out" | cut -f1)
    objects=$(find "$out" -type f | wc -l)
    if [ "$ok" = 1 ] && [ "$first" -gt 0 ]; then
        CLONE_FIRST[$tool]=$first
        ratio=$(awk -v t="$total" -v f="$first" 'BEGIN {printf "%.3f", t / f}')
        bl_note "clones-$tool" "rep $rep: the $CLONE_COUNT backups took $(printf '%.2f' "$sum") s (sum of wall times) and stored $total bytes ($alloc allocated on the output file system, $objects files); the first clone's alone $first bytes: ${ratio}x one VM" "$ratio"
    else
        bl_note "clones-$tool" "rep $rep: a backup failed; $total bytes on the output (no ratio)"
    fi
    clones_restore "$tool" "$rep" "$out"
    rm -rf "$out"
    return 0
}

# clones_restore TOOL REP OUT: the last clone restored from what TOOL made (a repository of
# ten VMs: --vm picks it), timed, and compared with that clone's disk: what smaller chunks
# cost when reading back, and a check that the dedup did not mix the clones up.
clones_restore() {
    local tool="$1" rep="$2" out="$3" n=$CLONE_COUNT dest="$BL_OUT/clones-restore" img cmp
    local dom="${CLONE_DOMS[CLONE_COUNT - 1]}"
    local -a src=(-i "$out/repo" --vm "$dom")
    [ "$tool" != virtbackup-z ] || src=(-i "$out/dir.$n")
    [ "$HAVE_RESTORE" = 1 ] && [ -e "${src[1]}" ] || return 0
    if bl_measure clones-restore "$tool" "$rep" "$CLONE_BYTES" "$VIRTRESTORE" -n "${src[@]}" -o "$dest"; then
        if ! img=$(restored_image "$dest"); then
            bl_note "verify-clones-restore-$tool" "rep $rep: no qcow2 image in the restore's output"
        elif cmp=$(qemu-img compare -U -f qcow2 -F qcow2 "$BL_WORKDIR/clone.$n.qcow2" "$img" 2>&1); then
            bl_note "verify-clones-restore-$tool" "rep $rep: clone $n restored, identical to its disk"
        else
            bl_note "verify-clones-restore-$tool" "rep $rep: clone $n restored, DIFFERS from its disk: $cmp"
        fi
    fi
    rm -rf "$dest"
}

case_clones() {
    local base="$BL_WORKDIR/clone-base.qcow2" i img rep t
    bl_log "==== case clones: $CLONE_COUNT clones of a $CLONE_VSIZE base, $CLONE_CHANGE_PERCENT% of each changed, $REPS repetitions"
    corpus_clone_base "$base"
    CLONE_BYTES=$(bl_image_allocated "$base")
    for ((i = 1; i <= CLONE_COUNT; i++)); do
        img="$BL_WORKDIR/clone.$i.qcow2"
        cp --sparse=always "$base" "$img"
        corpus_clone_change "$img" "$i"
        CLONE_DOMS+=("$(bl_create_domain "clone$i" "$img")")
    done
    rm -f "$base"
    bl_note corpus-clones "$CLONE_COUNT clones of a $CLONE_VSIZE base with $CLONE_BYTES bytes of data ($CLONE_TEXT_BYTES of a tar of ${CLONE_TREE[*]}, then nbdkit random), each a qcow2 copy with $CLONE_CHANGE_PERCENT% of its 64 KiB clusters rewritten with random data (seed 3000+N)"
    bl_settle
    cat "$BL_WORKDIR"/clone.*.qcow2 >/dev/null
    for ((rep = 1; rep <= REPS; rep++)); do
        for t in $(bl_rotate "$rep" virtbackup-z virtbackup-repo virtbackup-repo64k); do
            clones_one "$t" "$rep"
        done
    done
    bl_note clones-one-vm "one VM's data = the first clone's backup alone: its -z directory ${CLONE_FIRST[virtbackup-z]:-?} bytes; a repository with 4 MiB chunks after its snapshot ${CLONE_FIRST[virtbackup-repo]:-?} bytes, with 64 KiB chunks ${CLONE_FIRST[virtbackup-repo64k]:-?} bytes"
    for ((i = 1; i <= CLONE_COUNT; i++)); do
        bl_remove_domain "${CLONE_DOMS[i - 1]}"
        rm -f "$BL_WORKDIR/clone.$i.qcow2"
    done
}

# Case: remote backup over loopback vs local, same disk, same tool.
remote_one() {
    local tool="$1" rep="$2" out="$BL_OUT/remote.$1.$2"
    case "$tool" in
    local) bl_measure remote virtbackup-local "$rep" "$MAIN_BYTES" "$VIRTBACKUP" -d "$DOM_REF" -l full -o "$out" -n || true ;;
    remote) bl_measure remote virtbackup-remote "$rep" "$MAIN_BYTES" "$VIRTBACKUP" -d "$DOM_REF" -l full -o "$out" -n \
        -U "$REMOTE_URI" -I 127.0.0.1 -P 10939 || true ;;
    esac
    rm -rf "$out"
}

case_remote() {
    bl_log "==== case remote: $REPS repetitions"
    bl_settle
    # shellcheck source=tests/lib/sshd.sh
    . "$VB_SOURCE_DIR/tests/lib/sshd.sh"
    sshd_start >/dev/null
    REMOTE_URI="qemu+ssh://root@127.0.0.1:$SSHD_PORT/system?keyfile=$SSH_KEY&known_hosts=$SSH_KNOWN_HOSTS&no_verify=1"
    # The fixed cost under the remote runs: every command over SSH starts the user's shell,
    # and bash started by sshd reads ~/.bashrc (on these machines root's runs pyenv).
    local ssh_tool="$VB_BUILD_DIR/tests/ssh-tool" t0 t1
    if [ -x "$ssh_tool" ]; then
        t0=$(date +%s.%N)
        if "$ssh_tool" --port "$SSHD_PORT" --user root --key "$SSH_KEY" \
            --known-hosts "$SSH_KNOWN_HOSTS" 127.0.0.1 run true >/dev/null 2>&1; then
            t1=$(date +%s.%N)
            bl_note ssh-floor "one command over SSH to the test sshd (connect, the remote shell's start-up, exit) takes $(awk -v a="$t0" -v b="$t1" 'BEGIN {printf "%.2f", b - a}') s; a remote backup waits for it once (libvirt's qemu+ssh connection; qemu-img info runs during the copy)"
        fi
    fi
    cat "$BL_WORKDIR/ref.qcow2" >/dev/null
    local rep t
    for ((rep = 1; rep <= REPS; rep++)); do
        for t in $(bl_rotate "$rep" local remote); do
            remote_one "$t" "$rep"
        done
    done
}

# Tuning sweep: one knob at a time around the defaults (1M, 32, 4).
case_sweep() {
    bl_log "==== sweep of virtbackup's VIRTBACKUP_* knobs"
    local -a settings=(
        "VIRTBACKUP_REQUEST_SIZE=256K" "VIRTBACKUP_REQUEST_SIZE=1M" "VIRTBACKUP_REQUEST_SIZE=4M"
        "VIRTBACKUP_REQUEST_SIZE=16M" "VIRTBACKUP_REQUESTS=8" "VIRTBACKUP_REQUESTS=16"
        "VIRTBACKUP_REQUESTS=64" "VIRTBACKUP_CONNECTIONS=1" "VIRTBACKUP_CONNECTIONS=2"
    )
    local rep s out
    for ((rep = 1; rep <= REPS; rep++)); do
        for s in "${settings[@]}"; do
            out="$BL_OUT/sweep.$rep"
            BL_MEASURE_ENV="$s" bl_measure sweep "virtbackup" "$rep" "$MAIN_BYTES" \
                env "$s" "$VIRTBACKUP" -d "$DOM_REF" -l full -o "$out" -n || true
            rm -rf "$out"
        done
    done
}

# ---------------------------------------------------------------------------
# Case 2: nightly incremental; also builds the chains the restore case reads

# apply_change ROUND DOMAIN...: the same 1% change on every domain.
apply_change() {
    local round="$1" src dom
    shift
    src=$(corpus_change_file "$BL_WORKDIR" "$round")
    local -a offs
    mapfile -t offs < <(corpus_change_offsets "$round")
    for dom in "$@"; do
        bl_hmp_writes "$dom" vda "$src" "$CHANGE_LEN" "${offs[@]}"
    done
    rm -f "$src"
}

# rss_floor_note DOMAIN: the peak RSS no libvirt client can go below here (rss_floor.c: load
# libvirt, connect, read the domain's XML), next to the incremental's RSS target.
rss_floor_note() {
    local bin="$BL_WORKDIR/rss_floor" kib loaded connected withxml ours
    rss_mib() { awk -v k="$1" 'BEGIN {printf "%.1f", k / 1024}'; }
    # shellcheck disable=SC2046 # pkg-config gives several words
    if ! cc -O2 -o "$bin" "$BENCH_DIR/rss_floor.c" $(pkg-config --cflags --libs libvirt) 2>"$BL_LOGDIR/rss_floor.log"; then
        bl_note rss-floor "rss_floor.c did not build: $(tail -1 "$BL_LOGDIR/rss_floor.log")"
        return 0
    fi
    kib=$("$bin" "$BL_URI" "$1" 2>>"$BL_LOGDIR/rss_floor.log") || {
        bl_note rss-floor "rss_floor failed: $(tail -1 "$BL_LOGDIR/rss_floor.log")"
        return 0
    }
    read -r loaded connected withxml <<<"$kib"
    # virtbackup --version loads every library the tool links (libnbd, liblz4, libarchive,
    # ...) and connects to nothing: what those add to libvirt's share.
    ours=$(/usr/bin/time -f %M "$VIRTBACKUP" --version 2>&1 >/dev/null | tail -1)
    [[ "$ours" =~ ^[0-9]+$ ]] && ours="; virtbackup --version (all its libraries loaded, no connection) $(rss_mib "$ours") MiB" || ours=""
    bl_note rss-floor "a C program that only loads libvirt is $(rss_mib "$loaded") MiB resident; connected to $BL_URI $(rss_mib "$connected") MiB; with the domain's XML read $(rss_mib "$withxml") MiB (rss_floor.c)$ours: the floor under the tools' peak RSS"
}

case_inc() {
    bl_log "==== case inc: $INC_ROUNDS rounds of a 1% change ($CHANGE_COUNT x $CHANGE_LEN bytes)"
    bl_settle
    DOM_OURS=$(bl_create_domain ours "$BL_WORKDIR/ours.qcow2")
    DOM_REFZ=$(bl_create_domain refz "$BL_WORKDIR/refz.qcow2")
    CHAIN_REF="$BL_OUT/chain.ref" CHAIN_OURS="$BL_OUT/chain.ours" CHAIN_REFZ="$BL_OUT/chain.refz"
    # The fulls that start the chains are not timed here (case full times them).
    virtnbdbackup -d "$DOM_REF" -l full -o "$CHAIN_REF" -n >"$BL_LOGDIR/chain.ref.full.log" 2>&1
    "$VIRTBACKUP" -d "$DOM_OURS" -l full -o "$CHAIN_OURS" -n >"$BL_LOGDIR/chain.ours.full.log" 2>&1
    virtnbdbackup -d "$DOM_REFZ" -l full -z -o "$CHAIN_REFZ" -n >"$BL_LOGDIR/chain.refz.full.log" 2>&1
    local bytes=$((CHANGE_COUNT * CHANGE_LEN)) round t
    for ((round = 1; round <= INC_ROUNDS; round++)); do
        apply_change "$round" "$DOM_REF" "$DOM_OURS" "$DOM_REFZ"
        for t in $(bl_rotate "$round" ref ours refz); do
            case "$t" in
            ref) bl_measure inc virtnbdbackup "$round" "$bytes" virtnbdbackup -d "$DOM_REF" -l inc -o "$CHAIN_REF" -n || true ;;
            ours) bl_measure inc virtbackup "$round" "$bytes" "$VIRTBACKUP" -d "$DOM_OURS" -l inc -o "$CHAIN_OURS" -n || true ;;
            refz) bl_measure inc-z virtnbdbackup "$round" "$bytes" virtnbdbackup -d "$DOM_REFZ" -l inc -z -o "$CHAIN_REFZ" -n || true ;;
            esac
        done
        if [ "$round" = 3 ]; then
            # The disk as of checkpoint virtnbdbackup.3: what a restore of full + 3 incs gives.
            bl_virsh qemu-monitor-command "$DOM_REF" --hmp "qemu-io -d $(bl_qom_path "$DOM_REF" vda) \"flush\"" >/dev/null
            qemu-img convert -U -f qcow2 -O raw "$BL_WORKDIR/ref.qcow2" "$BL_WORKDIR/at3.raw"
        fi
    done
    rss_floor_note "$DOM_OURS"
    # Our chain is not read again; its space on the tmpfs is needed by the restores.
    rm -rf "$CHAIN_OURS"
    bl_remove_domain "$DOM_OURS"
    bl_remove_domain "$DOM_REFZ"
    rm -f "$BL_WORKDIR/ours.qcow2" "$BL_WORKDIR/refz.qcow2"
    inc_ours_z "$bytes"
}

# inc_ours_z BYTES: our -z chain, in a pass of its own once our plain chain is gone (the
# tmpfs does not hold four chains at once): its own copy of the disk, a full -z, then the
# same changes round by round, each followed by a timed inc -z. The reference's inc -z ran in
# the alternating rounds above, so this row is less strictly paired than the others.
inc_ours_z() {
    local bytes="$1" round dom chain="$BL_OUT/chain.oursz"
    dom=$(bl_create_domain oursz "$BL_WORKDIR/oursz.qcow2")
    "$VIRTBACKUP" -d "$dom" -l full -z -o "$chain" -n >"$BL_LOGDIR/chain.oursz.full.log" 2>&1
    for ((round = 1; round <= INC_ROUNDS; round++)); do
        apply_change "$round" "$dom"
        bl_measure inc-z virtbackup "$round" "$bytes" "$VIRTBACKUP" -d "$dom" -l inc -z -o "$chain" -n || true
    done
    rm -rf "$chain"
    bl_remove_domain "$dom"
    rm -f "$BL_WORKDIR/oursz.qcow2"
}

# ---------------------------------------------------------------------------
# Case 3: restore of full + 3 incrementals

restore_one() {
    local tool="$1" rep="$2" out="$BL_OUT/restore.$1.$2" rc=0 case=restore chain="$CHAIN_REF"
    case "$tool" in *-z) case=restore-z chain="$CHAIN_REFZ" ;; esac
    case "$tool" in
    virtnbdrestore*) bl_measure "$case" virtnbdrestore "$rep" "$RESTORE_BYTES" \
        virtnbdrestore -i "$chain" -o "$out" -n --until virtnbdbackup.3 || rc=$? ;;
    virtrestore*)
        if [ "$HAVE_RESTORE" = 0 ]; then
            return 0
        fi
        bl_measure "$case" virtrestore "$rep" "$RESTORE_BYTES" \
            "$VIRTRESTORE" -i "$chain" -o "$out" -n --until virtnbdbackup.3 || rc=$?
        ;;
    virtrepo-import)
        # every point of the chain (full + 3 incs) into a new repository; the latest
        # snapshot restored only to verify it
        [ "$HAVE_RESTORE" = 1 ] && [ -x "$VIRTREPO" ] || return 0
        mkdir -p "$out"
        "$VIRTREPO" -q init "$out/repo"
        bl_measure import virtrepo "$rep" "$RESTORE_BYTES" \
            "$VIRTREPO" import "$chain" "$out/repo" || rc=$?
        if [ "$rc" = 0 ] && [ "$rep" = 1 ]; then
            "$VIRTRESTORE" -i "$out/repo" -o "$out/r" -n >/dev/null 2>&1 || true
            verify_restore virtrepo import "$out/r" "$BL_WORKDIR/at3.raw"
        fi
        rm -rf "$out"
        return 0
        ;;
    nbdcopy)
        mkdir -p "$out"
        bl_measure restore nbdcopy "$rep" "$RESTORE_BYTES" \
            "$BENCH_DIR/nbdcopy-restore.sh" "$BL_WORKDIR/at3.raw" "$out/vda.qcow2" "$VSIZE" || rc=$?
        ;;
    esac
    if [ "$rc" = 0 ] && [ "$rep" = 1 ]; then
        verify_restore "${tool%-z}" "$case" "$out" "$BL_WORKDIR/at3.raw"
    fi
    rm -rf "$out"
    return 0
}

case_restore() {
    [ -f "$BL_WORKDIR/at3.raw" ] || bl_die "case restore needs case inc (the chains)"
    if [ "$HAVE_RESTORE" = 0 ]; then
        bl_note restore-skipped "virtrestore is not built ($VIRTRESTORE missing): only the reference and the limit are measured"
    fi
    RESTORE_BYTES=$(bl_image_allocated "$BL_WORKDIR/at3.raw")
    bl_log "==== case restore: $REPS repetitions, $RESTORE_BYTES bytes of data"
    bl_write_floor write-floor-restore "$RESTORE_BYTES" # leaves the page cache settled
    cat "$BL_WORKDIR/at3.raw" >/dev/null
    local rep t
    for ((rep = 1; rep <= REPS; rep++)); do
        for t in $(bl_rotate "$rep" virtnbdrestore virtrestore virtnbdrestore-z virtrestore-z nbdcopy virtrepo-import); do
            restore_one "$t" "$rep"
        done
    done
}

# ---------------------------------------------------------------------------
# Case 3b: serving a chain: nbdcopy reads everything to null: from virtmap serving
# the reference's chains (plain and -z) at virtnbdbackup.3, side by side with nbdkit's file
# plugin serving a raw image of the same content. Whole commands: virtmap indexes the chain.

map_one() {
    local tool="$1" rep="$2" sock="$BL_WORKDIR/map.sock"
    case "$tool" in
    nbdkit-file)
        bl_measure map nbdkit-file "$rep" "$RESTORE_BYTES" \
            nbdkit -U - file "$BL_WORKDIR/at3.raw" --run 'nbdcopy "$uri" null:' || true ;;
    virtmap)
        bl_measure map virtmap "$rep" "$RESTORE_BYTES" \
            "$VIRTMAP" -d none -r -i "$CHAIN_REF" --until virtnbdbackup.3 --socket "$sock" \
            --run 'nbdcopy "$uri" null:' || true ;;
    virtmap-z)
        bl_measure map-z virtmap "$rep" "$RESTORE_BYTES" \
            "$VIRTMAP" -d none -r -i "$BL_OUT/map.ours-z" --socket "$sock" \
            --run 'nbdcopy "$uri" null:' || true ;;
    virtmap-z-ref)
        bl_measure map-z-ref virtmap "$rep" "$RESTORE_BYTES" \
            "$VIRTMAP" -d none -r -i "$CHAIN_REFZ" --until virtnbdbackup.3 --socket "$sock" \
            --run 'nbdcopy "$uri" null:' || true ;;
    virtmap-repo)
        bl_measure map-repo virtmap "$rep" "$RESTORE_BYTES" \
            "$VIRTMAP" -d none -r -i "$MAP_REPO" --socket "$sock" \
            --run 'nbdcopy "$uri" null:' || true ;;
    # TLS (x509, client certificates verified) over TCP on loopback, the way a remote
    # client reads: virtmap's STARTTLS against nbdkit's, both with GnuTLS
    nbdkit-file-tls)
        bl_measure map-tls nbdkit-file "$rep" "$RESTORE_BYTES" \
            nbdkit -p "$(bl_free_port)" -i 127.0.0.1 --tls=require --tls-certificates "$MAP_PKI/server" \
            --tls-verify-peer file "$BL_WORKDIR/at3.raw" --run "$MAP_PKI/copy.sh \"\$uri\"" || true ;;
    virtmap-tls)
        bl_measure map-tls virtmap "$rep" "$RESTORE_BYTES" \
            "$VIRTMAP" -d none -r -i "$CHAIN_REF" --until virtnbdbackup.3 -p 0 \
            --tls-creds "$MAP_PKI/server" --run "$MAP_PKI/copy.sh \"\$uri\"" || true ;;
    esac
}

# map_latency TOOL: random 4 KiB read latency of the variant TOOL (map_one's names, TLS
# excepted), each server started afresh (its caches empty) for the probe; median and p99
# stored as notes.
map_latency() {
    local tool="$1" sock="$BL_WORKDIR/map.sock" out="$BL_LOGDIR/map-lat.$1.out"
    local probe="$BENCH_DIR/nbd-latency.py \"\$uri\" >'$out'" med p99
    local -a serve
    case "$tool" in
    nbdkit-file) serve=(nbdkit -U - file "$BL_WORKDIR/at3.raw" --run "$probe") ;;
    virtmap) serve=("$VIRTMAP" -d none -r -i "$CHAIN_REF" --until virtnbdbackup.3) ;;
    virtmap-z) serve=("$VIRTMAP" -d none -r -i "$BL_OUT/map.ours-z") ;;
    virtmap-z-ref) serve=("$VIRTMAP" -d none -r -i "$CHAIN_REFZ" --until virtnbdbackup.3) ;;
    virtmap-repo) serve=("$VIRTMAP" -d none -r -i "$MAP_REPO") ;;
    esac
    [ "$tool" = nbdkit-file ] || serve+=(--socket "$sock" --run "$probe")
    if ! "${serve[@]}" >"$BL_LOGDIR/map-lat.$tool.log" 2>&1; then
        bl_note "map-lat-$tool-failed" "$(tail -1 "$BL_LOGDIR/map-lat.$tool.log")"
        return 0
    fi
    read -r med p99 <"$out"
    bl_note "map-lat-median-$tool" "$tool: random 4 KiB read latency median ${med} us" "$med"
    bl_note "map-lat-p99-$tool" "$tool: random 4 KiB read latency p99 ${p99} us" "$p99"
}

# A TCP port on loopback that is free now (nbdkit has no "any port": the bench is alone).
bl_free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# map_pki DIR: a CA, a server certificate for localhost and a client certificate (certtool),
# in the layout qemu, nbdkit, libnbd and virtmap read; DIR/copy.sh URI reads the served export
# (nbds://HOST:PORT[/NAME], the servers' $uri) to null through localhost with the client's
# certificate.
map_pki() {
    local d="$1" who
    mkdir -p "$d/server" "$d/client"
    printf 'cn = bench CA\nca\ncert_signing_key\n' >"$d/ca.info"
    printf 'cn = localhost\ndns_name = localhost\ntls_www_server\nencryption_key\nsigning_key\n' >"$d/server.info"
    printf 'cn = bench client\ntls_www_client\nencryption_key\nsigning_key\n' >"$d/client.info"
    {
        certtool --generate-privkey --outfile "$d/ca-key.pem" &&
            certtool --generate-self-signed --load-privkey "$d/ca-key.pem" --template "$d/ca.info" \
                --outfile "$d/server/ca-cert.pem" &&
            cp "$d/server/ca-cert.pem" "$d/client/ca-cert.pem" &&
            for who in server client; do
                certtool --generate-privkey --outfile "$d/$who/$who-key.pem" &&
                    certtool --generate-certificate --load-privkey "$d/$who/$who-key.pem" \
                        --load-ca-certificate "$d/server/ca-cert.pem" --load-ca-privkey "$d/ca-key.pem" \
                        --template "$d/$who.info" --outfile "$d/$who/$who-cert.pem" || exit 1
            done
    } >"$BL_LOGDIR/map-pki.log" 2>&1 || bl_die "certtool failed (see $BL_LOGDIR/map-pki.log)"
    {
        echo '#!/bin/sh'
        echo 'uri=$1'
        echo 'rest=${uri#*://}'
        echo 'hostport=${rest%%/*}'
        echo 'port=${hostport##*:}'
        echo 'name=' && echo 'case $rest in */*) name=${rest#*/} ;; esac'
        printf 'exec nbdcopy "nbds://localhost:$port/$name?tls-certificates=%s" null:\n' "$d/client"
    } >"$d/copy.sh"
    chmod 0755 "$d/copy.sh"
}

case_map() {
    [ -f "$BL_WORKDIR/at3.raw" ] || bl_die "case map needs case inc (the chains)"
    [ -x "$VIRTMAP" ] || { bl_note map-skipped "virtmap is not built"; return 0; }
    RESTORE_BYTES=$(bl_image_allocated "$BL_WORKDIR/at3.raw")
    bl_log "==== case map: $REPS repetitions, $RESTORE_BYTES bytes of data"
    bl_settle
    # our own compressed format (independent 64 KiB lz4 blocks) of the same disk: a copy
    "$VIRTBACKUP" -d "$DOM_REF" -l copy -z -o "$BL_OUT/map.ours-z" -n >"$BL_LOGDIR/map.ours-z.log" 2>&1 ||
        bl_die "virtbackup -l copy -z for the map case failed"
    # a repository snapshot of the same disk (virtrepo init's defaults): a copy, no checkpoint
    MAP_REPO="$BL_OUT/map.repo"
    { "$VIRTREPO" init "$MAP_REPO" && "$VIRTBACKUP" -d "$DOM_REF" -l copy -o "$MAP_REPO" -n; } \
        >"$BL_LOGDIR/map.repo.log" 2>&1 || bl_die "virtbackup -l copy into a repository for the map case failed"
    "$VIRTMAP" -d none -r -i "$MAP_REPO" --socket "$BL_WORKDIR/map.sock" \
        --run "qemu-img compare -q -f raw -F raw \"\$uri\" '$BL_WORKDIR/at3.raw'" \
        >>"$BL_LOGDIR/map.repo.log" 2>&1 ||
        bl_note map-repo-differs "the repository snapshot served differs from at3.raw"
    MAP_PKI="$BL_WORKDIR/pki"
    map_pki "$MAP_PKI"
    local rep t
    for ((rep = 1; rep <= REPS; rep++)); do
        for t in $(bl_rotate "$rep" nbdkit-file virtmap virtmap-z virtmap-z-ref virtmap-repo nbdkit-file-tls virtmap-tls); do
            map_one "$t" "$rep"
        done
        for t in $(bl_rotate "$rep" nbdkit-file virtmap virtmap-z virtmap-z-ref virtmap-repo); do
            map_latency "$t"
        done
    done
}

# ---------------------------------------------------------------------------
# Case 4: extent handling on a 1 TiB sparse disk and a disk with 100,000 extents

case_extents() {
    bl_log "==== case extents"
    bl_settle
    local dom rep dev case bytes out sock
    dom=$(bl_create_domain ext "$BL_WORKDIR/sparse1t.qcow2" "$BL_WORKDIR/frag.qcow2")
    for ((rep = 1; rep <= REPS; rep++)); do
        for dev in vda vdb; do
            if [ "$dev" = vda ]; then case=extents-1t bytes=$SPARSE_BYTES; else case=extents-frag bytes=$FRAG_BYTES; fi
            out="$BL_OUT/ext.$rep"
            bl_measure "$case" virtbackup "$rep" "$bytes" "$VIRTBACKUP" -d "$dom" -l full -i "$dev" -o "$out" -n -v || true
            grep -m1 -o "$dev: [0-9]* extents[^\"]*" "$BL_LOGDIR/$case.virtbackup.$rep.log" >"$BL_LOGDIR/$case.extents" || true
            rm -rf "$out"
            sock=$(job_start "$dom" "$out" "$dev")
            bl_measure "$case" nbdinfo-map "$rep" "$bytes" nbdinfo --map "nbd+unix:///$dev?socket=$sock" || true
            job_end "$dom"
            rm -rf "$out"
            if [ "$rep" = 1 ] && [ "$REF_EXTENTS" = 1 ]; then
                bl_measure "$case" virtnbdbackup "$rep" "$bytes" timeout "$REF_TIMEOUT" \
                    virtnbdbackup -d "$dom" -l full -i "$dev" -o "$out" -n ||
                    bl_note "$case-ref" "virtnbdbackup failed or ran over ${REF_TIMEOUT}s: $(grep -m1 -E 'CRITICAL|ERROR' "$BL_LOGDIR/$case.virtnbdbackup.$rep.log" | sed 's/.*\]: //' || true)"
                rm -rf "$out"
            fi
        done
    done
    local f
    for f in extents-1t extents-frag; do
        [ -s "$BL_LOGDIR/$f.extents" ] && bl_note "$f-count" "virtbackup -v: $(cat "$BL_LOGDIR/$f.extents")"
    done
    bl_remove_domain "$dom"
}

# ---------------------------------------------------------------------------

main() {
    configure
    check_tools
    check_space
    bl_init
    bl_setup_outputs "$NEED_OUT_GIB"
    record_settings
    [ "$HAVE_RESTORE" = 1 ] || bl_log "virtrestore missing: the restore case measures the reference and the limit only"
    build_corpus
    want_case full && case_full
    want_case repo && case_repo
    if want_case repo-disk; then
        REPO_OUT="$BL_WORKDIR/disk-out"
        mkdir -p "$REPO_OUT"
        case_repo repo-disk
        rm -rf "$REPO_OUT"
        unset REPO_OUT
    fi
    want_case repo-again && case_repo_again
    want_case repo-inc && case_repo_inc
    [ "${BENCH_SWEEP:-0}" = 1 ] && case_sweep
    want_case inc && case_inc
    want_case restore && case_restore
    want_case map && case_map
    # Nothing after this reads the chains: their ~10 GB only take room on the outputs' tmpfs
    # from the remote case's full backups (all of whose runs once failed, cause unrecorded).
    rm -rf "$BL_OUT"/chain.* "$BL_OUT"/map.*
    want_case remote && case_remote
    want_case extents && case_extents
    want_case clones && case_clones
    mkdir -p "$BENCH_DIR/results"
    local name="${BENCH_RESULTS_NAME:-latest}"
    "$BENCH_DIR/report.sh" "$BL_RESULTS" "$BENCH_DIR/results/$name.json" "$BENCH_DIR/results/$name.md"
    cat "$BENCH_DIR/results/$name.md"
}

BENCH_CMDLINE="$(printf '%s ' "${BENCH_QUICK:+BENCH_QUICK=$BENCH_QUICK}" "${BENCH_REPS:+BENCH_REPS=$BENCH_REPS}" "${BENCH_SWEEP:+BENCH_SWEEP=$BENCH_SWEEP}" "${BENCH_CASES:+BENCH_CASES=\"$BENCH_CASES\"}" bench/run.sh | sed 's/^ *//; s/  */ /g')"
main "$@"
