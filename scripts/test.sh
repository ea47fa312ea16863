#!/bin/bash
# Installs what the project needs, builds it twice (optimised, and with ASan+UBSan) and runs
# every test: unit tests in both builds, integration tests (real libvirtd, qemu domains, the
# reference tools) once, in the sanitizer build. The last lines are ctest's summary.
set -euo pipefail

if [ "$(id -u)" -ne 0 ]; then
    if command -v sudo >/dev/null 2>&1; then
        exec sudo -E "$0" "$@"
    fi
    echo "test.sh: must run as root (libvirt domains, /dev/kvm); sudo is not available" >&2
    exit 1
fi

cd "$(dirname "$0")/.."
ROOT=$PWD
JOBS=$(nproc)

step() { printf '\n==> [%s, %ss] %s\n' "$(date +%H:%M:%S)" "$SECONDS" "$*"; }

step "installing dependencies"
./scripts/install-deps.sh

step "checking the code style (.clang-format)"
mapfile -t sources < <(git ls-files '*.c' '*.h' 2>/dev/null || find src tests -name '*.[ch]')
clang-format --dry-run --Werror "${sources[@]}"

step "building (RelWithDebInfo) in build/"
cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build build -j"$JOBS"

step "compiling (Release, -O3) in build-release/: deeper inlining, other warnings under -Werror"
cmake -S . -B build-release -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build build-release -j"$JOBS"

step "building (ASan+UBSan) in build-asan/"
# -O1: AddressSanitizer's documentation advises it for reasonable speed.
cmake -S . -B build-asan -DCMAKE_BUILD_TYPE=Debug -DCMAKE_C_FLAGS_DEBUG="-g -O1" -DVB_SANITIZE=ON >/dev/null
cmake --build build-asan -j"$JOBS"

step "unit tests, optimised build"
(cd build && ctest -L unit --output-on-failure -j"$JOBS")

step "fuzzing the stream, zip and repository readers and the NBD server (bounded time)"
# a smoke run inside CI's 20 minutes (18 on a slow machine); longer: scripts/fuzz.sh SECONDS
./scripts/fuzz.sh "${VB_FUZZ_SECONDS:-12}"

step "preparing the test bed (libvirtd, virtlogd, /dev/kvm)"
./scripts/setup-testbed.sh

step "packaging: .deb built, installed, used for a backup and restore, purged; man pages linted"
./scripts/check-packaging.sh

step "unit and integration tests, sanitizer build"
export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
(cd build-asan && ctest --output-on-failure -j"$JOBS")
