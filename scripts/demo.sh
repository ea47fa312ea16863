#!/bin/bash
# Quick-start demo: virtbackup backs up a running VM, full and incremental.
# Run as root from the repository root on a Debian 12 machine:   scripts/demo.sh
#
# It installs what is needed, starts libvirt, builds the project, creates a throwaway
# VM (no guest OS, started paused), lets virtbackup make a full and an incremental
# backup around a change of the disk, checks the backup files, applies the chain and
# compares the result with the VM's disk, then lets the reference tool virtnbdbackup
# continue the same chain, to show that the two tools are interchangeable. Everything it creates is removed at the end; it can be run again.
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"

if [ "$(id -u)" -ne 0 ]; then
    if command -v sudo >/dev/null 2>&1; then
        exec sudo -E bash "$0" "$@"
    fi
    echo "demo.sh: must run as root (and sudo is not available)" >&2
    exit 1
fi

say() { printf '\n==> %s\n' "$*"; }

say "Installing the Debian packages and preparing libvirt (idempotent)."
"$REPO/scripts/install-deps.sh"
VB_SKIP_INSTALL=1 "$REPO/scripts/setup-testbed.sh"

say "Building virtbackup (RelWithDebInfo) in $REPO/build."
cmake -S "$REPO" -B "$REPO/build" -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build "$REPO/build" -j2 >/dev/null
export VB_SOURCE_DIR="$REPO" VB_BUILD_DIR="$REPO/build"

# The test bed library gives us the VM helpers and removes the VM and its files on exit.
# shellcheck source=../tests/lib/testbed.sh
source "$REPO/tests/lib/testbed.sh"
tb_init >/dev/null 2>&1
CHECK=$(tb_tool stream-check)
APPLY=$(tb_tool stream-apply)
W="$TB_WORKDIR"

# our_backup LEVEL: one run of virtbackup; its output is shown only on failure.
our_backup() {
    local out
    if ! out=$("$REPO/build/src/backup/virtbackup" -d "$DOM" -l "$1" -o "$W/backup" -n 2>&1); then
        printf '%s\n' "$out" | tail -n 20 >&2
        echo "FAILED: virtbackup -l $1 did not succeed." >&2
        exit 1
    fi
}

# reference_backup LEVEL: one run of the reference tool; its output is shown only on failure.
reference_backup() {
    local out
    if ! out=$(virtnbdbackup -d "$DOM" -l "$1" -o "$W/backup" -S "$W" -f "$W/backup.sock" -n 2>&1); then
        printf '%s\n' "$out" | tail -n 20 >&2
        echo "FAILED: virtnbdbackup -l $1 did not succeed." >&2
        exit 1
    fi
}

say "Creating a throwaway VM with a 128 MiB qcow2 disk, started paused."
tb_create_domain demo 128M 2>/dev/null
DOM="$TB_DOMAIN"
echo "The VM is called $DOM; its disk is ${TB_IMAGES[0]}."

say "Writing data into the running VM's disk through qemu (as a guest would)."
tb_qemu_io "$DOM" vda "write -P 0x11 0 1M"
tb_qemu_io "$DOM" vda "write -P 0x22 16M 40M"
tb_qemu_io "$DOM" vda "write -P 0x33 100M 64k"
echo "Wrote 1 MiB at 0, 40 MiB at 16 MiB and 64 KiB at 100 MiB."

say "virtbackup makes a full backup of the running VM (checkpoint virtnbdbackup.0)."
our_backup full
tb_snapshot_image "$DOM" vda "$W/disk-at-full.raw"

say "Changing the disk: overwriting, zeroing and adding data."
tb_qemu_io "$DOM" vda "write -P 0x44 0 64k"
tb_qemu_io "$DOM" vda "write -z 20M 1M"
tb_qemu_io "$DOM" vda "write -P 0x55 120M 2M"

say "virtbackup makes an incremental backup of just those changes (the dirty bitmap)."
our_backup inc
tb_snapshot_image "$DOM" vda "$W/disk-at-inc1.raw"

