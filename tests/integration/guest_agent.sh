#!/bin/bash
# Freezing through the qemu guest agent, in one boot of a lab guest (tests/lib/labguest.sh,
# lab-serve.sh, lab-agent.sh) with two ext4 data disks, vda on /mnt/a and vdb on /mnt/b, a
# writer on each that fsyncs files and logs what it synced, and the host's qemu-ga on the
# virtio-serial channel org.qemu.guest_agent.0. The host backs the running guest up; the
# guest acts and answers when asked. Five parts, each reported on its own:
#   freeze: a full backup freezes both filesystems and thaws them. Held at the stall point
#     after the job started (debug builds), a write to each waits in the kernel's freeze
#     barrier and goes through after the thaw; the agent's log has the freeze and the thaw.
#     Restored, each disk equals the disk as it was while frozen, needs no journal replay (no
#     needs_recovery in the superblock), passes e2fsck -fn and holds every file its writer
#     synced before the backup began.
#   mountpoint: an inc with -F /mnt/a freezes /mnt/a only: while held, a write to /mnt/b goes
#     through and one to /mnt/a waits; the agent got guest-fsfreeze-freeze-list for /mnt/a
#     alone. Restored, vda is clean; vdb needs a journal replay (it was not frozen), after
#     which it is clean and holds its writer's files.
#   absent: with qemu-ga ended (libvirt reports its channel disconnected) the backup warns
#     that the agent is not connected and tries no freeze and no thaw.
#   hang: the agent stops (its fsfreeze hook sends it SIGSTOP) when the freeze comes. With
#     --freeze-timeout 5 the backup warns no sooner than 5 s after it began, finishes while
#     the agent is still stopped and succeeds, crash-consistent (the restored vda needs a
#     journal replay, then it is clean and holds the writer's files); the guest's writes go
#     through; continued, the agent answers again, nothing frozen.
#   late: the agent carries the freeze out only after the timeout (the hook holds it until
#     the backup is held at the stall point, debug builds): the backup thaws what the agent
#     froze late and says so; writes go through again.
set -euo pipefail
source "$(dirname "$0")/../lib/testbed.sh"
source "$(dirname "$0")/../lib/chain.sh"
source "$(dirname "$0")/../lib/labguest.sh"
source "$(dirname "$0")/../lib/lab-serve.sh"
source "$(dirname "$0")/../lib/lab-agent.sh"
tb_init
[ -x /usr/sbin/qemu-ga ] || "$VB_SOURCE_DIR/scripts/install-deps.sh" >&2 # qemu-guest-agent
lab_init
VIRTRESTORE="$VB_BUILD_DIR/src/restore/virtrestore"
for t in "$VIRTBACKUP" "$VIRTRESTORE"; do
    [ -x "$t" ] || tb_fail "$t not built"
done
W=$TB_WORKDIR
STALL=$W/stall # VIRTBACKUP_DEBUG_STALL=/PATH: held while PATH exists
# shellcheck disable=SC2143 # grep -q would end strings early: SIGPIPE, and pipefail says no
if [ -n "$(strings "$VIRTBACKUP" | grep -x VIRTBACKUP_DEBUG_STALL)" ]; then
    HAVE_STALL=1
else
    HAVE_STALL=0
    tb_log "virtbackup has no stall points (an NDEBUG build): the checks on a held backup are skipped"
fi

# bk_start NAME ARGS...: virtbackup -n ARGS in the background, to be held at the stall point
# (the job has started, the thaw is due); output in $W/NAME.out
bk_start() {
    BK_OUT="$W/$1.out"
    shift
    rm -f "$STALL.stalled"
    touch "$STALL"
    VIRTBACKUP_DEBUG_STALL=$STALL "$VIRTBACKUP" -n "$@" >"$BK_OUT" 2>&1 &
    BK_PID=$!
    echo "$BK_PID" >"$W/bk.pid"
}

bk_held() {
    if ! tb_wait_for "$BK_PID" test -e "$STALL.stalled"; then
        sed 's/^/    | /' "$BK_OUT" >&2
        tb_fail "the backup did not reach the stall point"
    fi
    tb_log "the backup is held at the stall point"
}

# bk_finish: lets the held backup go on; it must succeed
bk_finish() {
    local rc=0
    rm -f "$STALL"
    wait "$BK_PID" || rc=$?
    rm -f "$W/bk.pid"
    sed 's/^/    | /' "$BK_OUT" >&2
    tb_assert_eq 0 "$rc" "virtbackup's exit status"
}

