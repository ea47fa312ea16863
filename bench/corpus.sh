# shellcheck shell=bash
# Corpus of the benchmark, built offline and deterministically (fixed seeds, UUIDs, times).
# Sourced by bench/run.sh after lib.sh. The sizes come from run.sh (quick or full mode).
#
# Main disk (qcow2 v3, 64 KiB clusters), laid out like a VM disk:
#   [1 MiB, 1 MiB + FS_SIZE)   a real ext4 filesystem made by `mke2fs -d` from a copy of
#                              directories of /usr (compressible, many files, metadata)
#   [RAND_OFF, VSIZE)          nbdkit sparse-random data (random-content=true, so lz4 finds
#                              nothing to squeeze, as with media, archives, encrypted data)
#   ZERO_RUNS runs of ZERO_LEN written as zeroes over data (qcow2 zero clusters: the
#                              "zero" extents a real disk gets from discards/zeroing)
#   everything else: holes.
# The content of /usr differs between machines, so the ext4 part is deterministic for one
# machine only; the other parts are the same everywhere.

BENCH_LIB_DIR="${BENCH_LIB_DIR:-$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)}"

# corpus_tree DEST DIR...: a copy of the directories as hard links (instant, no extra
# space; mke2fs -d takes one directory). Falls back to a real copy across filesystems.
corpus_tree() {
    local dest="$1" d
    shift
    mkdir -p "$dest"
    for d in "$@"; do
        [ -d "$d" ] || continue
        mkdir -p "$dest$(dirname "$d")"
        cp -al "$d" "$dest$d" 2>/dev/null || cp -a "$d" "$dest$d"
    done
}

# corpus_place SRC_URI_OR_FILE IMAGE OFFSET SIZE: writes a raw source into the qcow2 at
# OFFSET. The raw driver's offset/size options make a window of the qcow2 the target of
# `qemu-img convert`; --target-is-zero keeps the holes of the source as holes.
corpus_place() {
    local src="$1" img="$2" off="$3" size="$4"
    qemu-img convert -n --target-is-zero -f raw "$src" \
        --target-image-opts "driver=raw,offset=$off,size=$size,file.driver=qcow2,file.file.filename=$img"
}

# corpus_main IMAGE: the 16 GiB (quick: 2 GiB) main disk.
corpus_main() {
    local img="$1" work="$BL_WORKDIR/corpus"
    mkdir -p "$work"
    qemu-img create -q -f qcow2 -o compat=1.1 "$img" "$VSIZE"

    bl_log "corpus: ext4 image of $FS_SIZE from ${FS_TREE[*]}"
    corpus_tree "$work/tree" "${FS_TREE[@]}"
    # Fixed UUID, hash seed and clock: the same tree gives the same image.
    E2FSPROGS_FAKE_TIME=1700000000 mke2fs -q -F -t ext4 -m 0 \
        -U 6b1f3c52-8d0e-4b59-9a57-0e3c1c0ffee0 \
        -E hash_seed=3e8b5d7a-2f41-4c6a-b8d2-5a9e7c1d0f42,root_owner=0:0 \
        -d "$work/tree" "$work/fs.raw" "$FS_SIZE" ||
        bl_die "mke2fs -d failed (is $FS_SIZE too small for ${FS_TREE[*]}?)"
    rm -rf "$work/tree"
    corpus_place "$work/fs.raw" "$img" 1048576 "$(stat -c %s "$work/fs.raw")"
    rm -f "$work/fs.raw"

    bl_log "corpus: sparse-random data in [$RAND_OFF, $VSIZE), percent=$RAND_PERCENT"
    local rsize=$(($(numfmt --from=iec "$VSIZE") - RAND_OFF))
    nbdkit -U - sparse-random size="$rsize" percent="$RAND_PERCENT" seed=42 random-content=true \
        --run "qemu-img convert -n --target-is-zero -f raw \"\$uri\" --target-image-opts \
               driver=raw,offset=$RAND_OFF,size=$rsize,file.driver=qcow2,file.file.filename=$img"

    bl_log "corpus: $ZERO_RUNS zero runs of $ZERO_LEN bytes"
    local -a cmds=()
    local k step=$((rsize / ZERO_RUNS))
    for ((k = 0; k < ZERO_RUNS; k++)); do
        cmds+=(-c "write -z $((RAND_OFF + k * step)) $ZERO_LEN")
    done
    qemu-io -f qcow2 "$img" "${cmds[@]}" >/dev/null
    rm -rf "$work"
}

# corpus_sparse_1t IMAGE: 1 TiB virtual, EXT_1T_COUNT scattered 64 KiB extents.
corpus_sparse_1t() {
    local img="$1" raw="$BL_WORKDIR/sparse1t.raw"
    "$BENCH_LIB_DIR/mkextents.py" "$raw" $((1 << 40)) "$EXT_1T_COUNT" 65536 scatter 11
    qemu-img convert -f raw -O qcow2 -o compat=1.1 "$raw" "$img"
    rm -f "$raw"
}

