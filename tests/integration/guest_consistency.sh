#!/bin/bash
# Consistency of backups of a guest that writes while they run (virtbackup(1), CRASH CONSISTENCY), in a lab
# guest (tests/lib/labguest.sh) without a guest agent, so every backup is crash-consistent.
# The guest's data disk (vda) holds ext4; tests/lib/lab-fswriter.py changes files on it without
# a pause (new files, replacements by rename, deletions), each change made durable (fsync of
# the file and its directory) before it appends a line to a log on the disk itself (fsynced)
# and then to a log on the lab's share, which the host reads as it grows, noting when it saw
# each line. Meanwhile the host backs the guest up: a chain of a full and three incrementals,
# and a compressed (-z) chain of a full and an incremental. Each job's start is taken from
# qemu's JOB_STATUS_CHANGE "created" event of the backup job (tests/lib/job_events.py: qemu's
# own clock, microseconds): the lines the host saw before it name the changes durable before
# the job began.
#
# Every point of both chains (virtrestore --until each checkpoint) must then be a filesystem
# that needs nothing but its journal replayed (e2fsck -E journal_only, then e2fsck -fn clean),
# and its files must be what the log on the restored disk says they were, that log holding at
# least every change durable before the job began (tests/lib/fswriter_check.py). The disk as
# the guest left it (unmounted) passes the same check with every change required.
set -euo pipefail
source "$(dirname "$0")/../lib/testbed.sh"
source "$(dirname "$0")/../lib/chain.sh"
source "$(dirname "$0")/../lib/labguest.sh"
source "$(dirname "$0")/../lib/lab-datadisk.sh"
tb_init
lab_init
[ -x "$VIRTRESTORE" ] || tb_fail "virtrestore not built"
W=$TB_WORKDIR
G=$W/guest # what the guest reads: copies readable by qemu's user
mkdir -p "$G"
# changes the guest makes between two backups (at least); a few seconds under TCG
GAP=${VB_CONSISTENCY_GAP:-25}

tb_step "a lab guest whose data disk (ext4, vda) is changed without a pause"
DATA=$W/data.qcow2
lab_ext4_qcow2 "$DATA" 1G
install -m 0644 "$TB_LIB_DIR/lab-fswriter.py" "$G/lab-fswriter.py"
lab_readable "$G"
{
    printf 'G=%q\n' "$G"
    cat <<'GUEST'
lab_step "the writer on the data disk, until the host says stop"
mkdir -p /mnt/data
mount /dev/vda /mnt/data
mkdir -p /mnt/data/data
sync -f /mnt/data
seed=$RANDOM
lab_log "writer seed $seed"
/usr/bin/python3 "$G/lab-fswriter.py" /mnt/data/data "$LAB_OUT/synced.log" "$LAB_OUT/stop" "$seed"
umount /mnt/data
GUEST
} >"$W/guest.sh"
LAB_TIMEOUT=600 # a bound for a hung guest (lab_await, lab_wait), far beyond a healthy run
lab_start "$W/guest.sh" "$(lab_disk_xml "$DATA" vda)"
DOM=$LAB_DOMAIN
SHARE_LOG=$LAB_OUT/synced.log

# qemu's job events, with qemu's timestamps
/usr/bin/python3 "$TB_LIB_DIR/job_events.py" "$TB_URI" "$DOM" >"$W/events.txt" 2>&1 &
EVENTS_PID=$!
tb_on_exit "kill $EVENTS_PID"
lab_await "the listener of qemu's job events" grep -qx registered "$W/events.txt"
lab_await "the writer's first changes" test -s "$SHARE_LOG"
# each line of the share's log with the host time it was first seen (not before it arrived)
tail --pid=$$ -n +1 -F "$SHARE_LOG" 2>/dev/null | while IFS= read -r line; do
    printf '%s %s\n' "$EPOCHREALTIME" "$line"
done >"$W/seen.txt" &
SEEN_PID=$!
tb_on_exit "kill $SEEN_PID"

seen_lines() { wc -l <"$W/seen.txt"; }
gap_made() { [ "$(seen_lines)" -ge $((last + GAP)) ]; }

POINTS=() # "dir checkpoint invoked-at ended-at" of every backup
last=0
# backup_point DIR CHECKPOINT ARGS...: once the guest made GAP more changes, a backup
backup_point() {
    local dir="$1" cp="$2" t0 t1
    shift 2
    lab_await "$GAP more changes" gap_made
    t0=$EPOCHREALTIME
    vb_backup -d "$DOM" -o "$dir" "$@"
    t1=$EPOCHREALTIME
    last=$(seen_lines)
    POINTS+=("$dir $cp $t0 $t1")
}

