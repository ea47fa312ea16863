#!/bin/bash
# What CI checks about packaging, end to end, from the installed paths:
#   1. the versions of CMakeLists.txt, debian/changelog and the RPM spec agree
#   2. scripts/build-deb.sh builds the .deb (DEB_BUILD_OPTIONS=nocheck dpkg-buildpackage);
#      its contents are complete; lintian finds no error
#   3. the .deb installs (apt-get install ./x.deb); /usr/bin/virtbackup, virtrestore,
#      virtmap and virtrepo print their --version; their libraries resolve
#   4. the man pages have no warnings (mandoc -Tlint, man --warnings), source and installed;
#      options of --help missing from a man page are reported
#   5. bash completion: the installed files load and complete levels, options, domains
#   6. systemd: `systemd-analyze verify` of virtbackup@DOMAIN.service/.timer (skipped with a
#      message when systemd-analyze cannot run here), the timer's calendar expression
#   7. the RPM spec: rpmspec -P, rpmlint (errors fail; warnings are shown)
#   8. a backup and restore with the INSTALLED tools against a throwaway domain: the
#      service's ExecStart (virtbackup-scheduled: -l auto into BASE/DOMAIN/YYYY-MM) makes
#      a full and then an incremental, /usr/bin/virtrestore restores and verifies the chain,
#      a zip from /usr/bin/virtbackup -o - restores, /usr/bin/virtmap serves the chain;
#      every restored disk is compared with `qemu-img compare`
#   9. the package purges cleanly (later tests use the build tree, not /usr/bin)
# Exit status 0 when all passed; the last lines list what was proved. Needs root
# (re-runs itself through sudo). Env: VB_BUILD_DIR (default build/, for the test library),
# VB_KEEP=1 keeps the work dir.
set -euo pipefail

if [ "$(id -u)" -ne 0 ]; then
    if command -v sudo >/dev/null 2>&1; then
        exec sudo -E "$0" "$@"
    fi
    echo "check-packaging.sh: must run as root (dpkg -i, libvirt domains); sudo is not available" >&2
    exit 1
fi

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
export VB_SOURCE_DIR="$ROOT"
export VB_BUILD_DIR="${VB_BUILD_DIR:-$ROOT/build}"
START=$(date +%s)

# shellcheck source=tests/lib/testbed.sh
source "$ROOT/tests/lib/testbed.sh"

PROVED=()
proved() {
    PROVED+=("$*")
    tb_log "ok: $*"
}
NOTES=()
note() {
    NOTES+=("$*")
    tb_log "NOTE: $*"
}

