#!/bin/bash
# virtbackup's command-line contract (virtbackup(1)): option parsing, errors that name the thing
# with exit 1, --version, --json, --strict, -p, -T, -s/-k, locks, and Ctrl-C during a backup
# leaving nothing behind and the chain continuable.
set -euo pipefail
source "$(dirname "$0")/../lib/testbed.sh"
source "$(dirname "$0")/../lib/chain.sh"
tb_init

tb_create_domain cli 64M
DOM=$TB_DOMAIN
OUT=$TB_WORKDIR/out
tb_qemu_io "$DOM" vda "write -P 0x51 0 4M"

# expect_exit CODE TEXT CMD...: exit status and a line naming the problem on stderr
expect_exit() {
    local code="$1" text="$2" rc=0 out
    shift 2
    out=$("$@" 2>&1 >/dev/null) || rc=$?
    [ "$rc" -eq "$code" ] || tb_fail "$* exited $rc, expected $code; said: $out"
    grep -qF -- "$text" <<<"$out" || tb_fail "$* did not say '$text'; said: $out"
}

tb_step "options: errors name the problem, print the usage line, exit 1"
expect_exit 1 "unknown option '--bogus'" "$VIRTBACKUP" -d "$DOM" -o "$OUT" --bogus
expect_exit 1 "usage: virtbackup" "$VIRTBACKUP" -d "$DOM" -o "$OUT" --bogus
expect_exit 1 "invalid level 'weekly'" "$VIRTBACKUP" -d "$DOM" -o "$OUT" -l weekly
expect_exit 1 "a domain is required" "$VIRTBACKUP" -o "$OUT"
expect_exit 1 "invalid compression level" "$VIRTBACKUP" -d "$DOM" -o "$OUT" --compress=x
expect_exit 1 "domain 'no-such-domain' not found" "$VIRTBACKUP" -d no-such-domain -o "$OUT" -l full
tb_assert_eq "$("$VIRTBACKUP" --version)" "virtbackup 0.1.0" "--version"
# (captured first: grep -q may exit before a long --help is written, and pipefail would see
# the writer's SIGPIPE)
help_text=$("$VIRTBACKUP" --help)
grep -q -- "--compat-zeroes" <<<"$help_text" || tb_fail "--help lacks --compat-zeroes"
grep -q -- "--ssh-accept-new-key" <<<"$help_text" || tb_fail "--help lacks the remote options"
[ ! -e "$OUT" ] || [ -z "$(ls -A "$OUT")" ] || tb_fail "failed runs left files in $OUT"

tb_step "inc without a full, and auto in a directory without a full, are refused"
expect_exit 1 "run a full backup first" "$VIRTBACKUP" -n -d "$DOM" -o "$TB_WORKDIR/empty" -l inc
vb_backup -d "$DOM" -l copy -o "$TB_WORKDIR/copyonly"
expect_exit 1 "no full backup" "$VIRTBACKUP" -n -d "$DOM" -o "$TB_WORKDIR/copyonly" -l auto

tb_step "-z 5, -z5 and --compress 5 all mean level 5; -z alone means 2"
for form in "-z 5" "-z5" "--compress 5" "--compress=5" "-z"; do
    d="$TB_WORKDIR/z-${form// /_}"
    # shellcheck disable=SC2086
    vb_backup -d "$DOM" -l copy -o "$d" $form
    want=5
    [ "$form" = "-z" ] && want=2
    tb_assert_eq "$("$STREAM_CHECK" "$d/vda.copy.data" | jq .meta.compressed)" "$want" "level of $form"
done

tb_step "--json=FILE: one object with a record per disk"
vb_backup -d "$DOM" -l full -o "$OUT" --json="$TB_WORKDIR/full.json"
jq -e '.status == "ok" and .exit_code == 0 and (.disks | length) == 1 and
       .disks[0].disk == "vda" and .disks[0].level == "full" and .disks[0].incremental == false and
       .disks[0].checkpoint == "virtnbdbackup.0" and .disks[0].parent == null and
       (.disks[0].checksum | type) == "number" and .disks[0].bytes_written > 4194304 and
       (.disks[0].seconds | type) == "number"' "$TB_WORKDIR/full.json" >/dev/null ||
    tb_fail "unexpected --json summary: $(cat "$TB_WORKDIR/full.json")"
tb_assert_eq "$(jq .disks[0].checksum "$TB_WORKDIR/full.json")" "$(cat "$OUT/vda.full.data.chksum")" "json checksum"

tb_step "-p prints the bytes changed since the last checkpoint; -T skips small changes"
tb_qemu_io "$DOM" vda "write -P 0x52 8M 1M"
est=$("$VIRTBACKUP" -d "$DOM" -o "$OUT" -p 2>/dev/null)
[[ "$est" =~ ^[0-9]+$ ]] && [ "$est" -ge 1048576 ] || tb_fail "-p printed '$est'"
vb_backup -d "$DOM" -l inc -o "$OUT" -T 999999999999 --json="$TB_WORKDIR/skip.json"
jq -e '.status == "skipped" and .exit_code == 0' "$TB_WORKDIR/skip.json" >/dev/null ||
    tb_fail "a -T skip is not reported as skipped: $(cat "$TB_WORKDIR/skip.json")"
