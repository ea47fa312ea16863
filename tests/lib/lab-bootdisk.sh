# shellcheck shell=bash disable=SC2034 # BD_* globals are read by the sourcing tests
# Boot disks: VMs that boot a real (tiny) operating system from their own disk, made at test
# time from Debian packages only, for tests of what users do with a backup of such a VM
# (boot it from the backup, restore and start it). Source after testbed.sh and labguest.sh
# (its kernel choice and module resolution are reused); call bd_init after tb_init.
#
#   bd_init           picks the kernel (lab_pick_kernel) and builds, in $TB_WORKDIR/bootdisk,
#       the initramfs the disks carry: busybox-static, tests/lib/lab-bootdisk-initrd.sh as
#       /init, the modules virtio_pci virtio_blk ext4 with their dependencies (gzip'ed)
#   bd_make_disk FIRMWARE RAW MARKER   writes RAW (64 MiB), a disk that boots by itself:
#       bios: an MBR with one ext4 partition (the root, with /boot); GRUB's boot.img in the
#         MBR's boot code and a core.img of grub-mkimage (i386-pc) in the gap before the
#         partition, with its configuration embedded (no /boot/grub on the disk);
#       uefi: GPT, an ESP (FAT, mkfs.vfat + mtools) holding EFI/BOOT/BOOTX64.EFI (grub-mkimage
#         x86_64-efi, configuration embedded) and the ext4 root as partition 2.
#       GRUB loads /boot/vmlinuz and /boot/initrd.img from the root and boots with
#       console=ttyS0 root=/dev/vdaN; the initramfs mounts the root and runs its /sbin/init,
#       tests/lib/lab-bootdisk-os.sh (its header lists what it reports on the console as
#       "@@vb-os KEY VALUE" lines). /etc/vb-marker holds MARKER. Nothing is mounted on the
#       host: the filesystems are made from directories (mke2fs -d, mcopy) and put in place
#       with dd.
#   bd_define NAME FIRMWARE IMAGE CONSOLE   defines the persistent domain NAME (TCG, type
#       qemu: KVM guests do not boot on these machines) on the qcow2 IMAGE as vda (virtio),
#       $BD_MEMORY MiB (default 512: with 256, GRUB's EFI build ran out of memory loading the
#       kernel), ACPI (so the OS's poweroff -f ends it), on_poweroff/on_reboot/on_crash
#       destroy, the serial console written to the file CONSOLE; uefi: OVMF's
#       OVMF_CODE_4M.fd as the pflash loader and an nvram made by libvirt from
#       OVMF_VARS_4M.fd at $TB_WORKDIR/NAME_VARS.fd (BD_NVRAM). Removed by the test's cleanup
#       (with its nvram and checkpoints).
#   bd_boot NAME CONSOLE   starts NAME, waits until it is shut off (or gone, if transient)
#       and copies CONSOLE into the test's log ("os| "); fails after $BD_TIMEOUT seconds
#       (default 300: a bound for a hung guest, not a speed expectation)
#   bd_wait_off NAME [PID]  waits until NAME is shut off or gone; 1 after $BD_TIMEOUT seconds,
#       or once the process PID (the one keeping NAME alive, if given) has exited first
#   bd_console_get CONSOLE KEY   the value of the last "@@vb-os KEY VALUE" line in CONSOLE
#   bd_console_show CONSOLE      copies CONSOLE into the test's log
#   bd_cat FIRMWARE RAW PATH     prints the file PATH of the root filesystem of the disk image
#       RAW (a raw copy of a boot disk), read with debugfs (nothing mounted); returns 1 (and
#       logs why) if there is no such file
# Globals: BD_KERNEL, BD_INITRD (after bd_init), BD_ROOTDEV_bios/uefi (the root partition as
# the guest names it), BD_NVRAM (after bd_define of a uefi domain).

BD_DIR=""
BD_KERNEL=""
BD_INITRD=""
BD_NVRAM=""
BD_ROOTDEV_bios=/dev/vda1
BD_ROOTDEV_uefi=/dev/vda2
BD_OVMF_CODE=/usr/share/OVMF/OVMF_CODE_4M.fd
BD_OVMF_VARS=/usr/share/OVMF/OVMF_VARS_4M.fd
BD_MODULES=(virtio_pci virtio_blk ext4)

bd_log() { tb_log "bootdisk: $*"; }

