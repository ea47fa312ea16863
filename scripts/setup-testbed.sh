#!/bin/bash
# Prepares this host for real libvirt + qemu tests (see docs/testbed.md in the shared docs):
#   - installs the Debian packages (scripts/install-deps.sh),
#   - gives /dev/kvm the permissions udev would (root:kvm 0660) BEFORE libvirtd probes qemu,
#   - starts virtlogd and libvirtd (no systemd here) unless they already run,
#   - waits until `virsh -c qemu:///system version` answers.
# Idempotent: a second run only checks and returns quickly.
# Env: VB_SKIP_INSTALL=1 skips install-deps.sh (e.g. when it already ran in this session).
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
URI=qemu:///system
READY_TIMEOUT=${VB_LIBVIRT_TIMEOUT:-60}

log() { echo "setup-testbed: $*" >&2; }
die() { echo "setup-testbed: ERROR: $*" >&2; exit 1; }

if [ "$(id -u)" -ne 0 ]; then
    if command -v sudo >/dev/null 2>&1; then
        exec sudo -E "$0" "$@"
    fi
    die "must run as root (and sudo is not available)"
fi

install_packages() {
    if [ "${VB_SKIP_INSTALL:-0}" = 1 ]; then
        return 0
    fi
    "$HERE/install-deps.sh" >&2
}

# PIDs of running processes whose executable is exactly $1 (matches on the
# command name, never on arguments, so we never confuse other processes).
pids_of() {
    pgrep -x "$1" 2>/dev/null || true
}

# /dev/kvm is root:root 0600 here because no udev runs. qemu runs as libvirt-qemu
# (group kvm): without the fix every `virsh define` re-probes qemu for ~44 s.
# Echoes "changed" if it had to change something.
fix_kvm_permissions() {
    [ -e /dev/kvm ] || { log "/dev/kvm missing: domains will use TCG (type=qemu)"; return 0; }
    getent group kvm >/dev/null || die "group kvm does not exist (is qemu-system-x86 installed?)"
    local group mode
    group=$(stat -c %G /dev/kvm)
    mode=$(stat -c %a /dev/kvm)
    if [ "$group" != kvm ] || [ "$mode" != 660 ]; then
        chgrp kvm /dev/kvm
        chmod 0660 /dev/kvm
        log "fixed /dev/kvm permissions (was $group $mode, now kvm 660)"
        echo changed
    fi
}

# A libvirtd that probed qemu while /dev/kvm was unusable keeps a bad capability
# cache and re-probes on every define: stop it and drop the cache.
restart_stale_libvirtd() {
    local pids
    pids=$(pids_of libvirtd)
    [ -n "$pids" ] || return 0
    log "libvirtd ($pids) started before the /dev/kvm fix: restarting it"
    # shellcheck disable=SC2086 # one or more PIDs
    kill $pids
    local _
    for _ in $(seq 1 50); do
        [ -z "$(pids_of libvirtd)" ] && break
        sleep 0.2
    done
    [ -z "$(pids_of libvirtd)" ] || die "libvirtd ($pids) did not exit after SIGTERM"
    rm -rf /var/cache/libvirt/qemu/capabilities/*
}

# daemon CMD...: starts a daemon with every inherited descriptor above 2 closed. libvirtd keeps
# what it inherits: a lock a caller holds on a descriptor (flock around ctest) would be held
# by the daemon for as long as it runs, and block every later run that waits for that lock.
daemon() {
    (
        for fd in /proc/$BASHPID/fd/*; do
            fd=${fd##*/}
            if [ "$fd" -gt 2 ] 2>/dev/null; then eval "exec $fd>&-"; fi
        done
        exec "$@" </dev/null
    )
}

start_daemons() {
    # virtlogd is required: without it a domain start fails with
    # "Failed to connect socket to '/run/libvirt/virtlogd-sock'".
    if [ -z "$(pids_of virtlogd)" ]; then
        log "starting virtlogd"
        daemon virtlogd -d
    fi
    if [ -z "$(pids_of libvirtd)" ]; then
        log "starting libvirtd"
        # A stale pid file of a killed daemon would make libvirtd refuse to start.
        rm -f /run/libvirtd.pid
        daemon libvirtd -d
    fi
}

wait_ready() {
    local deadline=$((SECONDS + READY_TIMEOUT)) out
    while :; do
        if out=$(virsh -c "$URI" version 2>&1); then
            return 0
        fi
        if [ $SECONDS -ge $deadline ]; then
            die "libvirt at $URI not ready after ${READY_TIMEOUT}s; last answer: $out
  running: libvirtd=[$(pids_of libvirtd)] virtlogd=[$(pids_of virtlogd)]"
        fi
        sleep 0.5
    done
}

main() {
    install_packages
    local changed
    changed=$(fix_kvm_permissions)
    if [ "$changed" = changed ]; then
        restart_stale_libvirtd
    fi
    start_daemons
    wait_ready
    log "ready ($(virsh -c "$URI" version 2>/dev/null | sed -n 's/^Running hypervisor: //p'))"
}

main "$@"
