#!/bin/bash
# Instant boot from a repository (virtmap(1), REPOSITORY INPUT): two VMs that boot a tiny
# real OS from their own disk (tests/lib/lab-bootdisk.sh: GRUB, the Debian kernel, an
# initramfs and an /sbin/init script on ext4), one with BIOS and one with UEFI (OVMF, a
# pflash loader and an nvram), are backed up into one repository: a full while shut off,
# a first boot of the original (its OS writes a marker file), an inc. Then, for each,
# virtmap --boot -i REPO --vm NAME --console-log FILE --overlay DIR: the copy reaches its
# init on the disk served from the repository's chunks, reports the inc's marker, writes a
# file and powers off, and virtmap ends by itself with exit status 0; (UEFI) the copy runs
# the loader and nvram that virtmap copied out of the snapshot; the copy's write is in the
# overlay (the export read again with the same --overlay), not in the snapshot; the
# repository's files and the original's image are unchanged (sha256).
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
VIRTREPO="$VB_BUILD_DIR/src/virtrepo/virtrepo"
for t in "$VIRTBACKUP" "$VIRTMAP" "$VIRTREPO"; do [ -x "$t" ] || tb_fail "$t not built"; done
W=$TB_WORKDIR
R=$W/repo
export TMPDIR=$W/tmp # virtmap's work directory (boot file copies) goes here
mkdir -p "$TMPDIR"
"$VIRTREPO" init "$R" >/dev/null

# console_is CONSOLE KEY WANT WHAT: the OS's report KEY in CONSOLE is WANT
console_is() {
    tb_assert_eq "$(bd_console_get "$1" "$2")" "$3" "$4: '@@vb-os $2' on $(basename "$1")"
}
sums_tree() { (cd "$1" && find . -type f -print0 | sort -z | xargs -0 sha256sum); }

declare -A DOMS MARKERS
backup_case() {
    local fw="$1" dom="vbtest-$$-$1" img="$W/$1.qcow2" console="$W/$1-console.log"
    tb_step "$fw: a VM that boots from its own disk; full backup into the repository"
    bd_make_disk "$fw" "$W/$fw.raw" "full-$fw-$$"
    qemu-img convert -O qcow2 -o compat=1.1 "$W/$fw.raw" "$img"
    chown --reference="$W" "$img"
    rm -f "$W/$fw.raw"
    bd_define "$dom" "$fw" "$img" "$console"
    vb_backup -d "$dom" -l full -o "$R"
    tb_step "$fw: the original's first boot writes a marker file; inc backup"
    bd_boot "$dom" "$console"
    MARKERS[$fw]=$(bd_console_get "$console" wrote-marker)
    [ -n "${MARKERS[$fw]}" ] || tb_fail "$fw: the original's OS reported no marker"
    vb_backup -d "$dom" -l inc -o "$R"
    DOMS[$fw]=$dom
}

