#!/bin/bash
# Remote backups and restores (virtbackup(1), "Remote hosts") through a real sshd on 127.0.0.1:2222 and libvirt
# reached as qemu+ssh://: the job's NBD server on TCP, files and qemu-img/qemu-nbd over SSH.
#  - full + inc (-z) of a running domain, restored by virtrestore locally and on the "remote"
#    host (its qemu-nbd started over SSH), each compared with the disk;
#  - a shut-off domain: copy offline (qemu-nbd started over SSH, on --nbd-port), full
#    (started paused through libvirt), inc --no-start-domain (offline through the persistent
#    bitmap, a diff);
#  - zip to stdout, also of a domain with boot files (fetched through a private directory in
#    TMPDIR, nothing created in the current directory but the run's log); two remote
#    backups at once on distinct NBD ports;
#  - into a local repository (virtbackup(1), REPOSITORY OUTPUT): a full of the running remote
#    domain and a copy of the shut-off one with boot files (fetched over SFTP, kept as blobs),
#    each exported and restored equal to the disk, the boot files equal to the host's;
#  - failures name what to fix: NBD port taken, NBD address that does not resolve, SSH port
#    refused, SSH authentication, an unknown host key; passwords never in logs or --json.
set -euo pipefail
source "$(dirname "$0")/../lib/testbed.sh"
source "$(dirname "$0")/../lib/chain.sh"
source "$(dirname "$0")/../lib/sshd.sh"
source "$(dirname "$0")/../lib/remote_env.sh"
tb_init
sshd_start

# libvirt's own ssh accepts the key (no_verify=1); our SSH session checks the test's
# known_hosts file (known_hosts=), which holds the server's key.
URI="qemu+ssh://root@127.0.0.1:$SSHD_PORT/system?keyfile=$SSH_KEY&known_hosts=$SSH_KNOWN_HOSTS&no_verify=1"
PORT=$(remote_env_free_port 10900 10949)
SNAP=$TB_WORKDIR/snap
mkdir -p "$SNAP"

rb() { vb_backup -U "$URI" -I 127.0.0.1 -P "$PORT" "$@"; }