! ls "$OUT"/vda.inc.* 2>/dev/null || tb_fail "-T skip wrote a file"

tb_step "--strict: exit 2 when a warning was logged (a leftover .partial file)"
touch "$OUT/vda.inc.virtnbdbackup.1.data.partial"
rc=0
"$VIRTBACKUP" -n -d "$DOM" -l inc -o "$OUT" --strict 2>"$TB_WORKDIR/strict.err" || rc=$?
tb_assert_eq "$rc" 2 "exit status with --strict and a warning"
grep -q "left by an interrupted run" "$TB_WORKDIR/strict.err" || tb_fail "no warning logged"
assert_meta "$OUT/vda.inc.virtnbdbackup.1.data" true virtnbdbackup.1 virtnbdbackup.0 false

tb_step "--full-every with a directory output: warned as ignored, the backup runs"
rc=0
"$VIRTBACKUP" -n -d "$DOM" -l copy -o "$TB_WORKDIR/fe" --full-every 7 2>"$TB_WORKDIR/fe.err" || rc=$?
tb_assert_eq "$rc" 0 "exit status of a copy into a directory with --full-every"
grep -q "warning: --full-every applies to a repository output only: ignored for $TB_WORKDIR/fe" \
    "$TB_WORKDIR/fe.err" || tb_fail "no warning about --full-every: $(cat "$TB_WORKDIR/fe.err")"
assert_meta "$TB_WORKDIR/fe/vda.copy.data" false virtnbdbackup.0 "" false

tb_step "locks: a second run on the same domain fails at once naming the holder"
uuid=$(tb_virsh domuuid "$DOM")
lock=/run/virtbackup/$uuid.lock
exec 9>"$lock"
flock -n 9 || tb_fail "cannot take $lock"
echo 4242 >&9
expect_exit 1 "pid 4242" "$VIRTBACKUP" -n -d "$DOM" -l inc -o "$OUT"
exec 9>&-

tb_step "-s starts a job and exits; -k ends it"
sock=$("$VIRTBACKUP" -n -d "$DOM" -l copy -o "$TB_WORKDIR/startonly" -s 2>/dev/null)
[ -S "$sock" ] || tb_fail "-s printed '$sock', not a socket"
nbdinfo --size "nbd+unix:///vda?socket=$sock" >/dev/null || tb_fail "cannot read the job's export"
vb_backup -d "$DOM" -k
tb_virsh domjobinfo "$DOM" | grep -q Backup && tb_fail "the job is still running after -k"
vb_backup -d "$DOM" -k # no job: still exit 0

tb_step "Ctrl-C (SIGINT) and SIGTERM during a backup: exit 1, no .partial, no checkpoint, next inc works"
if [ -n "$(strings "$VIRTBACKUP" | grep -x VIRTBACKUP_DEBUG_STALL)" ]; then
    n=2
    for sig in INT TERM; do
        tb_qemu_io "$DOM" vda "write -P 0x5$n 20M 1M"
        # the stall is ended by the signal; 600 s only bound a run that never gets it
        VIRTBACKUP_DEBUG_STALL=600 "$VIRTBACKUP" -n -d "$DOM" -l inc -o "$OUT" 2>"$TB_WORKDIR/int.err" &
        pid=$!
        tb_wait_for "$pid" compgen -G "$OUT/*.partial" >/dev/null ||
            tb_fail "the backup never started writing: $(cat "$TB_WORKDIR/int.err")"
        kill -$sig "$pid"
        rc=0
        wait "$pid" || rc=$?
        tb_assert_eq 1 "$rc" "exit status after SIG$sig"
        ! ls "$OUT"/*.partial 2>/dev/null || tb_fail ".partial left after SIG$sig"
        ! ls "$OUT"/vda.inc.virtnbdbackup.$n.data 2>/dev/null || tb_fail "a data file after SIG$sig"
        tb_virsh checkpoint-list "$DOM" --name | grep -qx virtnbdbackup.$n &&
            tb_fail "the checkpoint of the run interrupted by SIG$sig was not removed"
        tb_virsh domjobinfo "$DOM" | grep -q Backup && tb_fail "the job survived SIG$sig"
        vb_backup -d "$DOM" -l inc -o "$OUT"
        assert_meta "$OUT/vda.inc.virtnbdbackup.$n.data" true virtnbdbackup.$n \
            virtnbdbackup.$((n - 1)) false
        tb_snapshot_image "$DOM" vda "$TB_WORKDIR/now.raw"
        apply_compare "$TB_WORKDIR/now.raw" "chain after SIG$sig" "$OUT"/vda.*.data
        n=$((n + 1))
    done
else
    tb_log "SKIP Ctrl-C test: release build without the debug stall (runs in the sanitizer build)"
fi
