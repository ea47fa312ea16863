# shellcheck shell=bash disable=SC2034 # LAB_* globals are read by the sourcing tests
# The lab guest: a real Linux kernel booted under qemu for a test, running the host's own
# binaries (the freshly built tools included), for what the host cannot do itself (it has
# no /dev/nbd*, no modules to load). Source it after testbed.sh and call lab_init after
# tb_init. Facts this relies on: testbed.md, "A lab guest: a real Linux kernel in a test".
#
#   lab_init [MODULE...]   picks the kernel (the newest /boot/vmlinuz-K with /lib/modules/K)
#       and builds once per kernel and content, under $TB_ROOT/lab-cache/K-HASH/, an
#       initramfs: busybox-static, tests/lib/labguest-init.sh as /init and the modules
#       virtio_pci virtio_blk virtio_console 9pnet_virtio 9p nbd ext4 plus MODULE...,
#       with their dependencies first (modinfo -F depends) and their soft dependencies
#       (modinfo -F softdep, aliases resolved by modprobe -R; these may fail to load).
#   lab_run SCRIPT [XML]   boots a guest that runs SCRIPT and powers off; returns SCRIPT's
#       exit status. XML (optional) is added to the domain's <devices> (disks, channels).
#       The guest's console (kernel messages, the script's output) is copied into the
#       test's log, prefixed "guest| ". A guest that gives no verdict within $LAB_TIMEOUT
#       seconds (default 300) or never reaches its script fails the test.
#   lab_start SCRIPT [XML] / lab_wait: the same in two halves, for a test that acts on
#       the host while the guest runs (LAB_DOMAIN names the running domain).
#
# The guest: domain vbtest-<pid>-labN (removed after its run, and by tb_cleanup), TCG (type
# qemu; LAB_DOMAIN_TYPE=kvm tries KVM: on these machines, themselves VMs, a KVM guest never
# got through the kernel's decompressor in 120 s, while TCG boots in about 8 s), $LAB_MEMORY
# MiB (default 512), one vCPU, direct kernel boot with console=ttyS0 and the serial console
# written to a file, ACPI so that `poweroff -f` ends it, on_poweroff, on_reboot and on_crash
# destroy (panic=-1 turns a panic into a reboot, hence an end). Modules are loaded with their
# defaults (nbd: 16 devices of 16 partitions each). The host's / is shared read-only over
# virtio-9p (tag hostroot, cache=loose; multidevs=remap, without which the host's /proc and
# /sys, both inode 1 of their filesystems, are one directory in the guest) and the script
# runs chrooted into it: the host's paths are the guest's paths, with tmpfs on /tmp, /run,
# /var/tmp and /mnt (private to the guest, so the host's files there are not seen; /var/lock
# is /run/lock) and the guest's own /proc,
# /sys, /dev (devtmpfs, so /dev/nbd* and partitions appear by themselves; devpts, /dev/shm).
# The script runs as root under bash with tests/lib/labguest-guest.sh sourced first
# (lab_step, lab_fail, lab_assert_eq, lab_expect_fail, lab_steps, lab_wait_for; `set -euo
# pipefail`), in /tmp, with PATH, HOME=/tmp, TMPDIR=/tmp, LAB_OUT, LAB_LIB (that file, for
# scripts the guest starts itself), the host's VB_SOURCE_DIR and sanitizer options
# (*SAN_OPTIONS), and VB_BUILD_DIR naming a copy of the build's programs in the run's
# directory (lab_stage_build: the build tree may be hidden from the guest or unreadable for
# qemu's user), so a guest script names them "$VB_BUILD_DIR/src/map/virtmap", evaluated in
# the guest, never by the host's path. The loopback interface is up.
#
# Files: 9p reads and writes as qemu's user (libvirt-qemu, group kvm), whatever the guest's
# uid. What the guest reads must be readable by that user: $TB_WORKDIR is (root:kvm 0770)
# but backups are written 0600 root, so give the guest copies with readable modes
# (lab_readable PATH...). Results go back on the console (the verdict, messages) or as files
# in $LAB_OUT: a directory per run, shared writable (tag labout, accessmode squash: files
# belong to libvirt-qemu on the host), seen at the same path in the guest and on the host.
#
# Globals after lab_init: LAB_KVER, LAB_KERNEL, LAB_INITRD. After lab_start/lab_run:
# LAB_DOMAIN, LAB_RUN_DIR (the run's files: script, console.log, domain XML), LAB_OUT,
# LAB_SECONDS (wall time of the last run).