# remote_restore_compare IN SNAP WHAT [ARGS]: virtrestore on the remote host into a fresh
# directory there, compared with the snapshot.
remote_restore_compare() {
    local in="$1" snap="$2" what="$3" out rc=0
    shift 3
    out="$TB_WORKDIR/remote-restore.$RANDOM"
    "$VIRTRESTORE" -n -i "$in" -o "$out" -d vda -U "$URI" -I 127.0.0.1 -P "$PORT" "$@" \
        >"$out.log" 2>&1 || rc=$?
    [ "$rc" -eq 0 ] || tb_fail "$what: remote virtrestore exited $rc: $(tail -5 "$out.log")"
    grep -q "qemu-nbd" "$out.log" || true
    local img
    img=$(ls "$out"/*.qcow2 2>/dev/null | head -1)
    [ -n "$img" ] || tb_fail "$what: remote virtrestore made no image (files: $(ls "$out"))"
    ! ls "$out"/*.partial 2>/dev/null || tb_fail "$what: a .partial was left"
    compare_qcow_raw "$img" "$snap" "$what (remote virtrestore)"
}

VIRTREPO="$VB_BUILD_DIR/src/virtrepo/virtrepo"
REPO=$TB_WORKDIR/repo
# repo_export_compare VM SNAPSHOT.raw WHAT: vda of VM's newest snapshot in REPO, exported, and
# its restore by virtrestore, compared with the snapshot
repo_export_compare() {
    local id
    id=$("$VIRTREPO" snapshots "$REPO" --vm "$1" --json | jq -r '.[-1].id')
    [ -n "$id" ] && [ "$id" != null ] || tb_fail "$3: no snapshot of $1 in the repository"
    "$(tb_tool repo-raw)" export "$REPO" "$id" vda "$TB_WORKDIR/export.raw" ||
        tb_fail "$3: repo-raw export of snapshot $id failed"
    cmp "$TB_WORKDIR/export.raw" "$2" || tb_fail "$3: vda of snapshot $id differs from the disk"
    tb_log "identical: snapshot $id vda == $(basename "$2") ($3)"
    rm -f "$TB_WORKDIR/export.raw"
    vr_restore_compare "$REPO" "$2" "$3" --vm "$1"
}

tb_create_domain run 128M
DOM=$TB_DOMAIN
IMG0=${TB_IMAGES[0]}
OUT=$TB_WORKDIR/out
tb_qemu_io "$DOM" vda "write -P 0x31 0 3M"
tb_qemu_io "$DOM" vda "write -P 0x32 64M 2M"

tb_step "full backup of a running remote domain: NBD over TCP, metadata over SSH"
out=$("$VIRTBACKUP" -n -v -d "$DOM" -l full -o "$OUT" -U "$URI" -I 127.0.0.1 -P "$PORT" 2>&1) ||
    tb_fail "remote full failed: $out"
grep -q "transport='tcp' name='127.0.0.1' port='$PORT'" <<<"$out" ||
    tb_fail "the job did not serve NBD over TCP on port $PORT: $out"
grep -q "ssh 127.0.0.1:$SSHD_PORT: 'qemu-img' 'info'" <<<"$out" ||
    tb_fail "qemu-img info did not run over SSH: $out"
assert_meta "$OUT/vda.full.data" false virtnbdbackup.0 "" false
[ -s "$OUT/vda.virtnbdbackup.0.qcow.json" ] || tb_fail "no qcow.json from the remote qemu-img"
jq -e '.format == "qcow2"' "$OUT/vda.virtnbdbackup.0.qcow.json" >/dev/null ||
    tb_fail "qcow.json is not qemu-img info output"
tb_snapshot_image "$DOM" vda "$SNAP/full.raw"
apply_compare "$SNAP/full.raw" "remote full" "$OUT/vda.full.data"
jobdir=$(sed -n "s|.*<scratch file='\(.*\)/scratch.vda'/>.*|\1|p" <<<"$out" | head -1)
[ -n "$jobdir" ] || tb_fail "no scratch file in the job XML: $out"
[ ! -e "$jobdir" ] || tb_fail "the remote job directory $jobdir was left behind"

tb_step "qemu-img info over the main SSH session when the server turns a second one away"
# The image-information thread opens its own SSH session so that the command runs during the
# copy. Open are libvirt's qemu+ssh connection and our main session: a third is refused.
tb_on_exit sshd_unlimit
sshd_limit_connections 2
out=$("$VIRTBACKUP" -n -v -d "$DOM" -l copy -o "$TB_WORKDIR/onesession" -U "$URI" \
    -I 127.0.0.1 -P "$PORT" 2>&1) || tb_fail "remote copy with one SSH session failed: $out"
sshd_unlimit
grep -q "image information: no second SSH session" <<<"$out" ||
    tb_fail "a second SSH session was not refused (connlimit), or its failure went unnoticed: $out"
grep -q "ssh 127.0.0.1:$SSHD_PORT: 'qemu-img' 'info'" <<<"$out" ||
    tb_fail "qemu-img info did not run over the main session: $out"
tb_assert_eq "$(jq -r .filename "$TB_WORKDIR/onesession/vda.copy.qcow.json")" "$IMG0" \
    "the image in the copy's qcow.json"

tb_step "incremental (-z) of the running remote domain"
tb_qemu_io "$DOM" vda "write -P 0x33 8M 1M"
tb_qemu_io "$DOM" vda "write -z 64M 1M"
rb -d "$DOM" -l inc -z -o "$OUT"
assert_meta "$OUT/vda.inc.virtnbdbackup.1.data" true virtnbdbackup.1 virtnbdbackup.0 2
tb_snapshot_image "$DOM" vda "$SNAP/inc1.raw"
apply_compare "$SNAP/inc1.raw" "remote full + inc" "$OUT"/vda.*.data
vr_restore_compare "$OUT" "$SNAP/inc1.raw" "remote chain restored locally"

tb_step "restore on the remote host: qemu-img and qemu-nbd started there over SSH"
remote_restore_compare "$OUT" "$SNAP/inc1.raw" "remote chain"
remote_restore_compare "$OUT" "$SNAP/full.raw" "remote chain until the full" --until virtnbdbackup.0
pgrep -f "qemu-nbd.*-p $PORT" >/dev/null && tb_fail "the remote qemu-nbd was left running"
RDOM="vbtest-$$-restored"
RD="$TB_WORKDIR/remote-define"
"$VIRTRESTORE" -n -i "$OUT" -o "$RD" -U "$URI" -I 127.0.0.1 -P "$PORT" -cD -N "$RDOM" \
    >"$RD.log" 2>&1 || tb_fail "remote restore -cD failed: $(tail -5 "$RD.log")"
src=$(tb_virsh domblklist "$RDOM" | awk '$1 == "vda" {print $2}')
tb_assert_eq "$src" "$RD/$(basename "$IMG0")" "disk of the domain defined through the remote URI"
compare_qcow_raw "$src" "$SNAP/inc1.raw" "remote restore -cD"
tb_virsh undefine "$RDOM" >/dev/null

tb_step "full of the running remote domain into a local repository: NBD over TCP"
"$VIRTREPO" init "$REPO" --chunk-size 1M >/dev/null
rb -d "$DOM" -l full -o "$REPO" --json="$TB_WORKDIR/repo-full.json"
# three distinct chunks: 0x31 (three times), 0x32 (once, beside the zeroed 64M), 0x33
jq -e '.status == "ok" and .disks[0].level == "full" and .disks[0].bytes_new == 3145728' \
    "$TB_WORKDIR/repo-full.json" >/dev/null ||
    tb_fail "--json of the remote full into the repository: $(cat "$TB_WORKDIR/repo-full.json")"
repo_export_compare "$DOM" "$SNAP/inc1.raw" "remote full into a repository"

tb_step "-s starts a remote job (prints its NBD URI), -k ends it and removes its directory"
uri_out=$("$VIRTBACKUP" -n -d "$DOM" -l copy -o "$TB_WORKDIR/startonly" -s -U "$URI" \
    -I 127.0.0.1 -P "$PORT" 2>"$TB_WORKDIR/startonly.log") ||
    tb_fail "-s failed: $(cat "$TB_WORKDIR/startonly.log")"
tb_assert_eq "$uri_out" "nbd://127.0.0.1:$PORT" "-s output"
nbdinfo --size "$uri_out/vda" >/dev/null || tb_fail "the started job's export is not reachable at $uri_out/vda"
jobdir=$(tb_virsh backup-dumpxml "$DOM" | sed -n "s|.*<scratch file='\(.*\)/scratch.vda'/>.*|\1|p")
[ -d "$jobdir" ] || tb_fail "no job directory for the started job ($jobdir)"
vb_backup -d "$DOM" -k -U "$URI"
tb_assert_eq "$(tb_virsh domjobinfo "$DOM" | awk '/Job type/ {print $3}')" "None" "job after -k"
[ ! -e "$jobdir" ] || tb_fail "-k left the job directory $jobdir"

tb_step "zip to stdout from a remote domain"
tb_qemu_io "$DOM" vda "write -P 0x34 20M 1M"
tb_snapshot_image "$DOM" vda "$SNAP/copy.raw"
(cd "$TB_WORKDIR" && "$VIRTBACKUP" -n -d "$DOM" -l copy -o - -U "$URI" -I 127.0.0.1 \
    -P "$PORT" >"$TB_WORKDIR/copy.zip") || tb_fail "remote zip backup failed"
entries=$(unzip -Z1 "$TB_WORKDIR/copy.zip") || tb_fail "the zip cannot be listed"
grep -qx "vda.copy.data" <<<"$entries" || tb_fail "no vda.copy.data in the zip: $entries"
vr_restore_compare "$TB_WORKDIR/copy.zip" "$SNAP/copy.raw" "remote zip"

tb_step "a shut-off remote domain: copy offline through a qemu-nbd started over SSH"
tb_virsh destroy "$DOM" >/dev/null
IMG=${TB_IMAGES[0]}
qemu-io -f qcow2 "$IMG" -c "write -P 0x35 30M 1M" >/dev/null
qemu-img convert -f qcow2 -O raw "$IMG" "$SNAP/off.raw"
out=$("$VIRTBACKUP" -n -v -d "$DOM" -l copy -o "$TB_WORKDIR/offcopy" -U "$URI" -I 127.0.0.1 \
    -P "$PORT" 2>&1) || tb_fail "remote offline copy failed: $out"
grep -q "starting qemu-nbd for $IMG on 127.0.0.1, port $PORT" <<<"$out" ||
    tb_fail "the offline copy did not start qemu-nbd remotely on port $PORT: $out"
assert_meta "$TB_WORKDIR/offcopy/vda.copy.data" false virtnbdbackup.0 "" false
apply_compare "$SNAP/off.raw" "remote offline copy" "$TB_WORKDIR/offcopy/vda.copy.data"
pgrep -f "qemu-nbd.*-p $PORT" >/dev/null && tb_fail "the remote qemu-nbd was left running"
tb_assert_eq "$(tb_virsh domstate "$DOM" | head -1)" "shut off" "state after the offline copy"

tb_step "inc of the shut-off remote domain: started paused through libvirt"
rb -d "$DOM" -l inc -o "$OUT"
assert_meta "$OUT/vda.inc.virtnbdbackup.2.data" true virtnbdbackup.2 virtnbdbackup.1 false
tb_assert_eq "$(tb_virsh domstate "$DOM" | head -1)" "shut off" "state after the inc"
apply_compare "$SNAP/off.raw" "remote inc of a shut-off domain" "$OUT"/vda.*.data

tb_step "--no-start-domain: offline diff through the persistent bitmap, qemu-nbd over SSH"
qemu-io -f qcow2 "$IMG" -c "write -P 0x36 40M 512k" >/dev/null
qemu-img convert -f qcow2 -O raw "$IMG" "$SNAP/off2.raw"
rb -d "$DOM" -l inc --no-start-domain -o "$OUT"
diff_file=$(ls "$OUT"/vda.diff.*.data)
assert_meta "$diff_file" true virtnbdbackup.3 virtnbdbackup.2 false
apply_compare "$SNAP/off2.raw" "remote offline diff" "$OUT"/vda.*.data
remote_restore_compare "$OUT" "$SNAP/off2.raw" "remote chain with an offline diff"

tb_step "names with spaces, quotes and commas: quoted for the remote shell, commas doubled"
W="$TB_WORKDIR/we ird,'dir"
install -d -o root -g kvm -m 0770 "$W"
WIMG="$W/disk, 'one'.qcow2"
qemu-img create -q -f qcow2 "$WIMG" 64M
qemu-io -f qcow2 "$WIMG" -c "write -P 0x61 0 1M" -c "write -P 0x62 40M 512k" >/dev/null
qemu-img convert -f qcow2 -O raw "$WIMG" "$SNAP/weird.raw"
WDOM="vbtest-$$-weird"
# boot files (never booted: the domain stays shut off) fetched and restored over SFTP
head -c 300000 /dev/urandom >"$W/vmlinuz, 'k'"
head -c 123457 /dev/urandom >"$W/initrd"
kernel_xml=$(sed "s/&/\&amp;/g; s/'/\&apos;/g" <<<"$W/vmlinuz, 'k'")
initrd_xml=$(sed "s/&/\&amp;/g; s/'/\&apos;/g" <<<"$W/initrd")
xml_path=$(sed "s/&/\&amp;/g; s/'/\&apos;/g" <<<"$WIMG")
cat >"$TB_WORKDIR/weird.xml" <<EOF
<domain type='$(tb_domain_type)'><name>$WDOM</name><memory unit='MiB'>128</memory>
<os><type arch='x86_64'>hvm</type><kernel>$kernel_xml</kernel><initrd>$initrd_xml</initrd></os><devices>
<disk type='file' device='disk'><driver name='qemu' type='qcow2'/>
<source file='$xml_path'/><target dev='vda' bus='virtio'/></disk></devices></domain>
EOF
tb_virsh define "$TB_WORKDIR/weird.xml" >/dev/null
rb -d "$WDOM" -l copy -o "$TB_WORKDIR/weird"
assert_meta "$TB_WORKDIR/weird/vda.copy.data" false virtnbdbackup.0 "" false
apply_compare "$SNAP/weird.raw" "offline copy of an awkward path over SSH" "$TB_WORKDIR/weird/vda.copy.data"
WOUT="$W/restored, 'here'"
"$VIRTRESTORE" -n -i "$TB_WORKDIR/weird" -o "$WOUT" -U "$URI" -I 127.0.0.1 -P "$PORT" \
    --compress >"$TB_WORKDIR/weird-restore.log" 2>&1 ||
    tb_fail "remote restore --compress of an awkward path failed: $(tail -3 "$TB_WORKDIR/weird-restore.log")"
compare_qcow_raw "$WOUT/disk, 'one'.qcow2" "$SNAP/weird.raw" "remote restore --compress, awkward names"
cmp "$TB_WORKDIR/weird/vmlinuz, 'k'" "$W/vmlinuz, 'k'" || tb_fail "the kernel fetched over SFTP differs"
cmp "$TB_WORKDIR/weird/initrd" "$W/initrd" || tb_fail "the initrd fetched over SFTP differs"
cmp "$WOUT/vmlinuz, 'k'" "$W/vmlinuz, 'k'" || tb_fail "the kernel restored over SFTP differs"
cmp "$WOUT/initrd" "$W/initrd" || tb_fail "the initrd restored over SFTP differs"
got_kernel=$(python3 -c 'import sys, xml.etree.ElementTree as E; print(E.parse(sys.argv[1]).find("os/kernel").text)' "$WOUT/vmconfig.xml")
tb_assert_eq "$got_kernel" "$W/vmlinuz, 'k'" "kernel in the config written over SFTP"

tb_step "zip of a remote domain with boot files: fetched into a private directory, not the cwd"
# Every name created in the current directory and in TMPDIR while the backup runs, seen with
# inotify: the boot files must go through a private directory in TMPDIR (gone afterwards),
# and the current directory gets the run's log only (a copy keeps no chain files).
ZCWD=$TB_WORKDIR/zip-cwd
ZTMP=$TB_WORKDIR/zip-tmp
mkdir -p "$ZCWD" "$ZTMP"
created=$(TMPDIR=$ZTMP /usr/bin/python3 - "$ZCWD" "$ZTMP" "$TB_WORKDIR/boot.zip" \
    "$VIRTBACKUP" -n -d "$WDOM" -l copy -o - -U "$URI" -I 127.0.0.1 -P "$PORT" <<'PY'
import ctypes, os, struct, subprocess, sys
cwd, tmp, zip_path, cmd = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4:]
IN_CREATE, IN_MOVED_TO, IN_NONBLOCK = 0x100, 0x80, 0o4000
libc = ctypes.CDLL(None, use_errno=True)
fd = libc.inotify_init1(IN_NONBLOCK)
watch = {libc.inotify_add_watch(fd, d.encode(), IN_CREATE | IN_MOVED_TO): label
         for d, label in ((cwd, "cwd"), (tmp, "tmp"))}
assert fd >= 0 and all(w >= 0 for w in watch), "inotify"
with open(zip_path, "wb") as out:
    rc = subprocess.call(cmd, cwd=cwd, stdout=out)
buf = b""
while True:
    try:
        chunk = os.read(fd, 65536)
    except BlockingIOError:
        break
    if not chunk:
        break
    buf += chunk
off = 0
while off < len(buf):
    wd, mask, cookie, n = struct.unpack_from("iIII", buf, off)
    name = buf[off + 16:off + 16 + n].rstrip(b"\0").decode()
    print(f"{watch.get(wd, '?')}: {name}")
    off += 16 + n
sys.exit(rc)
PY
) || tb_fail "remote zip backup with boot files failed (exit $?)"
tb_log "created while the zip backup ran: $(tr '\n' ';' <<<"$created")"
grep -q '^tmp: virtbackup-boot\.' <<<"$created" ||
    tb_fail "the boot files were not fetched through a private directory in TMPDIR: $created"
bad=$(grep '^cwd: ' <<<"$created" | grep -v '^cwd: backup\.copy\.[0-9]*\.log$' || true)
[ -z "$bad" ] || tb_fail "the zip backup created files in the current directory: $bad"
[ -z "$(ls -A "$ZTMP")" ] || tb_fail "left in TMPDIR: $(ls -A "$ZTMP")"
[ -z "$(ls -A "$ZCWD" | grep -v '^backup\.copy\.[0-9]*\.log$')" ] ||
    tb_fail "left in the current directory: $(ls -A "$ZCWD")"
unzip -p "$TB_WORKDIR/boot.zip" "vmlinuz, 'k'" | cmp - "$W/vmlinuz, 'k'" ||
    tb_fail "the kernel in the zip differs from the host's"
unzip -p "$TB_WORKDIR/boot.zip" initrd | cmp - "$W/initrd" || tb_fail "the initrd in the zip differs"
vr_restore_compare "$TB_WORKDIR/boot.zip" "$SNAP/weird.raw" "remote zip with boot files"

tb_step "copy of the shut-off remote domain with boot files into a local repository"
rb -d "$WDOM" -l copy -o "$REPO"
repo_export_compare "$WDOM" "$SNAP/weird.raw" "remote copy with boot files into a repository"
"$VIRTRESTORE" -n -i "$REPO" --vm "$WDOM" -o "$TB_WORKDIR/repo-boot" -c \
    >"$TB_WORKDIR/repo-boot.log" 2>&1 ||
    tb_fail "virtrestore -c of the remote copy: $(tail -5 "$TB_WORKDIR/repo-boot.log")"
cmp "$TB_WORKDIR/repo-boot/vmlinuz, 'k'" "$W/vmlinuz, 'k'" ||
    tb_fail "the kernel restored from the repository differs from the host's"
cmp "$TB_WORKDIR/repo-boot/initrd" "$W/initrd" ||
    tb_fail "the initrd restored from the repository differs from the host's"
"$VIRTREPO" verify "$REPO" >"$TB_WORKDIR/repo-verify.out" 2>&1 ||
    tb_fail "virtrepo verify: $(cat "$TB_WORKDIR/repo-verify.out")"
tb_log "$(tail -1 "$TB_WORKDIR/repo-verify.out")"
tb_virsh undefine "$WDOM" >/dev/null

tb_step "two remote backups at once, on distinct NBD ports"
tb_create_domain par1 64M
D1=$TB_DOMAIN
tb_qemu_io "$D1" vda "write -P 0x41 0 2M"
tb_create_domain par2 64M
D2=$TB_DOMAIN
tb_qemu_io "$D2" vda "write -P 0x42 0 2M"
P2=$(remote_env_free_port 10950 10999)
"$VIRTBACKUP" -n -d "$D1" -l full -o "$TB_WORKDIR/p1" -U "$URI" -I 127.0.0.1 -P "$PORT" \
    >"$TB_WORKDIR/p1.log" 2>&1 &
pid1=$!
"$VIRTBACKUP" -n -d "$D2" -l full -o "$TB_WORKDIR/p2" -U "$URI" -I 127.0.0.1 -P "$P2" \
    >"$TB_WORKDIR/p2.log" 2>&1 &
pid2=$!
wait "$pid1" || tb_fail "parallel remote backup 1 failed: $(cat "$TB_WORKDIR/p1.log")"
wait "$pid2" || tb_fail "parallel remote backup 2 failed: $(cat "$TB_WORKDIR/p2.log")"
assert_meta "$TB_WORKDIR/p1/vda.full.data" false virtnbdbackup.0 "" false
assert_meta "$TB_WORKDIR/p2/vda.full.data" false virtnbdbackup.0 "" false
tb_snapshot_image "$D1" vda "$SNAP/p1.raw"
tb_snapshot_image "$D2" vda "$SNAP/p2.raw"
apply_compare "$SNAP/p1.raw" "parallel remote 1" "$TB_WORKDIR/p1/vda.full.data"
apply_compare "$SNAP/p2.raw" "parallel remote 2" "$TB_WORKDIR/p2/vda.full.data"

tb_step "failures name what to fix"
# the NBD port is taken (by an NBD server that is not ours)
nbdkit --exit-with-parent -p "$PORT" -i 127.0.0.1 null 1M &
blocker=$!
tb_wait_for "$blocker" eval '(exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null' ||
    tb_fail "nbdkit did not listen on $PORT"
vb_backup_fails "-P/--nbd-port" -d "$D1" -l copy -o "$TB_WORKDIR/taken" -U "$URI" \
    -I 127.0.0.1 -P "$PORT"
kill "$blocker"
wait "$blocker" 2>/dev/null || true
tb_assert_eq "$(tb_virsh domjobinfo "$D1" | awk '/Job type/ {print $3}')" "None" \
    "no job left after the port failure"
vb_backup_fails "no-such-host.invalid" -d "$D1" -l copy -o "$TB_WORKDIR/noresolve" -U "$URI" \
    -I no-such-host.invalid -P "$PORT"
vb_backup_fails "refused" -d "$D1" -l copy -o "$TB_WORKDIR/refused" -U "$URI" \
    --ssh-port 2223
ssh-keygen -q -t ed25519 -N '' -f "$TB_WORKDIR/otherkey"
vb_backup_fails "authentication as root@127.0.0.1" -d "$D1" -l copy -o "$TB_WORKDIR/auth" \
    -U "$URI" --ssh-private-key "$TB_WORKDIR/otherkey"
: >"$TB_WORKDIR/empty_known_hosts"
# no_verify=1 is for libvirt's own ssh; ours still refuses a key known_hosts lacks
EMPTY_URI="qemu+ssh://root@127.0.0.1:$SSHD_PORT/system?keyfile=$SSH_KEY&known_hosts=$TB_WORKDIR/empty_known_hosts&no_verify=1"
vb_backup_fails "not in $TB_WORKDIR/empty_known_hosts" -d "$D1" -l copy -o "$TB_WORKDIR/hk" \
    -U "$EMPTY_URI" -I 127.0.0.1 -P "$PORT"
vb_backup -d "$D1" -l copy -o "$TB_WORKDIR/hk2" -U "$EMPTY_URI" -I 127.0.0.1 -P "$PORT" \
    --ssh-accept-new-key
grep -q "ssh-ed25519" "$TB_WORKDIR/empty_known_hosts" ||
    tb_fail "--ssh-accept-new-key did not record the host key"
assert_meta "$TB_WORKDIR/hk2/vda.copy.data" false virtnbdbackup.0 "" false

# a libvirt without the backup API (the test driver stands in for an old remote libvirt)
vb_backup_fails "lacks this function" -U test:///default -d test -l copy -r -o "$TB_WORKDIR/old"

tb_step "a password is never in the log, the --json summary or the process's arguments"
SECRET="s3cr3t-$RANDOM-pw"
"$VIRTBACKUP" -n -d "$D1" -l copy -o "$TB_WORKDIR/pw" -U "$URI" -I 127.0.0.1 -P "$PORT" \
    --password "$SECRET" --json="$TB_WORKDIR/pw.json" -v >"$TB_WORKDIR/pw.out" 2>&1 ||
    tb_fail "backup with --password failed: $(cat "$TB_WORKDIR/pw.out")"
! grep -rqF -- "$SECRET" "$TB_WORKDIR/pw" "$TB_WORKDIR/pw.json" "$TB_WORKDIR/pw.out" ||
    tb_fail "the password appears in the output, log or JSON"
if strings "$VIRTBACKUP" | grep -x VIRTBACKUP_DEBUG_STALL >/dev/null; then
    # held at the debug stall (its .partial exists): surely past option parsing, still alive
    gate=$TB_WORKDIR/pw.gate
    touch "$gate"
    VIRTBACKUP_DEBUG_STALL=$gate "$VIRTBACKUP" -n -d "$D1" -l copy -o "$TB_WORKDIR/pw2" -U "$URI" \
        -I 127.0.0.1 -P "$PORT" --password "$SECRET" >"$TB_WORKDIR/pw2.out" 2>&1 &
    pwpid=$!
    tb_on_exit "kill $pwpid"
    tb_wait_for "$pwpid" test -e "$gate.stalled" ||
        tb_fail "the backup with --password never reached its stall: $(cat "$TB_WORKDIR/pw2.out")"
    cmdline=$(tr '\0' ' ' <"/proc/$pwpid/cmdline")
    rm -f "$gate"
    wait "$pwpid" || tb_fail "backup with --password (argv check) failed: $(cat "$TB_WORKDIR/pw2.out")"
    ! grep -qF -- "$SECRET" <<<"$cmdline" || tb_fail "the password is visible in /proc/$pwpid/cmdline"
    grep -qF -- "--password" <<<"$cmdline" || tb_fail "not the backup's command line: $cmdline"
    tb_log "/proc/$pwpid/cmdline of the running backup: $cmdline"
else
    tb_log "release build without the debug stall: the /proc/PID/cmdline check runs in debug builds"
fi

tb_pass "remote backups and restores over qemu+ssh, NBD/TCP, SSH/SFTP"
