# shellcheck shell=bash
# The guest side of tests/lib/lab-agent.sh: the qemu guest agent in the lab guest, writes that
# show whether a filesystem is frozen, and writers that log what they synced. A part of the
# guest's script (lab_serve_script ... "$TB_LIB_DIR/lab-agent-guest.sh" ...).
#
#   agent_start      finds the virtio-serial port named org.qemu.guest_agent.0 (no udev here:
#       /sys/class/virtio-ports/*/name; the /dev node is made from .../dev if devtmpfs has
#       none) and starts the host's qemu-ga on it, daemonized, verbose log in
#       $AGENT_DIR/qemu-ga.log, pidfile and state in $AGENT_DIR (tmpfs), with the fsfreeze hook
#       below.
#   agent_running    succeeds if qemu-ga runs (stopped or not).
#   agent_stop       ends qemu-ga (SIGTERM) and waits until it is gone.
#   agent_hook MODE  how the hook behaves from now on (it runs before each freeze, and after
#       each thaw): none; hang: stops qemu-ga (SIGSTOP) when a freeze comes, so the freeze
#       never gets an answer, and fails the freeze once qemu-ga is continued (nothing is
#       frozen); late: holds the freeze until agent_release, then lets it happen.
#   agent_release    lets a held (late) freeze go on.
#   agent_resume     continues a stopped qemu-ga.
#   agent_stopped    succeeds if qemu-ga is stopped (state T).
#   agent_log_size / agent_log_since SIZE   the agent's log: its size now; what came after SIZE
#       about freezing (the fsfreeze commands received, the freeze and the thaw carried out).
#   agent_probe NAME DIR   starts a write of DIR/.probe-NAME (dd, fsync) in the background.
#   agent_probe_state NAME prints "written" (done), "failed" (dd failed) or "blocked" (dd
#       waits in the kernel's freeze barrier: state D, wchan percpu_rwsem_wait, where a write
#       to a frozen filesystem waits); waits until it is one of them (fails after 120 s).
#   agent_wait_frozen DIR  probes DIR until a probe is blocked (fails after 120 s).
#   agent_writer_start DIR  writes DIR/w.1, w.2, ... (32 KiB of random bytes each), fsyncs each
#       and only then appends "N SHA256" to DIR/synced.log (fsynced too); keeps the last 100
#       files (w.N-100 is removed after N is logged); until agent_writers_stop.
#   agent_writer_count DIR  the number of the last file the log says was synced.

AGENT_DIR=/run/lab-agent

agent_start() {
    local p dev=""
    mkdir -p "$AGENT_DIR"
    for p in /sys/class/virtio-ports/*; do
        [ "$(cat "$p/name" 2>/dev/null)" = org.qemu.guest_agent.0 ] || continue
        dev=/dev/${p##*/}
        if [ ! -c "$dev" ]; then
            mknod -m 0600 "$dev" c "$(cut -d: -f1 "$p/dev")" "$(cut -d: -f2 "$p/dev")"
        fi
    done
    [ -n "$dev" ] || lab_fail "no virtio-serial port named org.qemu.guest_agent.0"
    cat >"$AGENT_DIR/fsfreeze-hook" <<EOF
#!/bin/sh
# qemu-ga runs this with "freeze" before it freezes and with "thaw" after it thawed
mode=\$(cat $AGENT_DIR/hook.mode)
echo "\$(date +%T.%N) \$1 (\$mode)" >>$AGENT_DIR/hook.log
case "\$1:\$mode" in
freeze:hang)
    kill -STOP "\$(cat $AGENT_DIR/qemu-ga.pid)"
    exit 1 ;;
freeze:late)
    while [ ! -e $AGENT_DIR/release ]; do sleep 0.1; done ;;
esac
exit 0
EOF
    chmod 0755 "$AGENT_DIR/fsfreeze-hook"
    echo none >"$AGENT_DIR/hook.mode"
    rm -f "$AGENT_DIR/qemu-ga.pid"
    /usr/sbin/qemu-ga -d -m virtio-serial -p "$dev" -v -l "$AGENT_DIR/qemu-ga.log" \
        -f "$AGENT_DIR/qemu-ga.pid" -t "$AGENT_DIR" -F"$AGENT_DIR/fsfreeze-hook" 2>/dev/null
    lab_wait_for 60 "qemu-ga's pidfile" test -s "$AGENT_DIR/qemu-ga.pid"
    lab_log "qemu-ga $(cat "$AGENT_DIR/qemu-ga.pid") on $dev"
}

