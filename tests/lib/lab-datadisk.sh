# shellcheck shell=bash
# A data disk for the lab guest, the host's half of a handshake with the guest's script, and
# what the host does with a filesystem image restored from a backup. Source it after
# labguest.sh (and chain.sh).
#
#   lab_ext4_qcow2 IMAGE SIZE [FS_SIZE]  makes IMAGE, a qcow2 (v3, so that it keeps persistent
#       dirty bitmaps) of SIZE holding an ext4 filesystem at its start (no partition table) over
#       the whole disk or its first FS_SIZE, made on the host with 4 KiB blocks: fstrim discards
#       each block group on its own, and with the 1 KiB blocks mke2fs picks for small
#       filesystems group boundaries fall inside qcow2 clusters, which then stay allocated
#   lab_disk_xml IMAGE DEV         the <disk> element for lab_start's XML argument: virtio,
#       qcow2, discard='unmap' (without it qemu drops the guest's discards, and fstrim in the
#       guest trims nothing)
#   lab_signal NAME                creates $LAB_OUT/NAME for the guest, which waits for it with
#       lab_wait_for SECONDS WHAT test -e "$LAB_OUT/NAME"
#   lab_await WHAT CMD...          polls CMD on the host (every 0.1 s) while the guest runs, for
#       what the guest does (e.g. test -e "$LAB_OUT/NAME", which the guest creates with touch);
#       fails, with the guest's console, if the guest ends first or after $LAB_TIMEOUT (300) s
#   lab_fs_recover QCOW2 RAW       RAW: the image as a raw file with the journal replayed
#       (e2fsck -E journal_only: what mounting it would do, and nothing else); then e2fsck -fn
#       must find nothing to repair; LAB_FS_REPLAYED is then "replayed" or "clean" (the image
#       did not need recovery: unmounted cleanly)
#   lab_fs_extract RAW PATH DIR    copies the directory PATH of the filesystem in RAW to DIR
#       (debugfs rdump: no mount, no loop device)

lab_ext4_qcow2() {
    local img="$1" size="$2" fs_size="${3:-}"
    rm -f "$img.raw"
    truncate -s "$size" "$img.raw"
    # shellcheck disable=SC2086 # FS_SIZE: one word or none
    mke2fs -q -t ext4 -b 4096 -E lazy_itable_init=0,lazy_journal_init=0 "$img.raw" $fs_size ||
        tb_fail "mke2fs on $img.raw failed"
    qemu-img convert -f raw -O qcow2 -o compat=1.1 "$img.raw" "$img" ||
        tb_fail "qemu-img convert of $img.raw failed"
    rm -f "$img.raw"
    chown --reference="$TB_WORKDIR" "$img"
}

lab_disk_xml() {
    cat <<EOF
    <disk type='file' device='disk'>
      <driver name='qemu' type='qcow2' discard='unmap'/>
      <source file='$1'/>
      <target dev='$2' bus='virtio'/>
    </disk>
EOF
}

lab_signal() {
    : >"$LAB_OUT/.$1.tmp"
    chmod 0644 "$LAB_OUT/.$1.tmp"
    mv "$LAB_OUT/.$1.tmp" "$LAB_OUT/$1"
}

lab_await() {
    local what="$1" state
    shift
    until "$@"; do
        state=$(tb_virsh domstate "$LAB_DOMAIN" 2>/dev/null || echo gone)
        if [ "$state" != running ] || [ $((SECONDS - LAB_T0)) -ge "${LAB_TIMEOUT:-300}" ]; then
            lab_wait || true
            tb_fail "the guest ended, or did not get on, before $what (state: $state; console above)"
        fi
        sleep 0.1
    done
}

lab_fs_recover() {
    local qcow="$1" raw="$2" rc=0 out
    qemu-img convert -f qcow2 -O raw "$qcow" "$raw" || tb_fail "qemu-img convert of $qcow failed"
    LAB_FS_REPLAYED=clean
    if dumpe2fs -h "$raw" 2>/dev/null | grep -q '^Filesystem features:.* needs_recovery'; then
        LAB_FS_REPLAYED=replayed
    fi
    out=$(e2fsck -E journal_only -y "$raw" 2>&1) || rc=$?
    [ "$rc" -le 1 ] || tb_fail "the journal of $(basename "$qcow") cannot be replayed (e2fsck exit $rc): $out"
    if dumpe2fs -h "$raw" 2>/dev/null | grep -q '^Filesystem features:.* needs_recovery'; then
        tb_fail "e2fsck -E journal_only left $(basename "$qcow") needing recovery: $out"
    fi
    rc=0
    out=$(e2fsck -fn "$raw" 2>&1) || rc=$?
    [ "$rc" -eq 0 ] || tb_fail "e2fsck -fn finds $(basename "$qcow") damaged after journal recovery (exit $rc): $out"
}

lab_fs_extract() {
    local raw="$1" path="$2" dir="$3" out
    mkdir -p "$dir"
    out=$(debugfs -R "rdump $path $dir" "$raw" 2>&1) || tb_fail "debugfs rdump $path from $raw failed: $out"
    ! grep -qiE 'error|not found|cannot' <<<"$out" || tb_fail "debugfs rdump $path from $raw: $out"
}
