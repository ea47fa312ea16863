# shellcheck shell=bash
# Partitioned disks with real filesystems, made on the host from directory trees, for tests
# that read them back through a kernel (the lab guest) at several points of a backup chain.
# Source it after testbed.sh. Needs sfdisk (fdisk), mke2fs (e2fsprogs), mkfs.xfs (xfsprogs),
# mkfs.vfat (dosfstools) and mcopy (mtools); nothing is mounted on the host.
#
#   disk_fs_image TYPE TREE OUT MIB   a filesystem of TYPE (ext4, xfs, vfat) of MIB MiB in
#       the file OUT holding the files of TREE. Each TYPE gets a fixed UUID/serial, so that
#       two states made from different trees differ mostly where the files do.
#   disk_layout OUT LABEL TYPE:MIB...  an empty disk image OUT with a partition table (LABEL
#       dos or gpt) of one partition per TYPE:MIB, from 1 MiB on, 1 MiB aligned, and 1 MiB
#       free at the end (GPT's backup table); the layout goes to OUT.layout, one line
#       "NUMBER TYPE START_BYTES MIB" per partition.
#   disk_state LAYOUT_DISK TREES OUT  a copy of the disk LAYOUT_DISK with partition N holding
#       a filesystem of its type made from TREES/pN.
#   disk_write_changes DOMAIN DEV OLD.raw NEW.raw  writes into the running domain's disk DEV
#       (HMP qemu-io, so that the dirty bitmaps see it, testbed.md) every 64 KiB block in
#       which NEW differs from OLD (OLD being what the disk holds), then asserts that the
#       disk equals NEW (qemu-img compare of the flushed image).

# the UUIDs are fixed, so that the states of one partition differ where their files do
DISK_UUID=5642a1b0-0d15-4c0a-9e11-000000000001
DISK_VFAT_SERIAL=5642a1b0

# disk_xfs_proto TREE: mkfs.xfs's prototype file (xfs_mkfs(8)) for the files of TREE
disk_xfs_proto() {
    echo /dev/null
    echo 0 0
    echo 'd--755 0 0'
    disk_xfs_proto_dir "$1"
    echo '$'
}

disk_xfs_proto_dir() {
    local e name
    for e in "$1"/*; do
        [ -e "$e" ] || continue
        name=${e##*/}
        [[ "$name" =~ ^[A-Za-z0-9._-]+$ ]] || tb_fail "disk_xfs_proto: unsupported file name '$e'"
        if [ -d "$e" ]; then
            echo "$name d--755 0 0"
            disk_xfs_proto_dir "$e"
            echo '$'
        else
            echo "$name ---644 0 0 $e"
        fi
    done
}

