# shellcheck shell=bash
# The host side of a lab guest with the qemu guest agent (guest side: lab-agent-guest.sh):
# the domain XML it needs and the checks of an ext4 data disk restored from its backup.
# Source it after labguest.sh.
#
#   lab_agent_xml IMG...   <devices> XML for lab_start: the agent's virtio-serial channel
#       (org.qemu.guest_agent.0, a unix socket libvirt chooses) and one virtio qcow2 disk per
#       IMG (vda, vdb, ...).
#   lab_agent_channel DOMAIN STATE  waits until libvirt reports the agent's channel STATE
#       (connected: qemu-ga opened its port; disconnected).
#   lab_agent_recovery RAW prints "needs_recovery" if the ext4 superblock of RAW says the
#       journal must be replayed (what a filesystem that was mounted, and not frozen, has on
#       its disk), else "clean".
#   lab_agent_check_clean RAW WHAT   RAW's ext4 needs no journal replay and `e2fsck -fn`
#       finds nothing.
#   lab_agent_replay RAW OUT WHAT    OUT: a copy of RAW after e2fsck replayed its journal;
#       fails unless `e2fsck -fn` then finds nothing.
#   lab_agent_check_writer RAW MIN WHAT  the writer's log (synced.log) in RAW's ext4 (one that
#       needs no replay) goes up to file MIN or further, and every file it names that the
#       writer still keeps (the last 100) has the logged checksum.

lab_agent_xml() {
    local letters=abcdefghijklmnopqrstuvwxyz i=0 img
    echo "    <channel type='unix'><target type='virtio' name='org.qemu.guest_agent.0'/></channel>"
    for img in "$@"; do
        cat <<EOF
    <disk type='file' device='disk'>
      <driver name='qemu' type='qcow2'/>
      <source file='$img'/>
      <target dev='vd${letters:$i:1}' bus='virtio'/>
    </disk>
EOF
        i=$((i + 1))
    done
}

lab_agent_channel() {
    local want="name='org.qemu.guest_agent.0' state='$2'"
    # the live XML, polled until it says so (bounded by tb_wait_for's limit); no grep -q:
    # with pipefail, virsh killed by SIGPIPE would fail the pipeline
    tb_wait_for "" eval "tb_virsh dumpxml '$1' | grep -F \"$want\" >/dev/null" ||
        tb_fail "libvirt never reported the agent's channel of $1 $2"
}

lab_agent_recovery() {
    local features
    features=$(dumpe2fs -h "$1" 2>/dev/null | sed -n 's/^Filesystem features: *//p')
    [ -n "$features" ] || tb_fail "no ext4 superblock in $1"
    if [[ " $features " == *" needs_recovery "* ]]; then
        echo needs_recovery
    else
        echo clean
    fi
}

lab_agent_check_clean() {
    local raw="$1" what="$2" out
    tb_assert_eq clean "$(lab_agent_recovery "$raw")" "$what: the journal state in the superblock"
    out=$(e2fsck -fn "$raw" 2>&1) || tb_fail "$what: e2fsck -fn $raw: $out"
    tb_log "$what: clean without journal replay, e2fsck -fn passes"
}

lab_agent_replay() {
    local raw="$1" copy="$2" what="$3" out rc=0
    cp --sparse=always "$raw" "$copy"
    # 0: nothing to do, 1: errors corrected (a journal replay alone may report that)
    out=$(e2fsck -fy "$copy" 2>&1) || rc=$?
    [ "$rc" -le 1 ] || tb_fail "$what: e2fsck -fy (exit $rc): $out"
    out=$(e2fsck -fn "$copy" 2>&1) || tb_fail "$what: e2fsck -fn after the replay: $out"
    tb_log "$what: clean after the journal replay (e2fsck -fy exit $rc), e2fsck -fn passes"
}

lab_agent_check_writer() {
    local raw="$1" min="$2" what="$3" dir last n sum want cmds="" files=0
    dir=$(mktemp -d -p "$TB_WORKDIR" writer.XXXXXX)
    debugfs -R "dump /synced.log $dir/synced.log" "$raw" >/dev/null 2>&1 || true
    [ -s "$dir/synced.log" ] || tb_fail "$what: no synced.log in $raw"
    # whole lines only
    grep -E '^[0-9]+ [0-9a-f]{64}$' "$dir/synced.log" >"$dir/lines" || true
    last=$(tail -n 1 "$dir/lines" | cut -d' ' -f1)
    [ -n "$last" ] && [ "$last" -ge "$min" ] ||
        tb_fail "$what: the writer's log ends at file ${last:-none}, files up to $min were synced before the backup"
    while read -r n sum; do
        [ "$n" -gt $((last - 100)) ] || continue
        cmds+="dump /w.$n $dir/w.$n"$'\n'
    done <"$dir/lines"
    printf '%s' "$cmds" >"$dir/cmds"
    debugfs -f "$dir/cmds" "$raw" >/dev/null 2>&1 || true
    while read -r n want; do
        [ "$n" -gt $((last - 100)) ] || continue
        [ -f "$dir/w.$n" ] || tb_fail "$what: w.$n is in the writer's log but not in $raw"
        sum=$(sha256sum <"$dir/w.$n" | cut -c1-64)
        tb_assert_eq "$sum" "$want" "$what: checksum of w.$n"
        files=$((files + 1))
    done <"$dir/lines"
    rm -rf "$dir"
    tb_log "$what: the writer's log goes to file $last (synced before the backup: $min), its last $files files intact"
}