bd_init() {
    [ -n "$TB_WORKDIR" ] || tb_fail "bd_init: call tb_init first"
    local c need=0
    for c in grub-mkimage mkfs.vfat mcopy mmd sfdisk mke2fs /usr/bin/busybox; do
        command -v "$c" >/dev/null 2>&1 || need=1
    done
    [ -f /usr/lib/grub/i386-pc/boot.img ] && [ -d /usr/lib/grub/x86_64-efi ] &&
        [ -f "$BD_OVMF_CODE" ] && [ -f "$BD_OVMF_VARS" ] || need=1
    [ -n "$(lab_pick_kernel)" ] || need=1
    [ "$need" = 0 ] || "$VB_SOURCE_DIR/scripts/install-deps.sh" >&2
    local LAB_KVER LAB_SEEN=() LAB_ORDER=() m
    LAB_KVER=$(lab_pick_kernel)
    [ -n "$LAB_KVER" ] || tb_fail "bootdisk: no /boot/vmlinuz-K with /lib/modules/K (package linux-image-amd64)"
    for m in "${BD_MODULES[@]}"; do
        lab_add_module "$m" hard
    done
    BD_DIR="$TB_WORKDIR/bootdisk"
    rm -rf "$BD_DIR"
    mkdir -p "$BD_DIR"
    lab_pack_initramfs "$TB_LIB_DIR/lab-bootdisk-initrd.sh" newroot "$BD_DIR/initrd.cpio"
    gzip -9 <"$BD_DIR/initrd.cpio" >"$BD_DIR/initrd.img"
    rm -f "$BD_DIR/initrd.cpio"
    BD_KERNEL="/boot/vmlinuz-$LAB_KVER"
    BD_INITRD="$BD_DIR/initrd.img"
    bd_log "kernel $LAB_KVER, initramfs $BD_INITRD ($(stat -c %s "$BD_INITRD") bytes, ${#LAB_ORDER[@]} modules)"
}

# bd_grub_image FIRMWARE OUT: GRUB with its configuration embedded: it loads the kernel and
# the initramfs from the root partition and boots them.
bd_grub_image() {
    local fw="$1" out="$2" part format modules cfg="$BD_DIR/grub-$1.cfg" root
    case "$fw" in
    bios) part="hd0,msdos1" format=i386-pc modules=(biosdisk part_msdos) ;;
    uefi) part="hd0,gpt2" format=x86_64-efi modules=(part_gpt) ;;
    *) tb_fail "bd_grub_image: unknown firmware '$fw' (bios or uefi)" ;;
    esac
    root=BD_ROOTDEV_$fw
    cat >"$cfg" <<EOF
set root=($part)
linux /boot/vmlinuz console=ttyS0 root=${!root} rw panic=-1 quiet
initrd /boot/initrd.img
boot
EOF
    grub-mkimage -O "$format" -o "$out" -c "$cfg" -p "($part)/boot/grub" \
        "${modules[@]}" ext2 linux ||
        tb_fail "bootdisk: grub-mkimage -O $format failed"
}

# bd_root_fs DIR MARKER SIZE_MIB: an ext4 image DIR/root.ext4 holding the OS.
bd_root_fs() {
    local dir="$1" marker="$2" size="$3" tree="$1/root-tree" a
    rm -rf "$tree"
    mkdir -p "$tree"/{bin,sbin,etc,boot,dev,proc,sys,tmp,var}
    cp /usr/bin/busybox "$tree/bin/busybox"
    for a in $(busybox --list); do
        [ "$a" = busybox ] || ln -s busybox "$tree/bin/$a"
    done
    install -m 0755 "$TB_LIB_DIR/lab-bootdisk-os.sh" "$tree/sbin/init"
    printf '%s\n' "$marker" >"$tree/etc/vb-marker"
    cp "$BD_KERNEL" "$tree/boot/vmlinuz"
    cp "$BD_INITRD" "$tree/boot/initrd.img"
    mke2fs -q -t ext4 -L vbroot -E root_owner=0:0 -d "$tree" "$dir/root.ext4" "${size}M" >/dev/null ||
        tb_fail "bootdisk: mke2fs of the root filesystem failed"
    rm -rf "$tree"
}

bd_make_disk() {
    local fw="$1" raw="$2" marker="$3" dir
    [ -n "$BD_INITRD" ] || tb_fail "bd_make_disk: call bd_init first"
    dir=$(mktemp -d "$BD_DIR/disk.XXXXXX")
    rm -f "$raw"
    truncate -s 64M "$raw"
    case "$fw" in
    bios)
        # the root from 1 MiB to the end; GRUB's core.img goes into the sectors before it
        printf 'label: dos\nstart=2048, type=83, bootable\n' | sfdisk -q "$raw"
        bd_root_fs "$dir" "$marker" 63
        bd_grub_image bios "$dir/core.img"
        [ "$(stat -c %s "$dir/core.img")" -le $((2047 * 512)) ] ||
            tb_fail "bootdisk: core.img does not fit before the partition"
        # boot.img's code only (440 bytes): the disk signature and partition table stay;
        # it loads the core.img from sector 1, where grub-mkimage's diskboot expects it
        dd if=/usr/lib/grub/i386-pc/boot.img of="$raw" bs=440 count=1 conv=notrunc status=none
        dd if="$dir/core.img" of="$raw" bs=512 seek=1 conv=notrunc status=none
        dd if="$dir/root.ext4" of="$raw" bs=1M seek=1 conv=notrunc,sparse status=none
        ;;
    uefi)
        printf 'label: gpt\nstart=2048, size=16384, type=uefi\nstart=18432, type=linux\n' |
            sfdisk -q "$raw"
        bd_root_fs "$dir" "$marker" 54 # the backup GPT holds the last sectors
        bd_grub_image uefi "$dir/BOOTX64.EFI"
        mkfs.vfat -C -n VBESP "$dir/esp.img" 8192 >/dev/null || tb_fail "bootdisk: mkfs.vfat failed"
        mmd -i "$dir/esp.img" ::/EFI ::/EFI/BOOT
        mcopy -i "$dir/esp.img" "$dir/BOOTX64.EFI" ::/EFI/BOOT/BOOTX64.EFI ||
            tb_fail "bootdisk: mcopy of BOOTX64.EFI failed"
        dd if="$dir/esp.img" of="$raw" bs=1M seek=1 conv=notrunc status=none
        dd if="$dir/root.ext4" of="$raw" bs=1M seek=9 conv=notrunc,sparse status=none
        ;;
    *) tb_fail "bd_make_disk: unknown firmware '$fw' (bios or uefi)" ;;
    esac
    rm -rf "$dir"
    bd_log "$fw disk $raw made (marker '$marker')"
}