agent_running() { [ -s "$AGENT_DIR/qemu-ga.pid" ] && [ -e "/proc/$(cat "$AGENT_DIR/qemu-ga.pid")" ]; }

agent_stop() {
    local pid
    pid=$(cat "$AGENT_DIR/qemu-ga.pid")
    kill -TERM "$pid"
    lab_wait_for 60 "qemu-ga ($pid) to end" test ! -e "/proc/$pid"
}

agent_hook() {
    rm -f "$AGENT_DIR/release"
    echo "$1" >"$AGENT_DIR/hook.mode"
}

agent_release() { touch "$AGENT_DIR/release"; }

agent_resume() { kill -CONT "$(cat "$AGENT_DIR/qemu-ga.pid")"; }

agent_stopped() {
    [ "$(cut -d' ' -f3 "/proc/$(cat "$AGENT_DIR/qemu-ga.pid")/stat")" = T ]
}

agent_log_size() { stat -c %s "$AGENT_DIR/qemu-ga.log"; }

agent_log_since() {
    tail -c +"$(($1 + 1))" "$AGENT_DIR/qemu-ga.log" |
        grep -E '"execute":"guest-fsfreeze|due to filesystem (freeze|unfreeze)' || true
}

agent_probe() {
    local d="$AGENT_DIR/probe-$1"
    rm -rf "$d"
    mkdir -p "$d"
    (
        dd if=/dev/zero of="$2/.probe-$1" bs=4096 count=1 conv=fsync status=none &
        echo $! >"$d/pid"
        wait $! && echo 0 >"$d/rc" || echo $? >"$d/rc"
    ) >/dev/null 2>&1 &
}

agent_probe_state() {
    local d="$AGENT_DIR/probe-$1" pid end=$((SECONDS + 120))
    while [ "$SECONDS" -lt "$end" ]; do
        if [ -s "$d/rc" ]; then
            if [ "$(cat "$d/rc")" = 0 ]; then echo written; else echo failed; fi
            return 0
        fi
        pid=$(cat "$d/pid" 2>/dev/null || true)
        if [ -n "$pid" ] && [ "$(cut -d' ' -f3 "/proc/$pid/stat" 2>/dev/null)" = D ] &&
            [ "$(cat "/proc/$pid/wchan" 2>/dev/null)" = percpu_rwsem_wait ]; then
            echo blocked
            return 0
        fi
        sleep 0.1
    done
    lab_fail "probe $1: neither written nor blocked after 120 s"
}

agent_wait_frozen() {
    local i=0 end=$((SECONDS + 120))
    while [ "$SECONDS" -lt "$end" ]; do
        i=$((i + 1))
        agent_probe "frozen-$i" "$1"
        [ "$(agent_probe_state "frozen-$i")" != blocked ] || return 0
        sleep 0.1
    done
    lab_fail "$1 did not freeze in 120 s"
}

agent_writer_start() {
    local dir="$1"
    (
        set +e
        n=0
        while [ ! -e "$AGENT_DIR/writers.stop" ]; do
            n=$((n + 1))
            head -c 32768 /dev/urandom >"$dir/w.$n"
            sync "$dir/w.$n"
            printf '%d %s\n' "$n" "$(sha256sum <"$dir/w.$n" | cut -c1-64)" >>"$dir/synced.log"
            sync "$dir/synced.log"
            [ "$n" -le 100 ] || rm -f "$dir/w.$((n - 100))"
            sleep 0.5 # the guest's one (emulated) CPU serves the agent and the tests too
        done
    ) >/dev/null 2>&1 &
}

agent_writers_stop() { touch "$AGENT_DIR/writers.stop"; }

agent_writer_count() {
    tail -n 1 "$1/synced.log" 2>/dev/null | cut -d' ' -f1 | grep -E '^[0-9]+$' || echo 0
}
