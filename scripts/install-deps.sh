#!/bin/bash
# Installs every Debian package virtbackup needs to build, test, benchmark and demo.
# Idempotent: packages already present are not reinstalled; apt lists are refreshed
# at most once an hour.
set -euo pipefail

if [ "$(id -u)" -ne 0 ]; then
    if command -v sudo >/dev/null 2>&1; then
        exec sudo -E "$0" "$@"
    fi
    echo "install-deps.sh: must run as root (and sudo is not available)" >&2
    exit 1
fi

PACKAGES=(
    # build
    build-essential cmake pkg-config clang-format
    libvirt-dev libnbd-dev liblz4-dev zlib1g-dev libdeflate-dev libjansson-dev libxml2-dev
    libarchive-dev libzip-dev libssh-dev libgnutls28-dev libzstd-dev libssl-dev
    # sanitizer runtime for clang-less gcc builds is part of gcc; keep libasan via gcc
    # hypervisor and daemons
    libvirt-daemon-system libvirt-clients qemu-system-x86 qemu-utils
    # NBD peers used by tests and benchmarks
    libnbd-bin nbdkit fuse3
    # the reference implementation, as a peer
    virtnbdbackup
    # test helpers
    jq e2fsprogs xxd python3-lz4 python3-libvirt time hyperfine
    # remote tests: a loopback sshd, TLS certificates, a SASL-authenticated libvirtd listener
    openssh-server openssh-client gnutls-bin sasl2-bin libsasl2-modules
    # remote tests: a second SSH session turned away (connlimit)
    iptables
    # the lab guest (tests/lib/labguest.sh): a kernel and its modules, a static busybox for its
    # initramfs, sfdisk for partitioned test disks, the guest agent for tests that freeze
    linux-image-amd64 busybox-static fdisk qemu-guest-agent
    # filesystems that test disks carry (tests/lib/lab-disks.sh): xfs and vfat besides ext4;
    # boot disks (tests/lib/lab-bootdisk.sh): GRUB for BIOS and UEFI, OVMF, FAT for the ESP
    xfsprogs dosfstools mtools grub-common grub-pc-bin grub-efi-amd64-bin ovmf
    # fuzzing (libFuzzer) and man page lint
    clang libclang-rt-14-dev mandoc
)

missing=()
for p in "${PACKAGES[@]}"; do
    if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed'; then
        missing+=("$p")
    fi
done

if [ ${#missing[@]} -eq 0 ]; then
    echo "install-deps: all ${#PACKAGES[@]} packages present"
    exit 0
fi

echo "install-deps: installing ${missing[*]}"
stamp=/var/lib/apt/periodic/virtbackup-update-stamp
if [ ! -e "$stamp" ] || [ -n "$(find "$stamp" -mmin +60 2>/dev/null)" ]; then
    apt-get update -q
    mkdir -p "$(dirname "$stamp")" && touch "$stamp"
fi
DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}"