disk_fs_image() {
    local type="$1" tree="$2" out="$3" mib="$4"
    rm -f "$out"
    truncate -s "${mib}M" "$out"
    case "$type" in
    ext4)
        mke2fs -q -F -t ext4 -b 4096 -U "$DISK_UUID" -E "hash_seed=$DISK_UUID" -d "$tree" "$out" ||
            tb_fail "mke2fs of $tree failed"
        ;;
    xfs)
        # xfsprogs refuses filesystems below 300 MB: the caller gives at least 320 MiB
        disk_xfs_proto "$tree" >"$out.proto"
        mkfs.xfs -q -f -m "uuid=$DISK_UUID" -p "$out.proto" "$out" || tb_fail "mkfs.xfs of $tree failed"
        rm -f "$out.proto"
        ;;
    vfat)
        mkfs.vfat -i "$DISK_VFAT_SERIAL" -n VBTEST "$out" >/dev/null || tb_fail "mkfs.vfat failed"
        if [ -n "$(ls -A "$tree")" ]; then
            MTOOLS_SKIP_CHECK=1 mcopy -s -i "$out" "$tree"/* ::/ || tb_fail "mcopy of $tree failed"
        fi
        ;;
    *) tb_fail "disk_fs_image: unknown filesystem type $type" ;;
    esac
}

disk_layout() {
    local out="$1" label="$2" spec start=1 n=0 type mib gpt_type
    shift 2
    local script="label: $label"$'\n'"unit: sectors"$'\n'
    [ "$label" = gpt ] && script+="label-id: $DISK_UUID"$'\n'
    [ "$label" = dos ] && script+="label-id: 0x${DISK_VFAT_SERIAL}"$'\n'
    : >"$out.layout"
    for spec in "$@"; do
        type=${spec%%:*}
        mib=${spec#*:}
        n=$((n + 1))
        if [ "$label" = gpt ]; then
            # Microsoft basic data for vfat, Linux filesystem otherwise
            [ "$type" = vfat ] && gpt_type=EBD0A0A2-B9E5-4433-87C0-68B6B72699C7 ||
                gpt_type=0FC63DAF-8483-4772-8E79-3D69D8477DE4
            script+="start=$((start * 2048)), size=$((mib * 2048)), type=$gpt_type, uuid=${DISK_UUID%?}$n"$'\n'
        else
            # FAT32 (LBA) for vfat, Linux otherwise
            script+="start=$((start * 2048)), size=$((mib * 2048)), type=$([ "$type" = vfat ] && echo c || echo 83)"$'\n'
        fi
        echo "$n $type $((start << 20)) $mib" >>"$out.layout"
        start=$((start + mib))
    done
    rm -f "$out"
    truncate -s "$(((start + 1) << 20))" "$out"
    printf '%s' "$script" | sfdisk -q "$out" || tb_fail "sfdisk failed on $out"
}

disk_state() {
    local layout_disk="$1" trees="$2" out="$3" n type start mib
    cp --sparse=always "$layout_disk" "$out"
    while read -r n type start mib; do
        disk_fs_image "$type" "$trees/p$n" "$out.p$n" "$mib"
        dd if="$out.p$n" of="$out" bs=1M seek=$((start >> 20)) conv=notrunc,sparse status=none
        rm -f "$out.p$n"
    done <"$layout_disk.layout"
}

disk_write_changes() {
    local dom="$1" dev="$2" old="$3" new="$4" chunks qom off len file n=0 img out
    chunks=$(mktemp -d "$TB_WORKDIR/chunks.XXXXXX")
    chmod 0755 "$chunks" # qemu's user reads the chunks (qemu-io write -s)
    qom=$(tb_qom_path "$dom" "$dev")
    # qemu-io's output goes to the domain's log: the comparison below asserts the writes
    while read -r off len file; do
        out=$(tb_virsh qemu-monitor-command "$dom" --hmp "qemu-io -d $qom \"write -s $file $off $len\"" 2>&1) ||
            tb_fail "qemu-io write on $dom/$dev: virsh failed: $out"
        [ -z "$out" ] || tb_fail "qemu-io write on $dom/$dev: the monitor said: $out"
        n=$((n + 1))
    done < <(/usr/bin/python3 - "$old" "$new" "$chunks" <<'PY'
import os, sys
# 64 KiB blocks that differ, merged into runs across gaps below 1 MiB, at most 8 MiB each
old, new, out = sys.argv[1:4]
B, GAP, MAX = 64 << 10, 1 << 20, 8 << 20
size = os.path.getsize(new)
assert os.path.getsize(old) == size, "the states of a disk differ in size"
runs = []
with open(old, "rb") as a, open(new, "rb") as b:
    pos = 0
    while pos < size:
        if a.read(B) != b.read(B):
            end = min(pos + B, size)
            if runs and pos - runs[-1][1] < GAP and end - runs[-1][0] <= MAX:
                runs[-1][1] = end
            else:
                runs.append([pos, end])
        pos += B
    for i, (s, e) in enumerate(runs):
        b.seek(s)
        path = os.path.join(out, "chunk%d" % i)
        with open(path, "wb") as f:
            f.write(b.read(e - s))
        os.chmod(path, 0o644)
        print(s, e - s, path)
PY
    )
    tb_qemu_io "$dom" "$dev" flush
    img=$(tb_image "$dom" "$dev")
    out=$(qemu-img compare -U -f qcow2 -F raw "$img" "$new" 2>&1) ||
        tb_fail "$dom/$dev after writing $n changed runs: differs from $(basename "$new"): $out"
    rm -rf "$chunks"
    tb_log "$dom/$dev: wrote $n changed runs, the disk now equals $(basename "$new")"
}