bd_define() {
    local name="$1" fw="$2" img="$3" console="$4" os
    os="<type arch='x86_64'>hvm</type>"
    if [ "$fw" = uefi ]; then
        BD_NVRAM="$TB_WORKDIR/${name}_VARS.fd"
        os+="
    <loader readonly='yes' type='pflash'>$BD_OVMF_CODE</loader>
    <nvram template='$BD_OVMF_VARS'>$BD_NVRAM</nvram>"
    fi
    cat >"$TB_WORKDIR/$name.xml" <<EOF
<domain type='${LAB_DOMAIN_TYPE:-qemu}'>
  <name>$name</name>
  <memory unit='MiB'>${BD_MEMORY:-512}</memory>
  <vcpu>1</vcpu>
  <os>
    $os
    <boot dev='hd'/>
  </os>
  <features><acpi/></features>
  <on_poweroff>destroy</on_poweroff>
  <on_reboot>destroy</on_reboot>
  <on_crash>destroy</on_crash>
  <devices>
    <disk type='file' device='disk'>
      <driver name='qemu' type='qcow2'/>
      <source file='$img'/>
      <target dev='vda' bus='virtio'/>
    </disk>
    <serial type='file'>
      <source path='$console'/>
      <target port='0'/>
    </serial>
    <memballoon model='none'/>
  </devices>
</domain>
EOF
    tb_on_exit "bd_remove_domain $name"
    tb_virsh define "$TB_WORKDIR/$name.xml" >/dev/null || tb_fail "bootdisk: virsh define $name failed"
    bd_log "defined $name ($fw) on $img, console $console"
}

# A domain with checkpoints and an nvram: plain `virsh undefine` refuses both.
bd_remove_domain() {
    tb_virsh destroy "$1" >/dev/null 2>&1 || true
    tb_virsh undefine --nvram --checkpoints-metadata --snapshots-metadata "$1" >/dev/null 2>&1 ||
        tb_virsh undefine --nvram "$1" >/dev/null 2>&1 || true
}

bd_wait_off() {
    local name="$1" pid="${2:-}" deadline=$((SECONDS + ${BD_TIMEOUT:-300})) state
    while :; do
        state=$(tb_virsh domstate "$name" 2>/dev/null || echo gone)
        case "$state" in
        "shut off" | gone) return 0 ;;
        esac
        [ -z "$pid" ] || kill -0 "$pid" 2>/dev/null || return 1
        [ "$SECONDS" -lt "$deadline" ] || return 1
        sleep 0.2
    done
}

bd_console_show() {
    tr -d '\r' <"$1" 2>/dev/null | sed 's/^/    os| /' >&2 || true
}

bd_console_get() {
    tr -d '\r' <"$1" 2>/dev/null | sed -n "s/^@@vb-os $2 //p" | tail -1
}

bd_cat() {
    local fw="$1" raw="$2" path="$3" part="$TB_WORKDIR/bd_cat.$$.ext4" skip err rc=0
    case "$fw" in
    bios) skip=1 ;;
    uefi) skip=9 ;;
    *) tb_fail "bd_cat: unknown firmware '$fw' (bios or uefi)" ;;
    esac
    dd if="$raw" of="$part" bs=1M skip="$skip" status=none
    # debugfs exits 0 for a missing file too: it says so on stderr
    err=$(debugfs -R "cat $path" "$part" 2>&1 >"$part.out") || rc=$?
    if [ "$rc" -ne 0 ] || grep -q "not found" <<<"$err"; then
        tb_log "bd_cat: no $path in $raw: $(grep -v '^debugfs [0-9]' <<<"$err")"
        rc=1
    else
        cat "$part.out"
    fi
    rm -f "$part" "$part.out"
    return "$rc"
}

bd_boot() {
    local name="$1" console="$2" t0=$SECONDS
    tb_virsh start "$name" >/dev/null || tb_fail "bootdisk: virsh start $name failed"
    if ! bd_wait_off "$name"; then
        tb_virsh destroy "$name" >/dev/null 2>&1 || true
        bd_console_show "$console"
        tb_fail "bootdisk: $name still running after ${BD_TIMEOUT:-300}s (console above)"
    fi
    bd_console_show "$console"
    bd_log "$name booted and powered off in $((SECONDS - t0))s"
}
