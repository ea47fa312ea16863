#!/bin/bash
# Instant boot of a real operating system from its backup, and a restore that boots (virtmap(1)
# INSTANT BOOT, virtrestore(1) -D). Two VMs boot a tiny OS from their own disk (tests/lib/lab-bootdisk.sh: GRUB, the
# Debian kernel, an initramfs, busybox and an /sbin/init script on ext4), one with BIOS
# (SeaBIOS, GRUB in the MBR) and one with UEFI (OVMF, a pflash loader and an nvram, GRUB as
# EFI/BOOT/BOOTX64.EFI on an ESP). Each, TCG, serial console to a file:
#   - full backup (shut off); first boot of the original, whose OS writes a marker file (a
#     fresh UUID, printed on its console); inc backup;
#   - virtmap --boot -i BACKUP --console-log FILE --overlay DIR (umask 077, so that qemu reads
#     only what virtmap made readable for it): the copy reaches its init on
#     the served disk, reports the marker of the inc and the full's, writes a file and powers
#     off; virtmap ends by itself with exit status 0, saying the VM shut down (at 13cdb49 it
#     kept serving, and warned "cannot stop VM ... Domain not found" when stopped); the live
#     XML of the copy serves vda over NBD and (UEFI) runs the loader and nvram from virtmap's
#     copies; the original's image, console log and nvram and the backup files are unchanged
#     (sha256), and the copy's console went to --console-log only;
#   - the overlay holds the copy's write (the export read again with the same --overlay), the
#     backup alone does not;
#   - virtrestore -D of the chain (umask 077, into an existing directory) defines a VM that
#     boots from the restored image (equal to the original's disk), reports the inc's marker
#     as its boot 1 (the virtmap boot left no trace in the backup), (UEFI) from the nvram and
#     loader copies restored next to it (at 13cdb49 the loader copies were 0600 under umask
#     077, and qemu could not open them).
# The UEFI copy is served on --socket PATH (at 13cdb49 qemu could not open the loader copy
# then: virtmap's work directory stayed private). And first, --boot --trust-config of a UEFI
# VM's backup (a started VM, not a boot): the copy's serial port no longer writes to the
# original's console log, the nvram is the copy's, and the original's console log, nvram and
# image are unchanged (at 13cdb49 the copy's qemu truncated the original's console log).
set -euo pipefail
source "$(dirname "$0")/../lib/testbed.sh"
source "$(dirname "$0")/../lib/chain.sh"
source "$(dirname "$0")/../lib/labguest.sh"
source "$(dirname "$0")/../lib/lab-bootdisk.sh"
tb_init
bd_init
# nbdcopy needs the distribution's libraries ahead of anything else in PATH
export PATH="/usr/bin:$PATH"
VIRTMAP="$VB_BUILD_DIR/src/map/virtmap"
for t in "$VIRTBACKUP" "$VIRTRESTORE" "$VIRTMAP"; do [ -x "$t" ] || tb_fail "$t not built"; done
W=$TB_WORKDIR
export TMPDIR=$W/tmp # virtmap's work directory (boot file copies) goes here
mkdir -p "$TMPDIR"
T0=$SECONDS

# console_is CONSOLE KEY WANT WHAT: the OS's report KEY in CONSOLE is WANT
console_is() {
    tb_assert_eq "$(bd_console_get "$1" "$2")" "$3" "$4: '@@vb-os $2' on $(basename "$1")"
}

# sums FILE...: sha256 of each, one line each; sums_tree DIR: of every file under DIR
sums() { sha256sum "$@"; }
sums_tree() { (cd "$1" && find . -type f -print0 | sort -z | xargs -0 sha256sum); }