say "The reference tool virtnbdbackup $(virtnbdbackup -V 2>&1 | tail -n1) continues the same chain."
tb_qemu_io "$DOM" vda "write -P 0x66 60M 1M"
reference_backup inc
tb_snapshot_image "$DOM" vda "$W/disk-now.raw"
echo "Backup directory now holds:"
(cd "$W/backup" && ls -l -- *.data | awk '{printf "    %-36s %10d bytes\n", $9, $5}')

say "Our stream-check reads every backup file and verifies its structure."
for f in "$W"/backup/*.data; do
    "$CHECK" "$f" | jq -r '"    \(.file | split("/") | last): checkpoint \(.meta.checkpointName), incremental \(.meta.incremental), \(.data_frames) data frames with \(.data_bytes) bytes, \(.zero_frames) zero frames"'
done
echo "All files are well-formed streams: every frame, terminator, checksum and the data size add up."
echo "The zeroed megabyte is a ZERO frame in virtbackup's incremental: thin and exact."

say "Our stream-apply rebuilds the disk from the chain (ordered by metadata, not file times)."
"$APPLY" "$W/restored.raw" "$W"/backup/*.data 2>/dev/null
if cmp -s "$W/restored.raw" "$W/disk-now.raw"; then
    echo "The rebuilt disk is byte-for-byte identical to the VM's disk now."
else
    echo "FAILED: the rebuilt disk differs from the VM's disk." >&2
    exit 1
fi
"$APPLY" --until virtnbdbackup.1 "$W/restored-inc1.raw" "$W"/backup/*.data 2>/dev/null
if cmp -s "$W/restored-inc1.raw" "$W/disk-at-inc1.raw"; then
    echo "Stopping at virtbackup's incremental gives exactly the disk as it was then."
else
    echo "FAILED: the rebuilt disk differs from the VM's disk." >&2
    exit 1
fi
"$APPLY" --until virtnbdbackup.0 "$W/restored-full.raw" "$W"/backup/*.data 2>/dev/null
if cmp -s "$W/restored-full.raw" "$W/disk-at-full.raw"; then
    echo "Stopping at the full backup gives exactly the disk as it was at the full backup."
else
    echo "FAILED: the point-in-time result differs from the disk at the full backup." >&2
    exit 1
fi

say "virtrestore restores the chain into a new qcow2 image, in one pass."
"$REPO/build/src/restore/virtrestore" -n -i "$W/backup" -o "$W/restored" >/dev/null 2>&1 || {
    echo "FAILED: virtrestore did not succeed." >&2
    exit 1
}
img=$(ls "$W"/restored/*.qcow2)
if qemu-img compare -q -f qcow2 -F raw "$img" "$W/disk-now.raw"; then
    echo "The restored image $(basename "$img") is identical to the VM's disk (qemu-img compare)."
else
    echo "FAILED: the restored image differs from the VM's disk." >&2
    exit 1
fi
"$REPO/build/src/restore/virtrestore" -n -i "$W/backup" -o verify 2>&1 | sed 's/^/    /'

say "virtmap serves the backup over NBD without restoring it (for single files, or to boot)."
if "$REPO/build/src/map/virtmap" -d none -r -i "$W/backup" --socket "$W/map.sock" \
    --run "qemu-img compare -q -f raw -F raw 'nbd+unix:///vda?socket=$W/map.sock' '$W/disk-now.raw'" \
    >/dev/null 2>&1; then
    echo "The disk served straight from the backup files is identical to the VM's disk."
else
    echo "FAILED: the disk served by virtmap differs from the VM's disk." >&2
    exit 1
fi

say "Done."
echo "Proved: virtbackup backs up a running VM full and incrementally, the reference tool"
echo "continues its chain, applying the chain reproduces the VM's disk exactly at every"
echo "point in time, virtrestore restores it into a qcow2 image and virtmap serves it."
echo "The VM and all files are being removed now."
