#!/bin/bash
# VIRTBACKUP_PASSWORD (the SASL password) never reaches a child process (virtbackup(1), ENVIRONMENT):
# virtbackup and virtrestore take it out of their environment once read, so the qemu-img and
# qemu-nbd they start (and libvirt's helpers) do not inherit it.
#  - wrappers named qemu-img and qemu-nbd first in PATH record the environment each child was
#    started with, then exec the real program: an offline copy backup and a local restore
#    run with the variable set (and once with --password-file too, which wins over it), and
#    no recorded environment holds the variable or its value; the results equal the disk;
#  - debug builds: during a stalled offline backup, /proc/PID/environ of the running qemu-nbd
#    lacks it, and virtbackup's own /proc/PID/environ no longer shows the value.
set -euo pipefail
source "$(dirname "$0")/../lib/testbed.sh"
source "$(dirname "$0")/../lib/chain.sh"
tb_init

SECRET="vb-secret-$$-$RANDOM$RANDOM"
W=$TB_WORKDIR
SNAP=$W/snap
mkdir -p "$SNAP" "$W/bin" "$W/envs"

# the wrappers: one file per start, NUL-separated as /proc/PID/environ
for prog in qemu-img qemu-nbd; do
    real=$(command -v "$prog") || tb_fail "$prog not installed"
    cat >"$W/bin/$prog" <<EOF
#!/bin/bash
cat /proc/\$\$/environ >"$W/envs/$prog.\$\$"
exec "$real" "\$@"
EOF
    chmod 0755 "$W/bin/$prog"
done

# assert_no_secret WHAT: no recorded environment holds the variable or the value
assert_no_secret() {
    local n f
    n=$(find "$W/envs" -type f | wc -l)
    [ "$n" -gt 0 ] || tb_fail "$1: the wrappers recorded no child (PATH not used?)"
    for f in "$W"/envs/*; do
        if tr '\0' '\n' <"$f" | grep -q '^VIRTBACKUP_PASSWORD='; then
            tb_fail "$1: $(basename "$f") was started with VIRTBACKUP_PASSWORD in its environment"
        fi
        if grep -qF -- "$SECRET" "$f"; then
            tb_fail "$1: $(basename "$f") was started with the password in its environment"
        fi
    done
    tb_log "$1: $n children ($(ls "$W/envs" | sed 's/\.[0-9]*$//' | sort | uniq -c | xargs)) started without the password"
    rm -f "$W"/envs/*
}

tb_create_domain pwenv 64M
DOM=$TB_DOMAIN
IMG=${TB_IMAGES[0]}
tb_qemu_io "$DOM" vda "write -P 0x5a 0 2M"
tb_qemu_io "$DOM" vda "write -P 0x5b 40M 1M"
tb_flush "$DOM"
tb_virsh destroy "$DOM" >/dev/null
qemu-img convert -f qcow2 -O raw "$IMG" "$SNAP/disk.raw"

tb_step "an offline backup's qemu-nbd and qemu-img do not inherit VIRTBACKUP_PASSWORD"
PATH="$W/bin:$PATH" VIRTBACKUP_PASSWORD=$SECRET vb_backup -d "$DOM" -l copy -o "$W/copy"
assert_no_secret "virtbackup -l copy"
assert_meta "$W/copy/vda.copy.data" false virtnbdbackup.0 "" false
apply_compare "$SNAP/disk.raw" "offline copy with VIRTBACKUP_PASSWORD set" "$W/copy/vda.copy.data"

tb_step "a restore's qemu-img and qemu-nbd do not inherit it, also when --password-file wins"
printf 'other\n' >"$W/pwfile"
# restore_with_secret WHAT ARGS...: virtrestore (only it) with the wrappers and the variable
restore_with_secret() {
    local what="$1" out="$W/restore.$((++RESTORES))" rc=0
    shift
    PATH="$W/bin:$PATH" VIRTBACKUP_PASSWORD=$SECRET "$VIRTRESTORE" -n -i "$W/copy" -o "$out" \
        "$@" >"$out.log" 2>&1 || rc=$?
    [ "$rc" -eq 0 ] || tb_fail "$what: virtrestore exited $rc: $(tail -5 "$out.log")"
    assert_no_secret "$what"
    compare_qcow_raw "$out/$(basename "$IMG")" "$SNAP/disk.raw" "$what"
}
RESTORES=0
restore_with_secret "virtrestore with VIRTBACKUP_PASSWORD set"
restore_with_secret "virtrestore with VIRTBACKUP_PASSWORD and --password-file" \
    --password-file "$W/pwfile"

if strings "$VIRTBACKUP" | grep -x VIRTBACKUP_DEBUG_STALL >/dev/null; then
    tb_step "the running qemu-nbd of a stalled backup and virtbackup itself: no password"
    VIRTBACKUP_PASSWORD=$SECRET VIRTBACKUP_DEBUG_STALL=600 \
        "$VIRTBACKUP" -n -d "$DOM" -l copy -o "$W/stall" >"$W/stall.log" 2>&1 &
    PID=$!
    tb_on_exit "kill $PID"
    tb_wait_for "$PID" compgen -G "$W/stall/*.partial" >/dev/null || true
    qpid=$(pgrep -P "$PID" -x qemu-nbd || true)
    [ -n "$qpid" ] || tb_fail "no qemu-nbd under the stalled backup: $(cat "$W/stall.log")"
    qenv=$(tr '\0' '\n' <"/proc/$qpid/environ")
    venv=$(tr '\0' '\n' <"/proc/$PID/environ")
    kill -TERM "$PID"
    wait "$PID" 2>/dev/null || true
    ! grep -q '^VIRTBACKUP_PASSWORD=' <<<"$qenv" ||
        tb_fail "/proc/$qpid/environ of the running qemu-nbd holds VIRTBACKUP_PASSWORD"
    ! grep -qF -- "$SECRET" <<<"$qenv" || tb_fail "/proc/$qpid/environ of qemu-nbd holds the password"
    ! grep -qF -- "$SECRET" <<<"$venv" || tb_fail "/proc/$PID/environ of virtbackup still shows the password"
    tb_log "qemu-nbd $qpid and virtbackup $PID: no password in /proc/PID/environ"
fi

tb_pass "VIRTBACKUP_PASSWORD is read once and reaches no child"
