#!/bin/bash
# Builds the Debian package of virtbackup (packaging/debian/) from a copy of the source
# tree and puts the results (.deb, -dbgsym .deb, .buildinfo, .changes) into OUTDIR.
#
#   scripts/build-deb.sh [OUTDIR]        default OUTDIR: ./dist
#
# - Installs what the build needs (dpkg-dev, debhelper, the Build-Depends) with apt-get
#   when something is missing; nothing is installed when all is present.
# - Builds in a fixed directory (${TMPDIR:-/tmp}/virtbackup-deb/virtbackup-VERSION), wiped
#   first, from the files git knows about (tracked and untracked, not ignored), so the
#   same tree gives the same package; the date comes from debian/changelog.
# - Runs `DEB_BUILD_OPTIONS=nocheck dpkg-buildpackage -us -uc -b` unless DEB_BUILD_OPTIONS
#   is set by the caller (then it is used as given, e.g. "" to run the unit tests).
# - Fails if the versions of CMakeLists.txt and debian/changelog differ.
# The last line on stdout is the path of the virtbackup .deb.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
OUT="$(realpath -m "${1:-$ROOT/dist}")"

log() { echo "build-deb: $*" >&2; }
die() {
    echo "build-deb: ERROR: $*" >&2
    exit 1
}

as_root() {
    if [ "$(id -u)" -eq 0 ]; then
        "$@"
    elif command -v sudo >/dev/null 2>&1; then
        sudo "$@"
    else
        die "need root to run: $* (and sudo is not available)"
    fi
}

apt_install() {
    local stamp=/var/lib/apt/periodic/virtbackup-update-stamp
    if [ ! -e "$stamp" ] || [ -n "$(find "$stamp" -mmin +60 2>/dev/null)" ]; then
        as_root apt-get update -q >&2
        as_root mkdir -p "$(dirname "$stamp")"
        as_root touch "$stamp"
    fi
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends \
        "$@" >&2
}

# --- tools of the build itself
need=()
for p in dpkg-dev debhelper build-essential; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || need+=("$p")
done
if [ ${#need[@]} -gt 0 ]; then
    log "installing ${need[*]}"
    apt_install "${need[@]}"
fi

# --- versions must agree
cmake_version=$(sed -n 's/^project(virtbackup VERSION \([0-9.]*\).*/\1/p' "$ROOT/CMakeLists.txt")
deb_version=$(dpkg-parsechangelog -l "$ROOT/packaging/debian/changelog" -S Version)
[ -n "$cmake_version" ] || die "cannot read the project version from CMakeLists.txt"
if [ "${deb_version%%-*}" != "$cmake_version" ]; then
    die "version mismatch: CMakeLists.txt says $cmake_version, packaging/debian/changelog says" \
        "$deb_version (add a changelog entry: dch -v $cmake_version)"
fi

# --- a clean copy of the tree, one build at a time
BASE="${TMPDIR:-/tmp}/virtbackup-deb"
mkdir -p "$BASE"
exec 9>"$BASE/.lock"
flock -w 600 9 || die "another build-deb.sh holds $BASE/.lock"
SRC="$BASE/virtbackup-$cmake_version"
rm -rf "$BASE"/virtbackup-* "$BASE"/virtbackup_* "$BASE"/virtbackup-dbgsym_*
mkdir -p "$SRC"
log "copying the source tree to $SRC"
if git -C "$ROOT" rev-parse --is-inside-work-tree >/dev/null 2>&1; then
    # tracked and untracked files, not ignored ones (build dirs, results)
    (cd "$ROOT" && git ls-files -z -co --exclude-standard |
        while IFS= read -r -d '' f; do [ -e "$f" ] && printf '%s\0' "$f"; done |
        grep -zv '^bench/' |
        tar --null -T - -cf -) | tar -C "$SRC" -xf -
else
    tar -C "$ROOT" --exclude=./.git --exclude='./build*' --exclude=./dist \
        --exclude='./obj-*' --exclude=./bench -cf - . | tar -C "$SRC" -xf -
fi
rm -rf "$SRC/debian"
cp -a "$SRC/packaging/debian" "$SRC/debian"

# --- build dependencies
cd "$SRC"
if ! unmet=$(dpkg-checkbuilddeps 2>&1); then
    log "missing build dependencies: ${unmet#*: }"
    as_root apt-get update -q >&2 || true
    as_root env DEBIAN_FRONTEND=noninteractive apt-get build-dep -y -q --no-install-recommends \
        "$SRC" >&2
fi

# --- the build
export DEB_BUILD_OPTIONS="${DEB_BUILD_OPTIONS-nocheck}"
case " $DEB_BUILD_OPTIONS " in
*" parallel="*) ;;
*) DEB_BUILD_OPTIONS="${DEB_BUILD_OPTIONS:+$DEB_BUILD_OPTIONS }parallel=$(nproc)" ;;
esac
log "DEB_BUILD_OPTIONS='$DEB_BUILD_OPTIONS' dpkg-buildpackage -us -uc -b"
if ! dpkg-buildpackage -us -uc -b >"$BASE/build.log" 2>&1; then
    tail -n 40 "$BASE/build.log" >&2
    die "dpkg-buildpackage failed (full log: $BASE/build.log)"
fi

# --- results
mkdir -p "$OUT"
arch=$(dpkg-architecture -qDEB_HOST_ARCH)
shopt -s nullglob
results=("$BASE"/virtbackup*_"$deb_version"_*.deb "$BASE"/virtbackup_"$deb_version"_"$arch".buildinfo
    "$BASE"/virtbackup_"$deb_version"_"$arch".changes)
[ ${#results[@]} -gt 0 ] || die "dpkg-buildpackage produced no package"
for f in "${results[@]}"; do
    cp -f "$f" "$OUT/"
    log "wrote $OUT/$(basename "$f")"
done
deb="$OUT/virtbackup_${deb_version}_${arch}.deb"
[ -f "$deb" ] || die "$deb is missing"
echo "$deb"