# Tools this check needs besides the test bed's
need=()
for p in mandoc rpm bash-completion lintian rpmlint; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || need+=("$p")
done
if [ ${#need[@]} -gt 0 ]; then
    echo "check-packaging: installing ${need[*]}" >&2
    stamp=/var/lib/apt/periodic/virtbackup-update-stamp
    if [ ! -e "$stamp" ] || [ -n "$(find "$stamp" -mmin +60 2>/dev/null)" ]; then
        apt-get update -q >&2
        mkdir -p "$(dirname "$stamp")" && touch "$stamp"
    fi
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${need[@]}" >&2
fi

tb_init

PKG=virtbackup
purge_package() {
    if dpkg-query -W -f='${Status}' "$PKG" 2>/dev/null | grep -q 'installed\|config-files'; then
        dpkg --purge "$PKG" >/dev/null
    fi
}

# ---------------------------------------------------------------------------
tb_step "versions agree (CMakeLists.txt, debian/changelog, RPM spec)"
VERSION=$(sed -n 's/^project(virtbackup VERSION \([0-9.]*\).*/\1/p' "$ROOT/CMakeLists.txt")
DEB_VERSION=$(dpkg-parsechangelog -l "$ROOT/packaging/debian/changelog" -S Version)
RPM_VERSION=$(rpmspec -q --srpm --qf '%{version}' "$ROOT/packaging/rpm/virtbackup.spec" 2>/dev/null)
tb_assert_eq "$VERSION" "${DEB_VERSION%%-*}" "debian/changelog version"
tb_assert_eq "$VERSION" "$RPM_VERSION" "RPM spec version"
proved "version $VERSION in CMakeLists.txt, debian/changelog and virtbackup.spec"

# ---------------------------------------------------------------------------
tb_step "the .deb builds (scripts/build-deb.sh)"
DIST="$TB_WORKDIR/dist"
# the build tree goes into the work dir too, so that it is removed at the end
DEB=$(TMPDIR="$TB_WORKDIR" "$ROOT/scripts/build-deb.sh" "$DIST" | tail -n 1)
[ -f "$DEB" ] || tb_fail "build-deb.sh did not produce a .deb"
proved "dpkg-buildpackage (nocheck) built $(basename "$DEB") ($(stat -c %s "$DEB") bytes)"

tb_step "the .deb holds binaries, man pages, completion, units, wrapper, config"
CONTENTS=$(dpkg-deb -c "$DEB" | awk '{print $NF}' | sed 's|^\./|/|')
want=(/usr/bin/virtbackup /usr/bin/virtrestore /usr/bin/virtmap /usr/bin/virtrepo
    /usr/share/man/man1/virtbackup.1.gz /usr/share/man/man1/virtrestore.1.gz
    /usr/share/man/man1/virtrepo.1.gz
    /usr/share/man/man5/virtbackup-stream.5.gz /usr/share/man/man5/virtbackup-repository.5.gz
    /usr/share/bash-completion/completions/virtbackup
    /usr/share/bash-completion/completions/virtrestore
    /usr/share/bash-completion/completions/virtmap
    /usr/share/bash-completion/completions/virtrepo
    /usr/lib/systemd/system/virtbackup@.service /usr/lib/systemd/system/virtbackup@.timer
    /usr/libexec/virtbackup/virtbackup-scheduled /etc/virtbackup/virtbackup.conf
    /usr/share/doc/virtbackup/README.md.gz)
[ -f "$ROOT/man/virtmap.1" ] && want+=(/usr/share/man/man1/virtmap.1.gz)
for f in "${want[@]}"; do
    grep -qxF "$f" <<<"$CONTENTS" || tb_fail "$f is not in $(basename "$DEB")"
done
DEPENDS=$(dpkg-deb -f "$DEB" Depends)
for d in qemu-utils libvirt0 libnbd0 liblz4-1 libdeflate0 libzstd1 libssl3; do
    grep -q "\b$d\b" <<<"$DEPENDS" || tb_fail "Depends lacks $d: $DEPENDS"
done
grep -qx '/etc/virtbackup/virtbackup.conf' <(dpkg-deb --ctrl-tarfile "$DEB" | tar -xOf - ./conffiles) ||
    tb_fail "/etc/virtbackup/virtbackup.conf is not a conffile"
proved "the .deb holds all ${#want[@]} expected files; Depends: $DEPENDS"
if [ ! -f "$ROOT/man/virtmap.1" ]; then
    note "man/virtmap.1 does not exist yet: virtmap(1) is neither installed nor linted"
fi

tb_step "lintian: no errors"
lintian_rc=0
LINTIAN_OUT=$(lintian --fail-on error "$DEB" 2>&1) || lintian_rc=$?
LINTIAN_OUT=$(grep -v 'running with root privileges' <<<"$LINTIAN_OUT" || true)
[ "$lintian_rc" -eq 0 ] || tb_fail "lintian found errors (exit $lintian_rc): $LINTIAN_OUT"
[ -z "$LINTIAN_OUT" ] || tb_log "lintian (not fatal): $(tr '\n' ';' <<<"$LINTIAN_OUT")"
proved "lintian: no errors${LINTIAN_OUT:+ ($(grep -c . <<<"$LINTIAN_OUT") warning(s) shown above)}"

# ---------------------------------------------------------------------------
tb_step "the .deb installs and the installed tools run"
if dpkg-query -W -f='${Status}' "$PKG" 2>/dev/null | grep -q 'installed'; then
    tb_log "a $PKG package is installed already: it is replaced, and purged at the end"
fi
tb_on_exit "dpkg --purge $PKG"
DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "$DEB" \
    >"$TB_WORKDIR/apt.log" 2>&1 || { cat "$TB_WORKDIR/apt.log" >&2; tb_fail "apt-get install $DEB failed"; }
tb_assert_eq "install ok installed" "$(dpkg-query -W -f='${Status}' "$PKG")" "package status"
for t in virtbackup virtrestore virtmap virtrepo; do
    tb_assert_eq "$t $VERSION" "$(/usr/bin/$t --version)" "/usr/bin/$t --version"
    /usr/bin/$t --help >/dev/null || tb_fail "/usr/bin/$t --help failed"
    if ldd /usr/bin/$t | grep -q 'not found'; then
        tb_fail "/usr/bin/$t: $(ldd /usr/bin/$t | grep 'not found')"
    fi
done
proved "apt-get install of the .deb; /usr/bin/{virtbackup,virtrestore,virtmap,virtrepo} --version print '<tool> $VERSION'"

# ---------------------------------------------------------------------------
tb_step "man pages: no warnings (mandoc -Tlint -W warning, man --warnings)"
PAGES=("$ROOT"/man/*.[1-8])
for p in "${PAGES[@]}"; do
    out=$(mandoc -Tlint -W warning "$p" 2>&1) || tb_fail "mandoc -Tlint: $out"
done
INSTALLED_PAGES=$(dpkg -L "$PKG" | grep '^/usr/share/man/man[1-8]/.*\.gz$')
for p in $INSTALLED_PAGES; do
    out=$(mandoc -Tlint -W warning "$p" 2>&1) || tb_fail "mandoc -Tlint $p: $out"
    name=$(basename "$p" .gz)
    # man-db's own pipeline (groff), through the installed page as users see it
    out=$(LC_ALL=C.UTF-8 MANWIDTH=80 man --warnings -E UTF-8 "${name##*.}" "${name%.*}" 2>&1 >/dev/null)
    [ -z "$out" ] || tb_fail "man --warnings ${name%.*}(${name##*.}): $out"
done
proved "no warnings from mandoc -Tlint (${#PAGES[@]} source pages) and man --warnings ($(wc -w <<<"$INSTALLED_PAGES") installed pages)"

tb_step "every long option of --help appears in the man page (report only)"
missing_opts=()
for t in virtbackup virtrestore virtmap virtrepo; do
    page="$ROOT/man/$t.1"
    [ -f "$page" ] || continue
    text=$(sed 's/\\-/-/g; s/\\f[BIRP]//g' "$page")
    for o in $(/usr/bin/$t --help | grep -oE -- '--[a-z][a-z0-9-]*' | sort -u); do
        [ "$o" = --help ] && continue
        grep -qF -- "$o" <<<"$text" || missing_opts+=("$t(1) lacks $o")
    done
done
if [ ${#missing_opts[@]} -gt 0 ]; then
    note "options in --help but not in the man page: ${missing_opts[*]}"
else
    proved "every long option of --help is in the man pages"
fi

# ---------------------------------------------------------------------------
tb_step "bash completion: installed files load and complete"
tb_create_domain pkg 64M
DOM=$TB_DOMAIN
# complete_words CMDLINE...: prints COMPREPLY for the last word of the command line
complete_words() {
    bash --norc --noprofile -c '
        source /usr/share/bash-completion/bash_completion
        source "/usr/share/bash-completion/completions/$1"
        COMP_WORDS=("$@"); COMP_CWORD=$(($# - 1))
        COMP_LINE="$*"; COMP_POINT=${#COMP_LINE}
        fn=$(complete -p "$1" | sed -n "s/.*-F \([^ ]*\) .*/\1/p")
        "$fn" "$1" "${COMP_WORDS[COMP_CWORD]}" "${COMP_WORDS[COMP_CWORD-1]}"
        printf "%s\n" "${COMPREPLY[@]}"' _ "$@"
}
tb_assert_eq "auto" "$(complete_words virtbackup -l a)" "virtbackup -l a<TAB>"
tb_assert_eq "--compat-zeroes" "$(complete_words virtbackup --compat)" "virtbackup --compat<TAB>"
complete_words virtbackup -d "vbtest-$$-" | grep -qx "$DOM" ||
    tb_fail "virtbackup -d <TAB> does not offer domain $DOM"
tb_assert_eq "vda" "$(complete_words virtbackup -d "$DOM" -i v)" "virtbackup -d DOM -i v<TAB>"
tb_assert_eq "verify" "$(complete_words virtrestore -a ve)" "virtrestore -a ve<TAB>"
tb_assert_eq "--adjust-config" "$(complete_words virtrestore --adj)" "virtrestore --adj<TAB>"
tb_assert_eq "--allow-remote" "$(complete_words virtmap --allow)" "virtmap --allow<TAB>"
tb_assert_eq "verify" "$(complete_words virtrepo ver)" "virtrepo ver<TAB>"
tb_assert_eq "gc" "$(complete_words virtrepo g)" "virtrepo g<TAB>"
tb_assert_eq "--part" "$(complete_words virtrepo verify --pa)" "virtrepo verify --pa<TAB>"
tb_assert_eq "passwd" "$(complete_words virtrepo key pa)" "virtrepo key pa<TAB>"
proved "bash completion of levels, options, domain names and disks (virsh) for the three tools"

# ---------------------------------------------------------------------------
tb_step "systemd units: systemd-analyze verify"
SERVICE=/usr/lib/systemd/system/virtbackup@.service
TIMER=/usr/lib/systemd/system/virtbackup@.timer
canary="$TB_WORKDIR/vb-canary.service"
printf '[Service]\nType=oneshot\nExecStart=/bin/true\n' >"$canary"
if ! command -v systemd-analyze >/dev/null 2>&1; then
    note "systemd-analyze is not installed: unit verification SKIPPED"
elif ! canary_out=$(systemd-analyze verify "$canary" 2>&1); then
    note "systemd-analyze cannot verify even a trivial unit here ($canary_out): unit verification SKIPPED"
else
    out=$(systemd-analyze verify "virtbackup@$DOM.service" "virtbackup@$DOM.timer" 2>&1) ||
        tb_fail "systemd-analyze verify: $out"
    [ -z "$out" ] || tb_fail "systemd-analyze verify printed: $out"
    cal=$(sed -n 's/^OnCalendar=//p' "$TIMER")
    systemd-analyze calendar "$cal" >/dev/null || tb_fail "bad OnCalendar=$cal"
    proved "systemd-analyze verify virtbackup@$DOM.service and .timer: clean; OnCalendar=$cal valid"
fi
grep -qx 'Persistent=true' "$TIMER" || tb_fail "the timer is not Persistent=true"
grep -q '^RandomizedDelaySec=' "$TIMER" || tb_fail "the timer has no RandomizedDelaySec"

# ---------------------------------------------------------------------------
tb_step "the RPM spec: rpmspec -P, rpmlint"
rpmspec -P "$ROOT/packaging/rpm/virtbackup.spec" >"$TB_WORKDIR/spec.parsed" 2>"$TB_WORKDIR/spec.err" ||
    tb_fail "rpmspec -P: $(cat "$TB_WORKDIR/spec.err")"
rpmlint_out=$(rpmlint "$ROOT/packaging/rpm/virtbackup.spec" 2>&1) || tb_fail "rpmlint: $rpmlint_out"
grep -q ': E: ' <<<"$rpmlint_out" && tb_fail "rpmlint errors: $rpmlint_out"
warn=$(grep ': W: ' <<<"$rpmlint_out" || true)
[ -z "$warn" ] || tb_log "rpmlint warnings (not fatal): $(tr '\n' ';' <<<"$warn")"
# the spec's %files against what `cmake --install` puts there (the same rules the .deb uses)
spec_files=$(sed -n '/^%files/,/^%changelog/p' "$TB_WORKDIR/spec.parsed" |
    grep -E '^(%config\(noreplace\) )?/' | sed 's/^%config(noreplace) //')
while read -r f; do
    grep -qxF "$f" <<<"$CONTENTS" || tb_fail "the spec's %files names $f, which the install rules do not install"
done < <(grep -v '\*' <<<"$spec_files")
proved "rpmspec -P parses the spec; rpmlint: no errors$([ -n "$warn" ] && echo " ($(grep -c . <<<"$warn") warning(s))"); its %files match the installed paths"

# ---------------------------------------------------------------------------
tb_step "scheduled backup: the service's ExecStart, run from the installed paths"
EXEC=$(sed -n 's/^ExecStart=//p' "$SERVICE")
[ -n "$EXEC" ] || tb_fail "$SERVICE has no ExecStart="
EXEC=${EXEC//%i/$DOM}
read -r -a EXEC_ARGV <<<"$EXEC"
[ -x "${EXEC_ARGV[0]}" ] || tb_fail "ExecStart's ${EXEC_ARGV[0]} is not executable"
BASE="$TB_WORKDIR/sched"
SNAP="$TB_WORKDIR/snap"
mkdir -p "$SNAP"
run_unit_command() {
    # as systemd runs it: the unit's environment (VIRTBACKUP_FROM_UNIT) and the
    # config's variables, here with the base directory of this test
    env VIRTBACKUP_FROM_UNIT=1 VIRTBACKUP_BASE="$BASE" VIRTBACKUP_OPTS="-n -z" \
        "${EXEC_ARGV[@]}" 2>>"$TB_WORKDIR/sched.log" ||
        { cat "$TB_WORKDIR/sched.log" >&2; tb_fail "'$EXEC' failed"; }
}
tb_qemu_io "$DOM" vda "write -P 0x51 0 1M"
tb_qemu_io "$DOM" vda "write -P 0x52 20M 4M"
MONTH=$(date +%Y-%m)
run_unit_command
CHAIN="$BASE/$DOM/$MONTH"
[ -f "$CHAIN/vda.full.data" ] || tb_fail "first scheduled run made no $CHAIN/vda.full.data: $(ls "$CHAIN" 2>&1)"
tb_snapshot_image "$DOM" vda "$SNAP/0.raw"
tb_qemu_io "$DOM" vda "write -P 0x53 2M 512k"
tb_qemu_io "$DOM" vda "write -z 21M 1M"
run_unit_command
[ -f "$CHAIN/vda.inc.virtnbdbackup.1.data" ] ||
    tb_fail "second scheduled run made no incremental: $(ls "$CHAIN")"
tb_snapshot_image "$DOM" vda "$SNAP/1.raw"
mode=$(stat -c %a "$CHAIN/vda.full.data")
[ "$mode" = 600 ] || tb_fail "$CHAIN/vda.full.data has mode $mode, not 600 (umask 077)"
proved "the service's ExecStart ($EXEC) ran /usr/bin/virtbackup -l auto: a full, then an incremental, into BASE/DOMAIN/$MONTH"

tb_step "restore with /usr/bin/virtrestore: latest point, --until, verify"
/usr/bin/virtrestore -n -i "$CHAIN" -o verify 2>>"$TB_WORKDIR/restore.log" ||
    tb_fail "/usr/bin/virtrestore -o verify failed: $(tail -5 "$TB_WORKDIR/restore.log")"
/usr/bin/virtrestore -n -i "$CHAIN" -o "$TB_WORKDIR/r1" 2>>"$TB_WORKDIR/restore.log" ||
    tb_fail "/usr/bin/virtrestore failed: $(tail -5 "$TB_WORKDIR/restore.log")"
/usr/bin/virtrestore -n -i "$CHAIN" -o "$TB_WORKDIR/r0" --until virtnbdbackup.0 \
    2>>"$TB_WORKDIR/restore.log" || tb_fail "/usr/bin/virtrestore --until failed"
img=$(basename "${TB_IMAGES[0]}")
qemu-img convert -O raw "$TB_WORKDIR/r1/$img" "$TB_WORKDIR/r1.raw"
qemu-img convert -O raw "$TB_WORKDIR/r0/$img" "$TB_WORKDIR/r0.raw"
tb_compare_raw "$SNAP/1.raw" "$TB_WORKDIR/r1.raw" "latest point (full + inc)"
tb_compare_raw "$SNAP/0.raw" "$TB_WORKDIR/r0.raw" "--until virtnbdbackup.0"
proved "/usr/bin/virtrestore verified the chain and restored both points; qemu-img compare: identical"

tb_step "zip on stdout with /usr/bin/virtbackup, restored by /usr/bin/virtrestore"
mkdir -p "$TB_WORKDIR/zip"
(cd "$TB_WORKDIR/zip" && /usr/bin/virtbackup -n -d "$DOM" -l copy -o - >"$TB_WORKDIR/zip/copy.zip") \
    2>>"$TB_WORKDIR/zip.log" || tb_fail "/usr/bin/virtbackup -o - failed: $(tail -5 "$TB_WORKDIR/zip.log")"
/usr/bin/virtrestore -n -i "$TB_WORKDIR/zip/copy.zip" -o "$TB_WORKDIR/r2" 2>>"$TB_WORKDIR/zip.log" ||
    tb_fail "/usr/bin/virtrestore of the zip failed: $(tail -5 "$TB_WORKDIR/zip.log")"
qemu-img convert -O raw "$TB_WORKDIR/r2/$img" "$TB_WORKDIR/r2.raw"
tb_compare_raw "$SNAP/1.raw" "$TB_WORKDIR/r2.raw" "copy via zip"
proved "/usr/bin/virtbackup -l copy -o - > zip, /usr/bin/virtrestore -i zip: identical"

tb_step "/usr/bin/virtmap serves the chain"
SOCK="$TB_WORKDIR/map.sock"
/usr/bin/virtmap -d none -r --socket "$SOCK" -i "$CHAIN" \
    --run "qemu-img compare -f raw -F raw \"\$uri\" '$SNAP/1.raw'" >/dev/null 2>>"$TB_WORKDIR/map.log" ||
    tb_fail "/usr/bin/virtmap: served disk differs or virtmap failed: $(tail -5 "$TB_WORKDIR/map.log")"
proved "/usr/bin/virtmap -i CHAIN served vda; qemu-img compare with the disk: identical"

# ---------------------------------------------------------------------------
tb_step "the package purges cleanly"
dpkg --purge "$PKG" >/dev/null
for f in /usr/bin/virtbackup /usr/bin/virtrestore /usr/bin/virtmap /etc/virtbackup \
    /usr/lib/systemd/system/virtbackup@.service /usr/libexec/virtbackup; do
    [ ! -e "$f" ] || tb_fail "$f is still there after dpkg --purge"
done
if dpkg-query -W -f='${Status}' "$PKG" 2>/dev/null | grep -q 'installed\|config-files'; then
    tb_fail "$PKG still known to dpkg after --purge"
fi
proved "dpkg --purge removed every file, /etc/virtbackup included"

echo >&2
echo "check-packaging: PASSED in $(($(date +%s) - START)) s; proved:" >&2
for p in "${PROVED[@]}"; do echo "  - $p" >&2; done
if [ ${#NOTES[@]} -gt 0 ]; then
    echo "check-packaging: notes:" >&2
    for n in "${NOTES[@]}"; do echo "  - $n" >&2; done
fi