# bk_run NAME ARGS...: virtbackup -n ARGS, not held; it must succeed
bk_run() {
    BK_OUT="$W/$1.out"
    shift
    local rc=0
    "$VIRTBACKUP" -n "$@" >"$BK_OUT" 2>&1 || rc=$?
    sed 's/^/    | /' "$BK_OUT" >&2
    tb_assert_eq 0 "$rc" "virtbackup's exit status"
}

said() {
    grep -qF -- "$1" "$BK_OUT" || tb_fail "virtbackup did not say '$1'"
}

# restore_raw DIR OUT: virtrestore of DIR's latest point into OUT, each disk also as OUT/vdX.raw
restore_raw() {
    "$VIRTRESTORE" -n -i "$1" -o "$2" >"$2.log" 2>&1 ||
        tb_fail "virtrestore -i $1 -o $2 failed: $(cat "$2.log")"
    local d
    for d in vda vdb; do
        qemu-img convert -f qcow2 -O raw "$2/$d.qcow2" "$2/$d.raw"
    done
}

agent_status() {
    tb_virsh qemu-agent-command --timeout 120 "$DOM" '{"execute":"guest-fsfreeze-status"}' |
        jq -r .return
}

# a part's EXIT trap: a held backup is ended (SIGTERM ends the stall; virtbackup still thaws),
# the agent is left answering and the guest thawed for the next part
part_end() {
    set +e
    trap - ERR
    rm -f "$STALL"
    if [ -s "$W/bk.pid" ]; then
        kill -TERM "$(cat "$W/bk.pid")" 2>/dev/null
        wait "$(cat "$W/bk.pid")" 2>/dev/null
        rm -f "$W/bk.pid"
    fi
    if [ "$(lab_do 'agent_hook none; agent_release
                     if agent_running; then agent_resume; echo running; else agent_start; fi' 2>/dev/null)" != running ]; then
        lab_agent_channel "$DOM" connected
    fi
    tb_virsh qemu-agent-command --timeout 120 "$DOM" '{"execute":"guest-fsfreeze-thaw"}' >/dev/null 2>&1
    return 0
}

# run_parts FN...: each in a subshell with `set -e` and part_end on exit; a failing part is
# reported and the next ones still run; fails at the end if any did
run_parts() {
    local fn rc failed=() t0
    for fn in "$@"; do
        t0=$SECONDS
        # not `( fn ) || ...`: bash ignores `set -e` inside a command whose status is tested
        set +e
        (
            set -e
            trap part_end EXIT
            "$fn"
        )
        rc=$?
        set -e
        if [ "$rc" -ne 0 ]; then
            failed+=("$fn")
            tb_log "PART FAILED: $fn ($((SECONDS - t0))s)"
        else
            tb_log "part passed: $fn ($((SECONDS - t0))s)"
        fi
    done
    tb_step "the parts' results"
    [ ${#failed[@]} -eq 0 ] || tb_fail "${#failed[@]} of $# parts failed: ${failed[*]}"
}

part_freeze() {
    tb_step "freeze: a full backup freezes /mnt/a and /mnt/b while its job starts, then thaws them"
    local min_a min_b mark st log d
    st=$(lab_do 'echo "$(agent_writer_count /mnt/a) $(agent_writer_count /mnt/b) $(agent_log_size)"')
    read -r min_a min_b mark <<<"$st"
    if [ "$HAVE_STALL" = 1 ]; then
        bk_start full -d "$DOM" -l full -o "$W/chain"
        bk_held
        st=$(lab_do 'agent_probe f-a /mnt/a; agent_probe f-b /mnt/b
                     echo "$(agent_probe_state f-a) $(agent_probe_state f-b)"')
        tb_assert_eq "blocked blocked" "$st" "writes to /mnt/a and /mnt/b while the backup is held"
        tb_snapshot_image "$DOM" vda "$W/frozen-full-vda.raw"
        tb_snapshot_image "$DOM" vdb "$W/frozen-full-vdb.raw"
        bk_finish
        st=$(lab_do 'echo "$(agent_probe_state f-a) $(agent_probe_state f-b)"')
        tb_assert_eq "written written" "$st" "the held writes once the backup went on"
    else
        bk_run full -d "$DOM" -l full -o "$W/chain"
    fi
    said "froze 2 guest filesystem(s)"
    said "thawed 2 guest filesystem(s)"
    log=$(lab_do "agent_log_since $mark")
    grep -qF '{"execute":"guest-fsfreeze-freeze"}' <<<"$log" || tb_fail "the agent got no guest-fsfreeze-freeze"
    grep -qF 'disabling logging due to filesystem freeze' <<<"$log" || tb_fail "the agent did not freeze"
    grep -qF 'logging re-enabled due to filesystem unfreeze' <<<"$log" || tb_fail "the agent did not thaw"
    restore_raw "$W/chain" "$W/r-full"
    for d in vda vdb; do
        [ "$HAVE_STALL" = 0 ] ||
            tb_compare_raw "$W/r-full/$d.raw" "$W/frozen-full-$d.raw" "restored $d, the disk while frozen"
        lab_agent_check_clean "$W/r-full/$d.raw" "restored $d"
    done
    lab_agent_check_writer "$W/r-full/vda.raw" "$min_a" "restored vda"
    lab_agent_check_writer "$W/r-full/vdb.raw" "$min_b" "restored vdb"
}

part_mountpoint() {
    tb_step "mountpoint: an inc with -F /mnt/a freezes /mnt/a only"
    local min_a min_b mark st log
    st=$(lab_do 'echo "$(agent_writer_count /mnt/a) $(agent_writer_count /mnt/b) $(agent_log_size)"')
    read -r min_a min_b mark <<<"$st"
    if [ "$HAVE_STALL" = 1 ]; then
        bk_start inc -d "$DOM" -l inc -o "$W/chain" -F /mnt/a
        bk_held
        st=$(lab_do 'agent_probe m-a /mnt/a; agent_probe m-b /mnt/b
                     echo "$(agent_probe_state m-b) $(agent_probe_state m-a)"')
        tb_assert_eq "written blocked" "$st" "writes to /mnt/b and /mnt/a while the backup is held"
        tb_snapshot_image "$DOM" vda "$W/frozen-inc-vda.raw"
        bk_finish
        st=$(lab_do 'agent_probe_state m-a')
        tb_assert_eq written "$st" "the held write to /mnt/a once the backup went on"
    else
        bk_run inc -d "$DOM" -l inc -o "$W/chain" -F /mnt/a
    fi
    said "froze 1 guest filesystem(s)"
    log=$(lab_do "agent_log_since $mark")
    grep -F 'guest-fsfreeze-freeze-list' <<<"$log" | grep -qF '"/mnt/a"' ||
        tb_fail "the agent got no guest-fsfreeze-freeze-list for /mnt/a"
    ! grep -qF '"/mnt/b"' <<<"$log" || tb_fail "the agent was asked about /mnt/b"
    restore_raw "$W/chain" "$W/r-inc"
    [ "$HAVE_STALL" = 0 ] ||
        tb_compare_raw "$W/r-inc/vda.raw" "$W/frozen-inc-vda.raw" "restored vda, the disk while frozen"
    lab_agent_check_clean "$W/r-inc/vda.raw" "restored vda (frozen)"
    lab_agent_check_writer "$W/r-inc/vda.raw" "$min_a" "restored vda (frozen)"
    tb_assert_eq needs_recovery "$(lab_agent_recovery "$W/r-inc/vdb.raw")" \
        "the journal state of the restored vdb (not frozen)"
    lab_agent_replay "$W/r-inc/vdb.raw" "$W/r-inc/vdb-replayed.raw" "restored vdb (not frozen)"
    lab_agent_check_writer "$W/r-inc/vdb-replayed.raw" "$min_b" "restored vdb (not frozen)"
}

part_absent() {
    tb_step "absent: qemu-ga not running: no freeze is tried, a warning says why"
    lab_do 'agent_stop' >/dev/null
    lab_agent_channel "$DOM" disconnected
    bk_run absent -d "$DOM" -l copy -o "$W/absent"
    said "the guest agent of domain $DOM is not connected"
    ! grep -q "froze [0-9]\|thaw" "$BK_OUT" || tb_fail "virtbackup froze or thawed"
    lab_do 'agent_start' >/dev/null
    lab_agent_channel "$DOM" connected
}

part_hang() {
    tb_step "hang: the agent stops when the freeze comes; --freeze-timeout 5 lets the backup go on"
    local min_a st rc=0 t0 line ms warned_ms=""
    min_a=$(lab_do 'agent_hook hang; agent_writer_count /mnt/a')
    BK_OUT=$W/hang.out
    t0=${EPOCHREALTIME/./}
    # each line with the milliseconds since the start; 600 s only bound a run that never ends
    while IFS= read -r line; do
        ms=$(((${EPOCHREALTIME/./} - t0) / 1000))
        printf '%s\n' "$line" >>"$BK_OUT"
        printf '    | +%sms %s\n' "$ms" "$line" >&2
        if [ -z "$warned_ms" ] && [[ "$line" == *"did not answer the freeze within 5 s"* ]]; then
            warned_ms=$ms
        fi
    done < <(timeout 600 "$VIRTBACKUP" -n -d "$DOM" -l copy -o "$W/hang" --freeze-timeout 5 2>&1 ||
        echo "exit status $?")
    ! grep -q '^exit status' "$BK_OUT" || tb_fail "virtbackup failed: $(grep '^exit status' "$BK_OUT")"
    [ -n "$warned_ms" ] || tb_fail "no warning that the agent did not answer the freeze within 5 s"
    [ "$warned_ms" -ge 5000 ] || tb_fail "the warning came ${warned_ms} ms after the start, before the 5 s timeout"
    said "backup of $DOM finished"
    ! grep -q "froze [0-9]" "$BK_OUT" || tb_fail "virtbackup says it froze something"
    st=$(lab_do 'if agent_stopped; then echo stopped; else echo running; fi')
    tb_assert_eq stopped "$st" "the agent when the backup had finished"
    st=$(lab_do 'agent_probe h-a /mnt/a; agent_probe h-b /mnt/b
                 echo "$(agent_probe_state h-a) $(agent_probe_state h-b)"')
    tb_assert_eq "written written" "$st" "writes to /mnt/a and /mnt/b after the backup"
    restore_raw "$W/hang" "$W/r-hang"
    tb_assert_eq needs_recovery "$(lab_agent_recovery "$W/r-hang/vda.raw")" \
        "the journal state of the restored vda (not frozen)"
    lab_agent_replay "$W/r-hang/vda.raw" "$W/r-hang/vda-replayed.raw" "restored vda (not frozen)"
    lab_agent_check_writer "$W/r-hang/vda-replayed.raw" "$min_a" "restored vda (not frozen)"
    lab_do 'agent_hook none; agent_resume' >/dev/null
    tb_assert_eq thawed "$(agent_status)" "the agent's fsfreeze status once continued"
}

part_late() {
    tb_step "late: the agent freezes only after the timeout; the backup thaws what it froze"
    if [ "$HAVE_STALL" = 0 ]; then
        tb_log "skipped: needs the stall point (debug builds)"
        return 0
    fi
    local st
    lab_do 'agent_hook late' >/dev/null
    bk_start late -d "$DOM" -l copy -o "$W/late" --freeze-timeout 5
    bk_held
    # the freeze the backup gave up on now happens
    lab_do 'agent_release; agent_wait_frozen /mnt/a; agent_wait_frozen /mnt/b; echo frozen late' >/dev/null
    bk_finish
    st=$(lab_do 'agent_probe l-a /mnt/a; agent_probe l-b /mnt/b
                 echo "$(agent_probe_state l-a) $(agent_probe_state l-b)"')
    tb_assert_eq "written written" "$st" "writes to /mnt/a and /mnt/b after the backup (left frozen?)"
    tb_assert_eq thawed "$(agent_status)" "the agent's fsfreeze status after the backup"
    said "did not answer the freeze within 5 s"
    said "the guest agent froze 2 filesystem(s) after the timeout: thawed them"
}

tb_step "a lab guest with two ext4 data disks, writers and qemu-ga"
for d in vda vdb; do
    qemu-img create -q -f qcow2 -o compat=1.1 "$W/$d.qcow2" 64M
done
cat >"$W/guest-main.sh" <<'EOF'
lab_step "set-up: ext4 on vda (/mnt/a) and vdb (/mnt/b), a writer on each, qemu-ga"
for m in a:vda b:vdb; do
    # inode tables and journal written now: nothing writes to the disks later but the writers
    mkfs.ext4 -q -E lazy_itable_init=0,lazy_journal_init=0 "/dev/${m#*:}"
    mkdir -p "/mnt/${m%:*}"
    mount "/dev/${m#*:}" "/mnt/${m%:*}"
    agent_writer_start "/mnt/${m%:*}"
done
agent_start
lab_serve
lab_step "end"
agent_writers_stop
lab_log "the writers synced $(agent_writer_count /mnt/a) and $(agent_writer_count /mnt/b) files"
EOF
lab_serve_script "$W/guest.sh" "$TB_LIB_DIR/lab-agent-guest.sh" "$W/guest-main.sh"
export LAB_TIMEOUT=800
lab_start "$W/guest.sh" "$(lab_agent_xml "$W/vda.qcow2" "$W/vdb.qcow2")"
DOM=$LAB_DOMAIN
lab_do 'echo "guest ready: qemu-ga $(cat "$AGENT_DIR/qemu-ga.pid")"' >/dev/null
lab_agent_channel "$DOM" connected
tb_assert_eq thawed "$(agent_status)" "the agent's fsfreeze status at the start"

run_parts part_freeze part_mountpoint part_absent part_hang part_late

tb_step "the guest ends"
lab_serve_end
lab_wait || tb_fail "the guest's script failed (console above)"
tb_log "guest run: ${LAB_SECONDS}s"
tb_pass "guest agent: freeze and thaw, -F, a hanging agent, a late freeze"