LAB_BASE_MODULES=(virtio_pci virtio_blk virtio_console 9pnet_virtio 9p nbd ext4)
LAB_KVER=""
LAB_KERNEL=""
LAB_INITRD=""
LAB_DOMAIN=""
LAB_RUN_DIR=""
LAB_OUT=""
LAB_SECONDS=0
LAB_RUNS=0
LAB_NONCE=""
LAB_STARTED=0

lab_log() { tb_log "lab: $*"; }

# The newest kernel that has its modules installed.
lab_pick_kernel() {
    local k best=""
    for k in /boot/vmlinuz-*; do
        k=${k#/boot/vmlinuz-}
        [ -d "/lib/modules/$k" ] || continue
        if [ -z "$best" ] || [ "$(printf '%s\n%s\n' "$best" "$k" | sort -V | tail -1)" = "$k" ]; then
            best=$k
        fi
    done
    echo "$best"
}

# lab_add_module NAME KIND: appends NAME's file to LAB_ORDER after its dependencies
# (KIND hard: must load; soft: may fail). Modules built into the kernel are skipped.
lab_add_module() {
    local name="${1//-/_}" kind="$2" path dep w alias
    [[ " ${LAB_SEEN[*]} " == *" $name "* ]] && return 0
    LAB_SEEN+=("$name")
    path=$(modinfo -k "$LAB_KVER" -n "$name" 2>/dev/null) ||
        tb_fail "lab: kernel $LAB_KVER has no module $name"
    [ "$path" != "(builtin)" ] || return 0
    for dep in $(modinfo -k "$LAB_KVER" -F depends "$name" | tr ',' ' '); do
        lab_add_module "$dep" "$kind"
    done
    # "pre: crypto-crc32c post: x": aliases, each resolved to every module providing it
    for w in $(modinfo -k "$LAB_KVER" -F softdep "$name"); do
        case "$w" in pre: | post:) continue ;; esac
        for alias in $(modprobe -S "$LAB_KVER" -R "$w" 2>/dev/null); do
            lab_add_module "$alias" soft
        done
    done
    LAB_ORDER+=("$kind $path")
}

# lab_pack_initramfs INIT MOUNTPOINT OUT: an initramfs (cpio, newc) of busybox, INIT as /init,
# an empty /MOUNTPOINT for it and the modules of LAB_ORDER (the caller's lab_add_module
# results) in load order, listed in /modules; written to OUT. The lab guest and the boot
# disks of lab-bootdisk.sh both make theirs with it.
lab_pack_initramfs() {
    local init="$1" mnt="$2" out="$3" stage="$3.stage" entry kind path base
    rm -rf "$stage"
    mkdir -p "$stage"/{bin,dev,proc,sys,tmp,lib/modules} "$stage/$mnt"
    cp /usr/bin/busybox "$stage/bin/busybox"
    install -m 0755 "$init" "$stage/init"
    mknod -m 0600 "$stage/dev/console" c 5 1
    : >"$stage/modules"
    for entry in "${LAB_ORDER[@]}"; do
        kind=${entry%% *}
        path=${entry#* }
        base=$(basename "$path")
        case "$base" in
        *.ko) cp "$path" "$stage/lib/modules/$base" ;;
        *.ko.xz) xz -dc "$path" >"$stage/lib/modules/${base%.xz}" ;;
        *.ko.zst) zstd -qdc "$path" >"$stage/lib/modules/${base%.zst}" ;;
        *.ko.gz) gzip -dc "$path" >"$stage/lib/modules/${base%.gz}" ;;
        *) tb_fail "lab: module file of unknown type: $path" ;;
        esac
        echo "$kind ${base%.ko*}" >>"$stage/modules"
    done
    (cd "$stage" && find . | busybox cpio -o -H newc -R 0:0 2>/dev/null) >"$out"
    rm -rf "$stage"
}

lab_build_initrd() {
    local dir="$1"
    lab_pack_initramfs "$TB_LIB_DIR/labguest-init.sh" host "$dir/initrd.tmp"
    cp "/boot/vmlinuz-$LAB_KVER" "$dir/vmlinuz.tmp"
    chmod 0644 "$dir/initrd.tmp" "$dir/vmlinuz.tmp"
    mv "$dir/vmlinuz.tmp" "$dir/vmlinuz"
    mv "$dir/initrd.tmp" "$dir/initrd"
}