# corpus_fragmented IMAGE: FRAG_COUNT 4 KiB data extents, each followed by a 4 KiB hole.
# 4 KiB clusters: with the default 64 KiB clusters, 100,000 separate extents would need
# 6.4 GB of data; here it is 400 MB, so the test stays about extent handling.
corpus_fragmented() {
    local img="$1" raw="$BL_WORKDIR/frag.raw"
    # the extents, then at least a GiB of empty disk, rounded to whole GiB
    local size=$((((FRAG_COUNT * 8192) >> 30) + 2 << 30))
    "$BENCH_LIB_DIR/mkextents.py" "$raw" "$size" "$FRAG_COUNT" 4096 stride 7
    qemu-img convert -f raw -O qcow2 -o compat=1.1,cluster_size=4096 "$raw" "$img"
    rm -f "$raw"
}

# corpus_change_files DIR ROUND: the data source of one round of "nightly" changes: a
# seeded random file of CHANGE_LEN bytes, readable by qemu (HMP qemu-io write -s reads it).
corpus_change_file() {
    local out="$1/change.$2.bin"
    python3 -c 'import random, sys; sys.stdout.buffer.write(random.Random(int(sys.argv[1])).randbytes(int(sys.argv[2])))' \
        "$((1000 + $2))" "$CHANGE_LEN" >"$out"
    chgrp kvm "$out"
    chmod 0640 "$out"
    echo "$out"
}

# corpus_change_offsets ROUND: CHANGE_COUNT distinct CHANGE_LEN-aligned offsets spread
# over the disk (1% of it in total), different in each round, the same for every domain.
corpus_change_offsets() {
    python3 - "$1" "$(numfmt --from=iec "$VSIZE")" "$CHANGE_LEN" "$CHANGE_COUNT" <<'EOF'
import random, sys
rnd, vsize, ln, count = map(int, sys.argv[1:5])
r = random.Random(2000 + rnd)
for o in sorted(r.sample(range(vsize // ln), count)):
    print(o * ln)
EOF
}

# corpus_clone_base IMAGE: the base image the clones case copies ten times, CLONE_VSIZE
# virtual and every byte of it data (no holes, no zero runs): [0, CLONE_TEXT_BYTES) the start
# of a tar stream of CLONE_TREE (compressible: headers, text, binaries; fixed order, owners
# and times), the rest nbdkit `random` (seed 21: nothing to compress).
corpus_clone_base() {
    local img="$1" raw="$BL_WORKDIR/clone-text.raw"
    local total rsize
    total=$(numfmt --from=iec "$CLONE_VSIZE")
    rsize=$((total - CLONE_TEXT_BYTES))
    qemu-img create -q -f qcow2 -o compat=1.1 "$img" "$total"
    bl_log "clones: base of $CLONE_VSIZE: $CLONE_TEXT_BYTES bytes of a tar of ${CLONE_TREE[*]}, then random"
    # head ends the pipe early (SIGPIPE for tar): only the size of the result matters
    { tar -c --sort=name --mtime=@1700000000 --owner=0 --group=0 --numeric-owner \
        -f - "${CLONE_TREE[@]}" 2>/dev/null || true; } | head -c "$CLONE_TEXT_BYTES" >"$raw"
    [ "$(stat -c %s "$raw")" -eq "$CLONE_TEXT_BYTES" ] ||
        bl_die "a tar of ${CLONE_TREE[*]} gives fewer than $CLONE_TEXT_BYTES bytes"
    corpus_place "$raw" "$img" 0 "$CLONE_TEXT_BYTES"
    rm -f "$raw"
    nbdkit -U - random size="$rsize" seed=21 \
        --run "qemu-img convert -n --target-is-zero -f raw \"\$uri\" --target-image-opts \
               driver=raw,offset=$CLONE_TEXT_BYTES,size=$rsize,file.driver=qcow2,file.file.filename=$img"
}

# corpus_clone_change IMAGE N: clone N's own changes, offline: CLONE_CHANGE_PERCENT of its
# 64 KiB clusters (all of them hold data) overwritten with random data, one 64 KiB write at
# each of as many distinct 64 KiB-aligned offsets, both drawn from seed 3000+N; every write
# has content of its own (qemu-io `write -s` fills a write from the start of a file, so one
# file per write).
corpus_clone_change() {
    local img="$1" n="$2" dir="$BL_WORKDIR/clone-change.$2"
    mkdir -p "$dir"
    local -a cmds
    mapfile -t cmds < <(python3 - "$dir" "$n" "$(numfmt --from=iec "$CLONE_VSIZE")" "$CLONE_CHANGE_PERCENT" <<'PY'
import os, random, sys
d, n, vsize, pct = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4])
r = random.Random(3000 + n)
clusters = vsize // 65536
for k, c in enumerate(sorted(r.sample(range(clusters), round(clusters * pct / 100)))):
    f = os.path.join(d, "w%d" % k)
    with open(f, "wb") as out:
        out.write(r.randbytes(65536))
    print("-c")
    print("write -q -s %s %d 64k" % (f, c * 65536))
PY
    )
    [ "${#cmds[@]}" -gt 0 ] || bl_die "clone $n: no changes generated"
    qemu-io -f qcow2 "$img" "${cmds[@]}" >/dev/null
    rm -rf "$dir"
}