boot_case() {
    local fw="$1" dom=${DOMS[$1]} root
    local BOOT="vbtest-$$-$fw-booted" bconsole="$W/$fw-booted-console.log" ov="$W/$fw-overlay"
    root=BD_ROOTDEV_$fw
    root=${!root}
    local sums_repo sums_img
    sums_repo=$(sums_tree "$R")
    sums_img=$(sha256sum "$W/$fw.qcow2")
    tb_step "$fw: virtmap --boot -i REPO --vm $dom boots the OS from the repository"
    (
        umask 077
        exec "$VIRTMAP" -d none -i "$R" --vm "$dom" --boot --name "$BOOT" \
            --console-log "$bconsole" --overlay "$ov"
    ) >"$W/$fw-uris" 2>"$W/$fw-virtmap.log" &
    local vmpid=$! live
    tb_on_exit "kill $vmpid"
    tb_wait_for $vmpid test -s "$W/$fw-uris" ||
        tb_fail "virtmap --boot did not become ready: $(cat "$W/$fw-virtmap.log")"
    live=$(tb_virsh dumpxml "$BOOT") || tb_fail "no running $BOOT: $(cat "$W/$fw-virtmap.log")"
    grep -q "protocol='nbd' name='vda'" <<<"$live" || tb_fail "vda is not on the NBD export: $live"
    if [ "$fw" = uefi ]; then
        grep -qE "<loader [^>]*>$TMPDIR/virtmap\.[^/<]*/loader\.$(basename "$BD_OVMF_CODE")</loader>" \
            <<<"$live" || tb_fail "the loader is not virtmap's copy: $(grep -E '<loader|<nvram' <<<"$live")"
        grep -qE "<nvram[^>]*>$TMPDIR/virtmap\.[^/<]*/nvram\." <<<"$live" ||
            tb_fail "the nvram is not virtmap's copy: $(grep -E '<loader|<nvram' <<<"$live")"
        tb_log "the copy runs the loader and nvram copied from the snapshot"
    fi
    if ! bd_wait_off "$BOOT" "$vmpid"; then
        cat "$W/$fw-virtmap.log" >&2
        bd_console_show "$bconsole"
        tb_fail "the booted $BOOT did not power off (or virtmap ended first)"
    fi
    # bound for a hung run only: a working virtmap ends at once when its VM does
    local i rc=0
    for ((i = 0; i < 600; i++)); do kill -0 $vmpid 2>/dev/null || break; sleep 0.1; done
    if kill -0 $vmpid 2>/dev/null; then
        kill -TERM $vmpid
        wait $vmpid || true
        cat "$W/$fw-virtmap.log" >&2
        tb_fail "virtmap is still running 60 s after its VM $BOOT powered off"
    fi
    wait $vmpid || rc=$?
    cat "$W/$fw-virtmap.log" >&2
    bd_console_show "$bconsole"
    tb_assert_eq "$rc" 0 "virtmap's exit status after the guest powered off"
    grep -qF -- "--boot: VM $BOOT shut down: stopping" "$W/$fw-virtmap.log" ||
        tb_fail "virtmap's log does not say that the VM shut down"
    console_is "$bconsole" init "$root" "$fw copy"
    console_is "$bconsole" boot 1 "$fw copy"
    console_is "$bconsole" marker "${MARKERS[$fw]}" "$fw copy (the inc's marker)"
    console_is "$bconsole" end ok "$fw copy"
    local wrote
    wrote=$(bd_console_get "$bconsole" wrote)
    [ "${wrote%% *}" = /var/vb/boot-1 ] || tb_fail "$fw copy: wrote '$wrote', not /var/vb/boot-1"
    tb_log "$fw copy booted from the repository: marker ${MARKERS[$fw]}, wrote $wrote"
    tb_assert_eq "$(sums_tree "$R")" "$sums_repo" "$fw: the repository's files after the boot"
    tb_assert_eq "$(sha256sum "$W/$fw.qcow2")" "$sums_img" "$fw: the original's image"

    tb_step "$fw: the copy's write is in the overlay, not in the snapshot"
    "$VIRTMAP" -d none -i "$R" --vm "$dom" --overlay "$ov" --socket "$W/$fw-ov.sock" \
        --run "nbdcopy \"\$uri\" '$W/$fw-overlay.raw'" 2>"$W/$fw-ov.log" ||
        tb_fail "reading the overlay failed: $(cat "$W/$fw-ov.log")"
    tb_assert_eq "$(bd_cat "$fw" "$W/$fw-overlay.raw" /var/vb/boot-1)" "${wrote#* }" \
        "$fw: /var/vb/boot-1 through the overlay"
    "$VIRTMAP" -d none -r -i "$R" --vm "$dom" --socket "$W/$fw-ro.sock" \
        --run "nbdcopy \"\$uri\" '$W/$fw-snap.raw'" 2>"$W/$fw-ro.log" ||
        tb_fail "reading the snapshot failed: $(cat "$W/$fw-ro.log")"
    ! bd_cat "$fw" "$W/$fw-snap.raw" /var/vb/boot-1 >/dev/null ||
        tb_fail "$fw: the snapshot alone holds /var/vb/boot-1"
    tb_assert_eq "$(bd_cat "$fw" "$W/$fw-snap.raw" /var/vb/marker)" "${MARKERS[$fw]}" \
        "$fw: the snapshot's marker"
    rm -f "$W/$fw-overlay.raw" "$W/$fw-snap.raw"
}

backup_case bios
backup_case uefi
boot_case bios
boot_case uefi
tb_pass "a real OS booted from a repository snapshot (BIOS and UEFI) by virtmap --boot"
