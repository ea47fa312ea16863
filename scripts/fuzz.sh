#!/bin/bash
# Builds the libFuzzer harnesses (clang, ASan+UBSan: CMake with -DVB_FUZZ=ON in build-fuzz/)
# and runs each for a bounded time on a seed corpus it generates.
# Usage: scripts/fuzz.sh [SECONDS per harness, default 30]
# Exit non-zero when a harness finds a crash, a leak, undefined behaviour or a timeout;
# the reproducer is left in build-fuzz/<harness>-crash-*.
set -euo pipefail
cd "$(dirname "$0")/.."
SECS=${1:-30}
OUT=build-fuzz
mkdir -p "$OUT"

echo "==> building the fuzzers with $(clang --version | head -1)"
# tests/CMakeLists.txt: each tests/fuzz/*.c linked against the libraries (-DVB_FUZZ=ON), the
# binaries at the top of the build directory
CC=clang cmake -S . -B "$OUT" -DCMAKE_BUILD_TYPE=Debug -DCMAKE_C_FLAGS_DEBUG="-g -O1" \
    -DVB_FUZZ=ON >/dev/null
cmake --build "$OUT" -j"$(nproc)" --target fuzz_stream fuzz_nbd fuzz_zip \
    fuzz_repo_object fuzz_repo_manifest >/dev/null

echo "==> seed corpora"
mkdir -p "$OUT/corpus_stream" "$OUT/corpus_nbd" "$OUT/corpus_zip" "$OUT/corpus_repo_object" \
    "$OUT/corpus_repo_manifest"
/usr/bin/python3 tests/fuzz/seeds.py "$OUT/corpus_stream" "$OUT/corpus_nbd" "$OUT/corpus_zip" \
    "$OUT/corpus_repo_object" "$OUT/corpus_repo_manifest"

run() { # run NAME CORPUS
    local name="$1" corpus="$2"
    echo "==> $name for ${SECS}s"
    (cd "$OUT" && ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1 \
        "./$name" -max_total_time="$SECS" -timeout=10 -rss_limit_mb=2048 -max_len=65536 \
        -print_final_stats=1 -artifact_prefix="$name-" "$(basename "$corpus")" \
        >"$name.log" 2>&1) || true
    grep -E '^(#[0-9]+.*DONE|stat::number_of_executed_units|stat::average_exec_per_sec)' "$OUT/$name.log" || true
    if grep -qE 'ERROR: (Leak|Address|Undefined)Sanitizer|runtime error:' "$OUT/$name.log" ||
        ls "$OUT/$name"-crash-* "$OUT/$name"-leak-* "$OUT/$name"-timeout-* >/dev/null 2>&1; then
        grep -A20 -E 'ERROR: |runtime error:' "$OUT/$name.log" | head -40 >&2
        echo "FUZZ FAILURE in $name: $(ls "$OUT/$name"-*-*)" >&2
        return 1
    fi
    # a harness killed by a signal (SIGPIPE...) leaves neither an error nor its final line
    if ! grep -qE '^#[0-9]+.*DONE' "$OUT/$name.log"; then
        tail -5 "$OUT/$name.log" >&2
        echo "FUZZ FAILURE in $name: it ended before its time was up" >&2
        return 1
    fi
}
rm -f "$OUT"/fuzz_*-crash-* "$OUT"/fuzz_*-leak-* "$OUT"/fuzz_*-timeout-*
run fuzz_stream "$OUT/corpus_stream"
run fuzz_nbd "$OUT/corpus_nbd"
run fuzz_zip "$OUT/corpus_zip"
run fuzz_repo_object "$OUT/corpus_repo_object"
run fuzz_repo_manifest "$OUT/corpus_repo_manifest"
echo "fuzzing: no crash, leak, undefined behaviour or timeout"