lab_init() {
    [ -n "$TB_WORKDIR" ] || tb_fail "lab_init: call tb_init first"
    if [ ! -x /usr/bin/busybox ] || [ -z "$(lab_pick_kernel)" ] || ! command -v modinfo >/dev/null; then
        "$VB_SOURCE_DIR/scripts/install-deps.sh" >&2
    fi
    LAB_KVER=$(lab_pick_kernel)
    [ -n "$LAB_KVER" ] || tb_fail "lab: no /boot/vmlinuz-K with /lib/modules/K (package linux-image-amd64)"
    # ldd fails on a static executable: the initramfs has no libraries
    if ldd /usr/bin/busybox >/dev/null 2>&1; then
        tb_fail "lab: /usr/bin/busybox is not static (package busybox-static)"
    fi
    LAB_SEEN=()
    LAB_ORDER=()
    local m
    for m in "${LAB_BASE_MODULES[@]}" "$@"; do
        lab_add_module "$m" hard
    done
    local key
    key=$( (
        cat "$TB_LIB_DIR/labguest-init.sh"
        printf '%s\n' "${LAB_ORDER[@]}"
        sha256sum /usr/bin/busybox "/boot/vmlinuz-$LAB_KVER"
    ) | sha256sum | cut -c1-16)
    local cache="$TB_ROOT/lab-cache" dir
    dir="$cache/$LAB_KVER-$key"
    install -d -o root -g kvm -m 0750 "$cache"
    # one builder at a time; a finished directory is never changed again
    (
        flock 9
        if [ ! -s "$dir/initrd" ] || [ ! -s "$dir/vmlinuz" ]; then
            install -d -o root -g kvm -m 0750 "$dir"
            lab_build_initrd "$dir"
            tb_log "lab: built $dir/initrd ($(stat -c %s "$dir/initrd") bytes, ${#LAB_ORDER[@]} modules)"
        fi
    ) 9>"$cache/.lock"
    LAB_KERNEL="$dir/vmlinuz"
    LAB_INITRD="$dir/initrd"
    tb_on_exit lab_cleanup
    lab_log "kernel $LAB_KVER, initramfs $LAB_INITRD"
}

# lab_readable PATH...: copies nothing, but makes PATHs (files or trees) readable by qemu's
# user through group kvm; use it on the test's own copies, never on the originals.
lab_readable() {
    chgrp -R kvm "$@"
    chmod -R g+rX "$@"
}

lab_cleanup() {
    if [ -n "$LAB_DOMAIN" ]; then
        tb_remove_domain "$LAB_DOMAIN"
    fi
}

