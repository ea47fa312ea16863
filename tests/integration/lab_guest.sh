#!/bin/bash
# The lab guest itself (tests/lib/labguest.sh), whose verdicts other tests rely on: a guest
# boots the host's kernel, runs the script chrooted into the host's / (it reads a file the
# test wrote, runs a host binary, has the nbd module and its own tmpfs /tmp), hands a file
# back through $LAB_OUT, and lab_run returns the script's exit status (7 here, so that a
# harness that always said 0, or always 1, would fail this test); the guest library's
# `set -e` ends a script at a failed command; the guest's output is in the test's log.
set -euo pipefail
source "$(dirname "$0")/../lib/testbed.sh"
source "$(dirname "$0")/../lib/labguest.sh"
tb_init
lab_init
W=$TB_WORKDIR

tb_step "a guest runs a script in the host's /, hands a file back, returns its status"
mkdir -p "$W/in"
head -c 100000 /dev/urandom >"$W/in/data.bin"
lab_readable "$W/in"
want_sum=$(sha256sum <"$W/in/data.bin")
cat >"$W/script.sh" <<EOF
lab_step "the host's files and binaries"
[ "\$(sha256sum <'$W/in/data.bin')" = '$want_sum' ] || lab_fail "the host's file reads differently"
[ -d /sys/module/nbd ] && [ -b /dev/nbd0 ] || lab_fail "no nbd module or /dev/nbd0"
[ "\$(stat -f -c %T /tmp)" = tmpfs ] || lab_fail "/tmp is not the guest's tmpfs"
[ "\$(uname -r)" = '$LAB_KVER' ] || lab_fail "not the kernel $LAB_KVER"
lab_step "the guest library's set -e"
if bash -c 'source "\$LAB_LIB"; false; echo not reached' >/tmp/sub.out 2>&1; then
    lab_fail "a script went on after a failed command"
fi
! grep -q 'not reached' /tmp/sub.out || lab_fail "a script went on after a failed command"
sha256sum <'$W/in/data.bin' >"\$LAB_OUT/sum.txt"
lab_log "marker-\$((6 * 7))"
exit 7
EOF
rc=0
lab_run "$W/script.sh" || rc=$?
tb_assert_eq 7 "$rc" "lab_run's status for a script that exits 7"
tb_assert_eq "$want_sum" "$(cat "$LAB_OUT/sum.txt")" "the file handed back in LAB_OUT"
grep -q 'marker-42' "$LAB_RUN_DIR/console.log" || tb_fail "the guest's output is not in its console"
tb_log "lab guest run: ${LAB_SECONDS}s"

tb_pass "lab guest: host files and binaries, LAB_OUT, exit status, console"