boot_case() {
    local fw="$1" dom="vbtest-$$-$1" root
    local B="$W/$fw-backup" img="$W/$fw.qcow2" console="$W/$fw-console.log"
    root=BD_ROOTDEV_$fw
    root=${!root}

    tb_step "$fw: a VM that boots from its own disk; full backup while it is shut off"
    local full_marker="full-$fw-$$-$RANDOM$RANDOM"
    bd_make_disk "$fw" "$W/$fw.raw" "$full_marker"
    qemu-img convert -O qcow2 -o compat=1.1 "$W/$fw.raw" "$img"
    chown --reference="$W" "$img"
    rm -f "$W/$fw.raw"
    bd_define "$dom" "$fw" "$img" "$console"
    vb_backup -d "$dom" -l full -o "$B"

    tb_step "$fw: the original's first boot; its OS writes a marker file"
    bd_boot "$dom" "$console"
    console_is "$console" init "$root" "$fw original"
    console_is "$console" boot 0 "$fw original"
    console_is "$console" marker-full "$full_marker" "$fw original"
    console_is "$console" end ok "$fw original"
    local marker
    marker=$(bd_console_get "$console" wrote-marker)
    [ -n "$marker" ] || tb_fail "$fw: the original's OS reported no marker"

    tb_step "$fw: inc backup of the marker"
    vb_backup -d "$dom" -l inc -o "$B"
    assert_meta "$B/vda.full.data" false virtnbdbackup.0 "" false
    assert_meta "$B/vda.inc.virtnbdbackup.1.data" true virtnbdbackup.1 virtnbdbackup.0 false
    if [ "$fw" = uefi ]; then
        if [ ! -f "$B/$(basename "$BD_OVMF_CODE").virtnbdbackup.1" ] ||
            [ ! -f "$B/$(basename "$BD_NVRAM").virtnbdbackup.1" ]; then
            tb_fail "uefi: the backup holds no loader and nvram copies: $(ls "$B")"
        fi
    fi
    local originals=("$img" "$console")
    [ "$fw" = bios ] || originals+=("$BD_NVRAM")
    local sums_backup sums_orig
    sums_backup=$(sums_tree "$B")
    sums_orig=$(sums "${originals[@]}")

    local BOOT="vbtest-$$-$fw-booted" bconsole="$W/$fw-booted-console.log" ov="$W/$fw-overlay"
    tb_step "$fw: virtmap --boot boots the OS from the backup and ends when it powers off"
    # uefi with --socket: the boot file copies must be reachable for qemu then too
    local sock=()
    [ "$fw" = bios ] || sock=(--socket "$W/$fw-boot.sock")
    # umask 077, as root's may be: qemu must still read what virtmap copied for it
    (
        umask 077
        exec "$VIRTMAP" -d none -i "$B" --boot --name "$BOOT" --console-log "$bconsole" \
            --overlay "$ov" "${sock[@]}"
    ) >"$W/$fw-uris" 2>"$W/$fw-virtmap.log" &
    local vmpid=$! live
    tb_on_exit "kill $vmpid"
    tb_wait_for $vmpid test -s "$W/$fw-uris" ||
        tb_fail "virtmap --boot did not become ready: $(cat "$W/$fw-virtmap.log")"
    # the OS needs far longer than this to boot under TCG: the copy is still running
    live=$(tb_virsh dumpxml "$BOOT") || tb_fail "no running $BOOT: $(cat "$W/$fw-virtmap.log")"
    grep -q "protocol='nbd' name='vda'" <<<"$live" || tb_fail "vda is not on the NBD export: $live"
    if [ "$fw" = uefi ]; then
        grep -qE "<loader [^>]*>$TMPDIR/virtmap\.[^/<]*/loader\.$(basename "$BD_OVMF_CODE")</loader>" \
            <<<"$live" || tb_fail "the loader is not virtmap's copy: $(grep -E '<loader|<nvram' <<<"$live")"
        grep -qE "<nvram[^>]*>$TMPDIR/virtmap\.[^/<]*/nvram\.$(basename "$BD_NVRAM")</nvram>" \
            <<<"$live" || tb_fail "the nvram is not virtmap's copy: $(grep -E '<loader|<nvram' <<<"$live")"
        tb_log "the copy runs the loader and nvram copied from the backup"
    fi
    if ! bd_wait_off "$BOOT" "$vmpid"; then
        cat "$W/$fw-virtmap.log" >&2
        bd_console_show "$bconsole"
        tb_fail "the booted $BOOT did not power off (or virtmap ended first)"
    fi
    # bound for a hung run only: a working virtmap ends at once when its VM does
    local i
    for ((i = 0; i < 600; i++)); do kill -0 $vmpid 2>/dev/null || break; sleep 0.1; done
    if kill -0 $vmpid 2>/dev/null; then
        kill -TERM $vmpid
        wait $vmpid || true
        cat "$W/$fw-virtmap.log" >&2
        tb_fail "virtmap is still running 60 s after its VM $BOOT powered off"
    fi
    local rc=0
    wait $vmpid || rc=$?
    cat "$W/$fw-virtmap.log" >&2
    bd_console_show "$bconsole"
    tb_assert_eq "$rc" 0 "virtmap's exit status after the guest powered off"
    grep -qF -- "--boot: VM $BOOT shut down: stopping" "$W/$fw-virtmap.log" ||
        tb_fail "virtmap's log does not say that the VM shut down"
    ! grep -q "cannot stop VM" "$W/$fw-virtmap.log" || tb_fail "virtmap warned about stopping the VM"
    ! tb_virsh list --all --name | grep -qx "$BOOT" || tb_fail "$BOOT still exists"
    console_is "$bconsole" init "$root" "$fw copy"
    console_is "$bconsole" boot 1 "$fw copy"
    console_is "$bconsole" marker-full "$full_marker" "$fw copy"
    console_is "$bconsole" marker "$marker" "$fw copy (the inc's marker)"
    console_is "$bconsole" end ok "$fw copy"
    local wrote wrote_uuid
    wrote=$(bd_console_get "$bconsole" wrote)
    [ "${wrote%% *}" = /var/vb/boot-1 ] || tb_fail "$fw copy: wrote '$wrote', not /var/vb/boot-1"
    wrote_uuid=${wrote#* }
    tb_log "$fw copy booted from the backup: marker $marker, wrote /var/vb/boot-1 = $wrote_uuid"
    tb_assert_eq "$(sums_tree "$B")" "$sums_backup" "$fw: the backup files after the boot"
    tb_assert_eq "$(sums "${originals[@]}")" "$sums_orig" "$fw: the original's image, console log, nvram"
    ! grep -aq "@@vb-os boot 1" "$console" || tb_fail "the copy wrote into the original's console log"
    tb_log "$fw: backup, original image, console log$([ "$fw" = bios ] || echo ", nvram") unchanged"

    tb_step "$fw: the copy's write is in the overlay, not in the backup"
    "$VIRTMAP" -d none -i "$B" --overlay "$ov" --socket "$W/$fw-ov.sock" \
        --run "nbdcopy \"\$uri\" '$W/$fw-overlay.raw'" 2>"$W/$fw-ov.log" ||
        tb_fail "reading the overlay failed: $(cat "$W/$fw-ov.log")"
    tb_assert_eq "$(bd_cat "$fw" "$W/$fw-overlay.raw" /var/vb/boot-1)" "$wrote_uuid" \
        "$fw: /var/vb/boot-1 through the overlay"
    "$VIRTMAP" -d none -r -i "$B" --socket "$W/$fw-ro.sock" \
        --run "nbdcopy \"\$uri\" '$W/$fw-backup.raw'" 2>"$W/$fw-ro.log" ||
        tb_fail "reading the backup failed: $(cat "$W/$fw-ro.log")"
    ! bd_cat "$fw" "$W/$fw-backup.raw" /var/vb/boot-1 >/dev/null ||
        tb_fail "$fw: the backup alone holds /var/vb/boot-1"
    tb_assert_eq "$(bd_cat "$fw" "$W/$fw-backup.raw" /var/vb/marker)" "$marker" "$fw: the backup's marker"
    rm -f "$W/$fw-overlay.raw" "$W/$fw-backup.raw"

    local RDOM="vbtest-$$-$fw-restored" R="$W/$fw-restore" rconsole="$W/$fw-restored-console.log"
    tb_step "$fw: virtrestore -D of the chain defines a VM that boots"
    tb_on_exit "bd_remove_domain $RDOM"
    # into an existing directory qemu may enter, with umask 077 (the loader must stay readable)
    install -d -m 0755 "$R"
    (
        umask 077
        exec "$VIRTRESTORE" -n -i "$B" -o "$R" -D -N "$RDOM"
    ) >"$W/$fw-restore.log" 2>&1 || tb_fail "virtrestore -D failed: $(cat "$W/$fw-restore.log")"
    cat "$W/$fw-restore.log" >&2
    local rimg rxml
    rimg="$R/$(basename "$img")"
    qemu-img compare -f qcow2 -F qcow2 "$rimg" "$img" >/dev/null ||
        tb_fail "the restored $rimg differs from the original's disk"
    rxml=$(tb_virsh dumpxml --inactive "$RDOM")
    grep -qF "<source file='$rimg'/>" <<<"$rxml" || tb_fail "$RDOM is not on $rimg: $rxml"
    if [ "$fw" = uefi ]; then
        if ! grep -qF ">$R/$(basename "$BD_OVMF_CODE")</loader>" <<<"$rxml" ||
            ! grep -qF ">$R/$(basename "$BD_NVRAM")</nvram>" <<<"$rxml"; then
            tb_fail "$RDOM does not boot from the restored loader and nvram: $(grep -E '<loader|<nvram' <<<"$rxml")"
        fi
    fi
    # the restored serial port is a pty: the test adds a log to see what the OS says
    sed "s|<serial type='pty'>|&<log file='$rconsole' append='on'/>|" <<<"$rxml" >"$W/$RDOM.xml"
    tb_virsh define "$W/$RDOM.xml" >/dev/null || tb_fail "cannot add a console log to $RDOM"
    bd_boot "$RDOM" "$rconsole"
    console_is "$rconsole" init "$root" "$fw restored"
    console_is "$rconsole" boot 1 "$fw restored (the virtmap boot is not in the backup)"
    console_is "$rconsole" marker "$marker" "$fw restored (the inc's marker)"
    console_is "$rconsole" end ok "$fw restored"
    tb_assert_eq "$(sums "${originals[@]}")" "$sums_orig" "$fw: the original's files after the restore"
    tb_log "$fw: done after $((SECONDS - T0))s"
}

trust_case() {
    local dom="vbtest-$$-tsrc" B="$W/tsrc-backup" TB="vbtest-$$-trusted" console="$W/tsrc-console.log"
    local originals before live
    tb_step "--boot --trust-config keeps the copy off the original's console log and nvram"
    bd_make_disk uefi "$W/tsrc.raw" "trusted-$$"
    qemu-img convert -O qcow2 -o compat=1.1 "$W/tsrc.raw" "$W/tsrc.qcow2"
    chown --reference="$W" "$W/tsrc.qcow2"
    rm -f "$W/tsrc.raw"
    bd_define "$dom" uefi "$W/tsrc.qcow2" "$console"
    vb_backup -d "$dom" -l full -o "$B"
    echo "the original VM's console output" >>"$console"
    originals=("$console" "$BD_NVRAM" "$W/tsrc.qcow2")
    before=$(sums "${originals[@]}")
    "$VIRTMAP" -d none -i "$B" --boot --trust-config --name "$TB" \
        --run "virsh -q -c qemu:///system dumpxml $TB >'$W/trust-live.xml'" \
        >/dev/null 2>"$W/trust.log" || tb_fail "virtmap --boot --trust-config failed: $(cat "$W/trust.log")"
    cat "$W/trust.log" >&2
    live=$(cat "$W/trust-live.xml")
    ! grep -qF "$console" <<<"$live" ||
        tb_fail "the trusted copy writes to the original's console log: $(grep -F "$console" <<<"$live")"
    grep -q "<serial type='pty'>" <<<"$live" || tb_fail "the copy's serial port is not a pty: $live"
    ! grep -qF ">$BD_NVRAM<" <<<"$live" || tb_fail "the trusted copy runs the original's nvram"
    grep -qF -- "--boot: serial: wrote to $console, the original VM's file: now a pty" \
        "$W/trust.log" || tb_fail "virtmap does not say it moved the serial port off the original's file"
    tb_assert_eq "$(sums "${originals[@]}")" "$before" "the original's console log, nvram and image"
    tb_log "--trust-config: the copy used none of the original's files"
}

trust_case
boot_case bios
boot_case uefi
tb_log "run time: $((SECONDS - T0))s"
tb_pass "a real OS booted from its backup (BIOS and UEFI) by virtmap --boot and by virtrestore -D"