# lab_stage_build DIR: copies the build's programs (src/*/virt*, tests/<tool>) to DIR/build
# and tests/lsan.supp to DIR, readable by qemu's user. The guest runs these copies: the
# build tree itself may be where the guest cannot see it (under /tmp, its own tmpfs there)
# or where qemu's user, which reads the 9p share, may not enter (a home directory).
lab_stage_build() {
    local dir="$1" f rel
    while IFS= read -r f; do
        rel=${f#"$VB_BUILD_DIR"/}
        install -D -m 0755 "$f" "$dir/build/$rel"
    done < <(find "$VB_BUILD_DIR/src" "$VB_BUILD_DIR/tests" -maxdepth 2 -type f -perm -u+x \
        ! -path '*/CMakeFiles/*' ! -name '*.so*' ! -name 'test_*' 2>/dev/null)
    [ -x "$dir/build/src/map/virtmap" ] || tb_fail "lab: no programs found under $VB_BUILD_DIR"
    install -m 0644 "$VB_SOURCE_DIR/tests/lsan.supp" "$dir/lsan.supp"
    chgrp -R kvm "$dir/build"
}

lab_start() {
    local script="$1" extra="${2:-}"
    [ -n "$LAB_INITRD" ] || tb_fail "lab_start: call lab_init first"
    [ -f "$script" ] || tb_fail "lab_start: no script $script"
    [ "$LAB_STARTED" = 0 ] || tb_fail "lab_start: the previous guest ($LAB_DOMAIN) was not waited for"
    LAB_RUNS=$((LAB_RUNS + 1))
    LAB_DOMAIN="vbtest-$$-lab$LAB_RUNS"
    LAB_RUN_DIR="$TB_WORKDIR/lab$LAB_RUNS"
    LAB_OUT="$LAB_RUN_DIR/out"
    LAB_NONCE="$$-$LAB_RUNS-$RANDOM$RANDOM"
    rm -rf "$LAB_RUN_DIR"
    install -d -o root -g kvm -m 0750 "$LAB_RUN_DIR"
    install -d -o libvirt-qemu -g kvm -m 0770 "$LAB_OUT"
    install -m 0644 "$script" "$LAB_RUN_DIR/script.sh"
    install -m 0644 "$TB_LIB_DIR/labguest-guest.sh" "$LAB_RUN_DIR/guest-lib.sh"
    lab_stage_build "$LAB_RUN_DIR"
    {
        local v
        for v in VB_SOURCE_DIR ASAN_OPTIONS UBSAN_OPTIONS; do
            [ -z "${!v:-}" ] || printf 'export %s=%q\n' "$v" "${!v}"
        done
        printf 'export VB_BUILD_DIR=%q\n' "$LAB_RUN_DIR/build"
        # the suppressions file staged with the programs (the source tree may be unreadable)
        [ -z "${LSAN_OPTIONS:-}" ] ||
            printf 'export LSAN_OPTIONS=%q\n' "${LSAN_OPTIONS//$VB_SOURCE_DIR\/tests\/lsan.supp/$LAB_RUN_DIR/lsan.supp}"
        printf 'export LAB_LIB=%q\n' "$LAB_RUN_DIR/guest-lib.sh"
        printf 'source "$LAB_LIB"\nsource %q\n' "$LAB_RUN_DIR/script.sh"
    } >"$LAB_RUN_DIR/run.sh"
    chmod 0644 "$LAB_RUN_DIR/run.sh"
    cat >"$LAB_RUN_DIR/domain.xml" <<EOF
<domain type='${LAB_DOMAIN_TYPE:-qemu}'>
  <name>$LAB_DOMAIN</name>
  <memory unit='MiB'>${LAB_MEMORY:-512}</memory>
  <vcpu>1</vcpu>
  <os>
    <type arch='x86_64'>hvm</type>
    <kernel>$LAB_KERNEL</kernel>
    <initrd>$LAB_INITRD</initrd>
    <cmdline>console=ttyS0 quiet panic=-1 lab.run=$LAB_RUN_DIR/run.sh lab.nonce=$LAB_NONCE lab.out=$LAB_OUT</cmdline>
  </os>
  <features><acpi/></features>
  <on_poweroff>destroy</on_poweroff>
  <on_reboot>destroy</on_reboot>
  <on_crash>destroy</on_crash>
  <devices>
    <serial type='file'>
      <source path='$LAB_RUN_DIR/console.log'/>
      <target port='0'/>
    </serial>
    <filesystem type='mount' accessmode='passthrough' multidevs='remap'>
      <source dir='/'/>
      <target dir='hostroot'/>
      <readonly/>
    </filesystem>
    <filesystem type='mount' accessmode='squash'>
      <source dir='$LAB_OUT'/>
      <target dir='labout'/>
    </filesystem>
$extra
    <memballoon model='none'/>
  </devices>
</domain>
EOF
    tb_virsh define "$LAB_RUN_DIR/domain.xml" >/dev/null || tb_fail "lab: virsh define $LAB_RUN_DIR/domain.xml failed"
    LAB_T0=$SECONDS
    tb_virsh start "$LAB_DOMAIN" >/dev/null || tb_fail "lab: virsh start $LAB_DOMAIN failed"
    LAB_STARTED=1
    lab_log "started $LAB_DOMAIN (${LAB_DOMAIN_TYPE:-qemu}) running $script"
}

# Prints the guest's console into the log and returns the script's exit status.
lab_wait() {
    local timeout="${LAB_TIMEOUT:-300}" state verdict rc
    [ "$LAB_STARTED" = 1 ] || tb_fail "lab_wait: no guest started"
    LAB_STARTED=0
    while :; do
        state=$(tb_virsh domstate "$LAB_DOMAIN" 2>/dev/null || echo gone)
        [ "$state" = running ] || [ "$state" = paused ] || break
        if [ $((SECONDS - LAB_T0)) -ge "$timeout" ]; then
            tb_virsh destroy "$LAB_DOMAIN" >/dev/null 2>&1 || true
            state="destroyed after ${timeout}s"
            break
        fi
        sleep 0.2
    done
    LAB_SECONDS=$((SECONDS - LAB_T0))
    local console="$LAB_RUN_DIR/console.log"
    tr -d '\r' <"$console" 2>/dev/null | sed 's/^/    guest| /' >&2 || true
    verdict=$(tr -d '\r' <"$console" 2>/dev/null | grep -a "^@@lab-verdict $LAB_NONCE " | tail -1 || true)
    lab_log "$LAB_DOMAIN ended ($state) after ${LAB_SECONDS}s"
    tb_remove_domain "$LAB_DOMAIN"
    [ -n "$verdict" ] || tb_fail "lab: the guest $LAB_DOMAIN gave no verdict (state: $state; console above)"
    rc=${verdict##* }
    [ "$rc" != init-failed ] || tb_fail "lab: the guest's init failed before the script (console above)"
    return "$rc"
}

lab_run() {
    lab_start "$@"
    lab_wait
}
