# shellcheck shell=bash
# Guest-side helpers for tests that run virtmap -d in the lab guest (tests/lib/labguest.sh):
# the test appends this file to its guest script (the guest runs that script with
# labguest-guest.sh sourced first, so lab_fail, lab_assert_eq, ... are there). Needs
# VIRTMAP (the lab's copy of virtmap) set before these are called.
#   owner_of DEV         the process the kernel records for DEV (its thread group), none
#                        when the device is free, gone when that process has ended
#   serve ARGS...        virtmap ARGS --pidfile /tmp/vm.pid in the background (output in
#                        /tmp/vm.out, log in /tmp/vm.log) until it serves; VMPID its pid
#   device_of EXPORT     the device the running virtmap attached EXPORT to (from its log)
#   stop_serving DEV...  SIGTERM: virtmap must exit 0, remove its pid file and leave each
#                        DEV detached (no owner, size 0, no partitions in sysfs or /dev)
#   end_serving [MOUNTPOINT...]  for a part's EXIT trap: unmounts MOUNTPOINTs (default
#                        /mnt/restore), ends virtmap

owner_of() {
    local tid
    tid=$(cat "/sys/block/${1#/dev/}/pid" 2>/dev/null) || {
        echo none
        return
    }
    awk '/^Tgid:/ {print $2}' "/proc/$tid/status" 2>/dev/null || echo gone
}

serve() {
    rm -f /tmp/vm.pid
    "$VIRTMAP" "$@" --pidfile /tmp/vm.pid >/tmp/vm.out 2>/tmp/vm.log &
    VMPID=$!
    for _ in $(seq 1 1200); do
        [ -s /tmp/vm.pid ] && return 0
        kill -0 "$VMPID" 2>/dev/null || break
        sleep 0.1
    done
    sed 's/^/    virtmap| /' /tmp/vm.log
    lab_fail "virtmap $* did not start serving"
}

device_of() {
    local dev
    dev=$(grep -o "/dev/nbd[0-9]*: attached export $1 " /tmp/vm.log | cut -d: -f1)
    [ -n "$dev" ] || lab_fail "virtmap's log names no device for export $1: $(cat /tmp/vm.log)"
    echo "$dev"
}

end_serving() {
    local m
    for m in "${@:-/mnt/restore}"; do
        umount "$m" 2>/dev/null || true
    done
    kill "$VMPID" 2>/dev/null || true
    wait || true
}

stop_serving() {
    local rc=0 dev left
    kill -TERM "$VMPID"
    wait "$VMPID" || rc=$?
    sed 's/^/    virtmap| /' /tmp/vm.log
    lab_assert_eq 0 "$rc" "virtmap's exit status after SIGTERM"
    [ ! -e /tmp/vm.pid ] || lab_fail "virtmap left its pid file /tmp/vm.pid"
    for dev in "$@"; do
        lab_assert_eq none "$(owner_of "$dev")" "$dev's owner after virtmap stopped"
        lab_assert_eq 0 "$(cat "/sys/block/${dev#/dev/}/size")" "$dev's size after virtmap stopped"
        # sysfs, not the nodes: opening one would make the kernel drop them (at any open
        # after a disconnect), hiding partitions that virtmap left behind
        left=$(find "/sys/block/${dev#/dev/}/" -maxdepth 1 -name "${dev#/dev/}p*" -printf '%f ')
        [ -z "$left" ] || lab_fail "$dev's partitions are still there after virtmap stopped: $left"
        lab_wait_for 10 "the nodes of $dev's partitions to go" no_partition_nodes "$dev"
    done
}

no_partition_nodes() {
    ! ls "$1"p* >/dev/null 2>&1
}