tb_step "while the guest writes: full and three incrementals, then a -z chain (full, inc)"
backup_point "$W/plain" virtnbdbackup.0 -l full
backup_point "$W/plain" virtnbdbackup.1 -l inc
backup_point "$W/plain" virtnbdbackup.2 -l inc
backup_point "$W/plain" virtnbdbackup.3 -l inc
backup_point "$W/lz4" virtnbdbackup.0 -l full -z
backup_point "$W/lz4" virtnbdbackup.1 -l inc -z
kill -0 "$EVENTS_PID" 2>/dev/null ||
    tb_fail "the listener of qemu's job events ended during the backups: $(cat "$W/events.txt")"
lab_signal stop
lab_wait || tb_fail "the guest's writer failed (console above)"
tb_log "lab guest: ${LAB_SECONDS}s, $(wc -l <"$SHARE_LOG") changes"
sleep 0.5 # the sampler's last lines
kill "$SEEN_PID" "$EVENTS_PID" 2>/dev/null || true

tb_step "the chains' files: a full and incrementals, each continuing the one before"
assert_meta "$W/plain/vda.full.data" false virtnbdbackup.0 "" false
for n in 1 2 3; do
    assert_meta "$W/plain/vda.inc.virtnbdbackup.$n.data" true "virtnbdbackup.$n" "virtnbdbackup.$((n - 1))" false
done
assert_meta "$W/lz4/vda.full.data" false virtnbdbackup.0 "" 2
assert_meta "$W/lz4/vda.inc.virtnbdbackup.1.data" true virtnbdbackup.1 virtnbdbackup.0 2

tb_step "each job's start: qemu's 'created' event of the backup job, within the virtbackup run"
mapfile -t STARTS < <(awk '$2 == "created" && $3 ~ /^backup-/ { print $1 }' "$W/events.txt")
[ "${#STARTS[@]}" = "${#POINTS[@]}" ] ||
    tb_fail "${#STARTS[@]} backup jobs created for ${#POINTS[@]} backups; qemu's events: $(head -c 3000 "$W/events.txt")"
REQUIRED=()
during_total=0
for i in "${!POINTS[@]}"; do
    read -r dir cp t0 t1 <<<"${POINTS[$i]}"
    T=${STARTS[$i]}
    awk -v a="$t0" -v t="$T" -v b="$t1" 'BEGIN { exit !(a < t && t < b) }' ||
        tb_fail "job $i started at $T, not within its run [$t0, $t1]"
    # the changes whose lines the host saw before the job began, and those during the job
    n=$(awk -v t="$T" '$1 < t' "$W/seen.txt" | wc -l)
    during=$(awk -v t="$T" -v b="$t1" '$1 >= t && $1 < b' "$W/seen.txt" | wc -l)
    during_total=$((during_total + during))
    REQUIRED+=("$n")
    tb_log "$(basename "$dir") $cp: job began at $T ($(awk -v a="$t0" -v t="$T" 'BEGIN { printf "%.3f", t - a }') s into the run), $n changes durable before, $during more during the run"
done
[ "$during_total" -gt 0 ] || tb_fail "the guest made no change while the backups ran: nothing was tested"

tb_step "the disk as the guest left it: clean, every change intact"
lab_fs_recover "$DATA" "$W/final.raw"
tb_assert_eq clean "$LAB_FS_REPLAYED" "the recovery of the disk the guest unmounted"
lab_fs_extract "$W/final.raw" /data "$W/final"
total=$(wc -l <"$SHARE_LOG")
/usr/bin/python3 "$TB_LIB_DIR/fswriter_check.py" "$SHARE_LOG" "$W/final/data" "$total" >&2 ||
    tb_fail "the disk the guest left does not hold what its writer logged"
rm -rf "$W/final" "$W/final.raw"

tb_step "every point of both chains: the journal replays, e2fsck -fn is clean, files intact"
for i in "${!POINTS[@]}"; do
    read -r dir cp _ <<<"${POINTS[$i]}"
    what="$(basename "$dir") --until $cp"
    out=$W/restore-$i
    rc=0
    "$VIRTRESTORE" -n -i "$dir" -o "$out" -d vda --until "$cp" >"$out.log" 2>&1 || rc=$?
    [ "$rc" -eq 0 ] || tb_fail "$what: virtrestore exited $rc: $(tail -5 "$out.log")"
    lab_fs_recover "$out/data.qcow2" "$out/disk.raw"
    # the filesystem was mounted when the job began: its journal needed replaying
    tb_assert_eq replayed "$LAB_FS_REPLAYED" "$what: the restored filesystem's recovery"
    lab_fs_extract "$out/disk.raw" /data "$out/tree"
    res=$(/usr/bin/python3 "$TB_LIB_DIR/fswriter_check.py" "$SHARE_LOG" "$out/tree/data" \
        "${REQUIRED[$i]}" 2>&1) || tb_fail "$what: $res"
    tb_log "$what: journal $LAB_FS_REPLAYED, e2fsck -fn clean; $res"
    rm -rf "$out" "$out.log"
done

tb_pass "crash-consistent backups of a writing guest: every point clean and intact (${LAB_SECONDS}s in the guest)"
