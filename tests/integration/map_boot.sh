#!/bin/bash
# --boot: virtmap starts a transient domain from the backup's vmconfig (new name, no uuid,
# no NICs, disks on the served exports over the unix socket); reads inside the domain come
# from virtmap (a pattern written before the backup is read back through the guest's disk),
# guest writes land in the overlay, not in the backup; stopping virtmap removes the domain.
# A domain destroyed from outside ends virtmap at once, with exit status 2 and the reason
# logged (at 13cdb49 virtmap went on serving until stopped).
set -euo pipefail
source "$(dirname "$0")/../lib/testbed.sh"
source "$(dirname "$0")/../lib/chain.sh"
tb_init
VIRTMAP="$VB_BUILD_DIR/src/map/virtmap"

tb_create_domain boot 64M
DOM=$TB_DOMAIN
W=$TB_WORKDIR
tb_step "a backup of a domain with a NIC and a known pattern on its disk"
tb_virsh attach-interface "$DOM" network default --config >/dev/null 2>&1 ||
    tb_virsh attach-interface "$DOM" user --config >/dev/null 2>&1 || true
tb_qemu_io "$DOM" vda "write -P 0x6b 1M 1M"
vb_backup -d "$DOM" -l full -o "$W/out"
sums=$(sha256sum "$W/out"/*.data)

BOOT=vbtest-$$-booted
tb_step "virtmap --boot starts $BOOT reading from the backup"
"$VIRTMAP" -d none -i "$W/out" --boot --name "$BOOT" >"$W/uris" 2>"$W/virtmap.log" &
vmpid=$!
tb_on_exit "kill $vmpid"
tb_wait_for $vmpid test -s "$W/uris" || tb_fail "virtmap --boot did not become ready: $(cat "$W/virtmap.log")"
cat "$W/uris" >&2
# (output captured first: grep -q ending a pipe early fails it under pipefail)
running=$(tb_virsh list --name)
grep -qx "$BOOT" <<<"$running" || tb_fail "domain $BOOT is not running"
xml=$(tb_virsh dumpxml "$BOOT")
grep -q "protocol='nbd' name='vda'" <<<"$xml" || tb_fail "vda is not on the NBD export: $xml"
! grep -q '<interface' <<<"$xml" || tb_fail "the booted domain kept a NIC"
[ "$(tb_virsh domuuid "$BOOT")" != "$(tb_virsh domuuid "$DOM")" ] || tb_fail "uuid was kept"
info=$(tb_virsh dominfo "$BOOT")
grep -q 'Persistent: *no' <<<"$info" || tb_fail "$BOOT is not transient: $info"
tb_qemu_io "$BOOT" vda "read -P 0x6b 1M 1M"
tb_qemu_io "$BOOT" vda "write -P 0x77 8M 64k"
tb_qemu_io "$BOOT" vda "read -P 0x77 8M 64k"
tb_log "the booted domain reads the backup's data and its writes read back"
tb_assert_eq "$sums" "$(sha256sum "$W/out"/*.data)" "backup files after guest writes"

tb_step "stopping virtmap removes the domain"
kill -TERM $vmpid
wait $vmpid || tb_fail "virtmap exited non-zero: $(tail -3 "$W/virtmap.log")"
cat "$W/virtmap.log" >&2
all=$(tb_virsh list --all --name)
! grep -qx "$BOOT" <<<"$all" || tb_fail "$BOOT still exists"
tb_step "a VM destroyed from outside ends virtmap with exit status 2"
"$VIRTMAP" -d none -i "$W/out" --boot --name "$BOOT" >"$W/uris2" 2>"$W/virtmap2.log" &
vmpid=$!
tb_on_exit "kill $vmpid"
tb_wait_for $vmpid test -s "$W/uris2" || tb_fail "virtmap --boot did not become ready: $(cat "$W/virtmap2.log")"
tb_virsh destroy "$BOOT" >/dev/null
# bound for a hung run only: a working virtmap ends at once when its VM does
for _ in $(seq 1 600); do kill -0 $vmpid 2>/dev/null || break; sleep 0.1; done
if kill -0 $vmpid 2>/dev/null; then
    kill -TERM $vmpid
    wait $vmpid || true
    cat "$W/virtmap2.log" >&2
    tb_fail "virtmap is still running 60 s after its VM was destroyed"
fi
rc=0
wait $vmpid || rc=$?
cat "$W/virtmap2.log" >&2
tb_assert_eq "$rc" 2 "virtmap's exit status after its VM was destroyed"
grep -qF -- "--boot: VM $BOOT was destroyed" "$W/virtmap2.log" ||
    tb_fail "virtmap's log does not say that the VM was destroyed"
! grep -q "cannot stop VM" "$W/virtmap2.log" || tb_fail "virtmap warned about stopping the VM"
tb_assert_eq "$sums" "$(sha256sum "$W/out"/*.data)" "backup files after the second boot"
tb_pass "--boot"
