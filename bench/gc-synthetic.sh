#!/bin/bash
# virtrepo gc on a synthetic repository (bench/gc-synthetic.py): CHUNKS tiny chunk objects,
# indexes of 16384 chunks each, one snapshot in ten forgotten. Two runs are timed with
# /usr/bin/time: the first marks and moves the unreferenced chunks to its trash, the second
# marks again and empties that trash. Wall time, CPU and peak RSS go to
# bench/results/gc-synthetic-NAME.md.
#   bench/gc-synthetic.sh [CHUNKS]   (default 1000000; BENCH_GC_DIR: where the repository is
#   made, default /var/tmp; BENCH_RESULTS_NAME: NAME, default the commit)
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/.." && pwd)
build=${VB_BUILD_DIR:-$root/build}
virtrepo=$build/src/virtrepo/virtrepo
[ -x "$virtrepo" ] || { echo "build first: $virtrepo is missing" >&2; exit 1; }
chunks=${1:-1000000}
commit=$(git -C "$root" rev-parse --short HEAD)
name=${BENCH_RESULTS_NAME:-$commit}
dir=$(mktemp -d "${BENCH_GC_DIR:-/var/tmp}/gc-bench.XXXXXX")
trap 'rm -rf "$dir"' EXIT
repo=$dir/repo
"$virtrepo" -q init "$repo" --chunk-size 64K
t0=$SECONDS
gen=$(python3 "$here/gc-synthetic.py" "$repo" "$chunks" 10 16384)
gen_s=$((SECONDS - t0))
echo "generated in ${gen_s} s: $gen" >&2
sync
out=$root/bench/results/gc-synthetic-$name.md
{
    echo "# virtrepo gc on a synthetic repository ($chunks chunks)"
    echo
    echo "commit $commit, $(date -u +%Y-%m-%dT%H:%MZ), $(nproc) CPUs, load $(cut -d' ' -f1-3 /proc/loadavg)," \
        "$(df -h --output=source,fstype "$dir" | tail -1 | xargs); generator: $gen"
    echo
    echo "| run | what it did | wall s | user s | sys s | peak RSS MiB |"
    echo "|---|---|---|---|---|---|"
} >"$out"
for run in 1 2; do
    /usr/bin/time -f '%e %U %S %M' -o "$dir/time" "$virtrepo" gc "$repo" --json >"$dir/gc.json"
    read -r wall user sys rss <"$dir/time"
    if [ "$run" = 1 ]; then
        did="mark, move $(jq .moved_chunks "$dir/gc.json") chunks and $(jq .moved_indexes "$dir/gc.json") indexes"
    else
        did="mark, empty the first trash ($(jq '[.trashes[].freed_objects] | add' "$dir/gc.json") objects)"
    fi
    echo "| $run | $did | $wall | $user | $sys | $((rss / 1024)) |" >>"$out"
done
cat "$out"
