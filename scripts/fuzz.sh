#!/bin/bash
# Builds the libFuzzer harnesses (clang, ASan+UBSan) and runs each for a bounded time on a
# seed corpus it generates. Usage: scripts/fuzz.sh [SECONDS per harness, default 30]
# Exit non-zero when a harness finds a crash, a leak, undefined behaviour or a timeout;
# the reproducer is left in build-fuzz/<harness>-crash-*.
set -euo pipefail
cd "$(dirname "$0")/.."
SECS=${1:-30}
OUT=build-fuzz
mkdir -p "$OUT"

CFLAGS=(-std=c17 -D_GNU_SOURCE -D_FILE_OFFSET_BITS=64 -DVB_VERSION='"fuzz"' -g -O1
    -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined
    -Isrc/stream -Isrc/common -Isrc/backupset -Isrc/map)
# shellcheck disable=SC2207
LIBS=($(pkg-config --libs liblz4 zlib libdeflate jansson libvirt libnbd libxml-2.0 libzip libarchive libssh gnutls) -lpthread)

echo "==> building the fuzzers with $(clang --version | head -1)"
clang "${CFLAGS[@]}" tests/fuzz/fuzz_stream.c src/stream/*.c "${LIBS[@]}" -o "$OUT/fuzz_stream"
clang "${CFLAGS[@]}" $(pkg-config --cflags libvirt libxml-2.0) tests/fuzz/fuzz_nbd.c \
    src/stream/*.c src/common/*.c src/backupset/*.c $(ls src/map/*.c | grep -v '/main.c$') "${LIBS[@]}" \
    -o "$OUT/fuzz_nbd"

clang "${CFLAGS[@]}" tests/fuzz/fuzz_zip.c src/stream/*.c src/common/zip_source.c \
    "${LIBS[@]}" -o "$OUT/fuzz_zip"

echo "==> seed corpora"
mkdir -p "$OUT/corpus_stream" "$OUT/corpus_nbd" "$OUT/corpus_zip"
/usr/bin/python3 tests/fuzz/seeds.py "$OUT/corpus_stream" "$OUT/corpus_nbd" "$OUT/corpus_zip"

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
echo "fuzzing: no crash, leak, undefined behaviour or timeout"
