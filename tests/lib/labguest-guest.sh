# shellcheck shell=bash
# Sourced inside the lab guest before the test's script (bash, chrooted into the host's /,
# `set -euo pipefail` on): the guest side's messages and assertions. Everything they print
# goes to the serial console, which lab_run copies into the test's log.
#   lab_step NAME          names what the following commands prove (failures report it)
#   lab_log MSG...         a message
#   lab_fail MSG...        fails the script (exit 1) naming the step
#   lab_assert_eq A B WHAT fails unless A and B are equal
#   lab_expect_fail WHAT CMD...  CMD must exit non-zero; its output goes to $LAB_LAST_OUT
#                          (a file) and the console
#   lab_wait_for SECONDS WHAT CMD...  retries CMD every 0.1 s until it succeeds; fails
#                          naming WHAT after SECONDS
#   lab_steps FN...        runs each function in its own subshell (`set -e` in force there,
#                          also in an EXIT trap set in it, which runs when it ends: such a
#                          trap must not fail): a failing one is reported and the next ones
#                          still run; fails at the end if any did
# A command that fails under `set -e` is reported with its line before the script ends.

LAB_STEP=startup
LAB_LAST_OUT=/tmp/lab-last.out

lab_log() { printf '[guest %s] %s\n' "$(date +%H:%M:%S)" "$*"; }

lab_step() {
    LAB_STEP="$1"
    lab_log "---- step: $1"
}

lab_fail() {
    printf '[guest] FAIL (step: %s): %s\n' "$LAB_STEP" "$*"
    exit 1
}

lab_assert_eq() {
    [ "$1" = "$2" ] || lab_fail "$3: '$1' differs from '$2'"
}

lab_expect_fail() {
    local what="$1" rc=0
    shift
    "$@" >"$LAB_LAST_OUT" 2>&1 || rc=$?
    sed 's/^/    | /' "$LAB_LAST_OUT"
    [ "$rc" -ne 0 ] || lab_fail "$what: '$*' succeeded but must fail"
    lab_log "as expected, '$*' failed (exit $rc): $what"
}

lab_wait_for() {
    local secs="$1" what="$2" i
    shift 2
    for ((i = 0; i < secs * 10; i++)); do
        if "$@" >/dev/null 2>&1; then
            return 0
        fi
        sleep 0.1
    done
    lab_fail "$what: not after ${secs}s ($*)"
}

lab_steps() {
    local fn rc failed=()
    for fn in "$@"; do
        # not `( fn ) || ...`: bash ignores `set -e` inside a command whose status is tested
        set +e
        (
            set -e
            "$fn"
        )
        rc=$?
        set -e
        if [ "$rc" -ne 0 ]; then
            failed+=("$fn")
        fi
    done
    [ ${#failed[@]} -eq 0 ] || lab_fail "${#failed[@]} of $# parts failed: ${failed[*]}"
}

set -eEuo pipefail
trap 'printf "[guest] command failed (exit %s) at line %s: %s (step: %s)\n" $? "$LINENO" "$BASH_COMMAND" "$LAB_STEP"' ERR
cd /tmp
