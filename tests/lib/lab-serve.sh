# shellcheck shell=bash
# A lab guest that does what the host asks while it runs: for a test that acts on the host
# (a backup of the running guest) and needs the guest to act or answer at given moments (a
# write while the backup holds the guest frozen, an agent stopped before a freeze). Source it
# after labguest.sh; start the guest with lab_start, end it with lab_serve_end and lab_wait.
#
#   lab_serve_script OUT PART...  writes the guest's script OUT: the guest side
#       (tests/lib/lab-serve-guest.sh: lab_serve) and then the PART files in order (the test's
#       guest functions, its set-up, and a call of lab_serve, after which the script goes on
#       once the host has called lab_serve_end).
#   lab_do CODE                   runs CODE (bash) in the serving guest: in a subshell of its
#       script (its functions and variables are there), with `set -e`, output and status
#       handed back through $LAB_OUT. Prints the output (and copies it into the test's log,
#       prefixed "guest> ") and returns CODE's status. Fails the test if the guest ends
#       without answering, or after TB_WAIT_LIMIT seconds (default 600), a bound for a hung
#       guest. Processes CODE leaves running in the background must send their output
#       elsewhere (the next request reuses the file).
#   lab_serve_end                 ends the guest's lab_serve.
#
# Requests are files $LAB_OUT/serve.req.N, answers serve.rep.N.out and serve.rep.N.rc (the
# latter written last); N counts from 0 in the order of the requests.

# the next request's number: the requests so far (lab_do may run in subshells, so no counter)
lab_serve_next() {
    local n=0
    while [ -e "$LAB_OUT/serve.req.$n" ]; do
        n=$((n + 1))
    done
    echo "$n"
}

lab_serve_script() {
    local out="$1"
    shift
    cat "$TB_LIB_DIR/lab-serve-guest.sh" "$@" >"$out"
}

lab_do() {
    local code="$1" n f t0=$SECONDS checked=$SECONDS state out rc
    [ -n "$LAB_OUT" ] && [ -d "$LAB_OUT" ] || tb_fail "lab_do: no guest started"
    n=$(lab_serve_next)
    f="$LAB_OUT/serve.req.$n"
    printf '%s\n' "$code" >"$f.tmp"
    chmod 0644 "$f.tmp" # 9p reads it as qemu's user
    mv "$f.tmp" "$f"
    tb_log "guest< $(head -n 1 <<<"$code")$([ "$(wc -l <<<"$code")" -le 1 ] || echo ' ...')"
    until [ -e "$LAB_OUT/serve.rep.$n.rc" ]; do
        if [ $((SECONDS - checked)) -ge 2 ]; then
            checked=$SECONDS
            state=$(tb_virsh domstate "$LAB_DOMAIN" 2>/dev/null || echo gone)
            [ "$state" = running ] || [ -e "$LAB_OUT/serve.rep.$n.rc" ] ||
                tb_fail "the guest $LAB_DOMAIN ended ($state) without answering request $n"
        fi
        [ $((SECONDS - t0)) -lt "${TB_WAIT_LIMIT:-600}" ] ||
            tb_fail "the guest did not answer request $n in ${TB_WAIT_LIMIT:-600}s"
        sleep 0.05
    done
    out=$(cat "$LAB_OUT/serve.rep.$n.out")
    rc=$(cat "$LAB_OUT/serve.rep.$n.rc")
    [ -z "$out" ] || sed 's/^/    guest> /' <<<"$out" >&2
    [ "$rc" = 0 ] || tb_log "guest: request $n exited $rc"
    [ -z "$out" ] || printf '%s\n' "$out"
    return "$rc"
}

lab_serve_end() {
    lab_do '@@lab-serve-end' >/dev/null
}
