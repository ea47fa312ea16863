# shellcheck shell=bash
# The guest side of tests/lib/lab-serve.sh (placed at the head of the guest's script by
# lab_serve_script; the guest library labguest-guest.sh is sourced before it).
#   lab_serve   runs the host's requests ($LAB_OUT/serve.req.N, in order), each in a subshell
#               with `set -e`, and hands back its output and status, until the host's
#               lab_serve_end; then returns.

lab_serve() {
    local n=0 req rc
    lab_log "serving the host's requests"
    while :; do
        req="$LAB_OUT/serve.req.$n"
        if [ ! -e "$req" ]; then
            sleep 0.05
            continue
        fi
        if [ "$(cat "$req")" = @@lab-serve-end ]; then
            : >"$LAB_OUT/serve.rep.$n.out"
            # the host reads .rc as soon as it exists: it appears whole (renamed), never empty
            echo 0 >"$LAB_OUT/serve.rep.$n.rc.tmp"
            mv "$LAB_OUT/serve.rep.$n.rc.tmp" "$LAB_OUT/serve.rep.$n.rc"
            lab_log "the host ended the requests ($n served)"
            return 0
        fi
        # not `( ... ) || rc=$?`: bash ignores `set -e` inside a command whose status is tested
        set +e
        (
            set -e
            # shellcheck disable=SC1090 # the host's request
            source "$req"
        ) >/tmp/lab-serve.out 2>&1 </dev/null
        rc=$?
        set -e
        cp /tmp/lab-serve.out "$LAB_OUT/serve.rep.$n.out"
        echo "$rc" >"$LAB_OUT/serve.rep.$n.rc.tmp"
        mv "$LAB_OUT/serve.rep.$n.rc.tmp" "$LAB_OUT/serve.rep.$n.rc"
        n=$((n + 1))
    done
}
