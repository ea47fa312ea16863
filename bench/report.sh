#!/bin/bash
# Summarises the JSON lines of a benchmark run (bench/run.sh) into a machine-readable file
# and a markdown table with ratios and the issue-5 targets marked PASS/MISS.
# Can be re-run on a kept results file: bench/report.sh results.jsonl out.json out.md
set -euo pipefail

in="$1" json_out="$2" md_out="$3"

# The summary: per (case, tool[, env]) the medians over successful runs, and the targets.
# Medians (not means): one run disturbed by other work on the 2-core machine moves a mean.
summarise() {
    jq -s '
      def median: sort | if length == 0 then null
                         elif length % 2 == 1 then .[length / 2 | floor]
                         else (.[length / 2 - 1] + .[length / 2]) / 2 end;
      def r3: if . == null then null else (. * 1000 | round) / 1000 end;
      [.[] | select(.case != null)] as $runs
      | ([$runs[] | select(.rc == 0)] | group_by([.case, .tool, (.env // "")]) | map({
            case: .[0].case, tool: .[0].tool, env: (.[0].env // null), runs: length,
            bytes: .[0].bytes,
            wall_s: ([.[].wall] | median),
            cpu_s: ([.[].cpu] | median | r3),
            peak_rss_mib: (([.[] | .rss_main_kb // .rss_kb] | max) / 1024 | r3),
            tree_rss_mib: (([.[].rss_kb] | max) / 1024 | r3),
            walls: [.[].wall],
            wall_min_s: ([.[].wall] | min),
            load_max: ([.[].load] | max)
          } | .mb_per_s = (if .wall_s > 0 then (.bytes / .wall_s / 1e6 | r3) else null end))) as $sum
      | ([$runs[] | select(.rc != 0) | {case, tool, rep, rc, env, error}]) as $failed
      | ([.[] | select(.note)]) as $notes
      | def get($c; $t): first($sum[] | select(.case == $c and .tool == $t and .env == null)) // null;
        def ratio($a; $b): if $a == null or $b == null or $b == 0 then null else ($a / $b | r3) end;
        def target($name; $val; $op; $goal; $unit):
          {target: $name, value: $val, goal: "\($op) \($goal)\($unit)",
           result: (if $val == null then "n/a"
                    elif ($op == ">=" and $val >= $goal) or ($op == "<=" and $val <= $goal)
                         or ($op == "<" and $val < $goal) then "PASS" else "MISS" end)};
        def speedup($c; $ref; $ours): ratio(get($c; $ref).wall_s; get($c; $ours).wall_s);
        def rss($c; $ours; $ref): ratio(get($c; $ours).peak_rss_mib; get($c; $ref).peak_rss_mib);
        # a figure that is not a timing, from the notes that carry a value (median over reps)
        def metric($k): [$notes[] | select(.note == $k and .value != null) | .value] | median | r3;
        # shown beside the targets, no goal
        def info($name; $val): {target: $name, value: $val, goal: "–", result: (if $val == null then "n/a" else "info" end)};
      {
        settings: (first(.[] | select(.settings)) | .settings),
        summary: $sum,
        failed: $failed,
        notes: [.[] | select(.note)],
        targets: [
          target("full backup plain: speedup vs virtnbdbackup"; speedup("full"; "virtnbdbackup"; "virtbackup"); ">="; 3; "x"),
          target("full backup -z: speedup vs virtnbdbackup"; speedup("full-z"; "virtnbdbackup"; "virtbackup"); ">="; 3; "x"),
          target("full backup plain: throughput vs nbdcopy"; ratio(get("full"; "virtbackup").mb_per_s; get("full"; "nbdcopy").mb_per_s); ">="; 0.8; ""),
          target("nightly incremental: time vs virtnbdbackup"; ratio(get("inc"; "virtbackup").wall_s; get("inc"; "virtnbdbackup").wall_s); "<="; 0.333; ""),
          target("restore plain: speedup vs virtnbdrestore"; speedup("restore"; "virtnbdrestore"; "virtrestore"); ">="; 3; "x"),
          target("restore -z: speedup vs virtnbdrestore"; speedup("restore-z"; "virtnbdrestore"; "virtrestore"); ">="; 3; "x"),
          target("restore plain: throughput vs nbdcopy limit"; ratio(get("restore"; "virtrestore").mb_per_s; get("restore"; "nbdcopy").mb_per_s); ">="; 0.7; ""),
          target("peak RSS full plain vs reference"; rss("full"; "virtbackup"; "virtnbdbackup"); "<="; 0.25; ""),
          target("peak RSS full -z vs reference"; rss("full-z"; "virtbackup"; "virtnbdbackup"); "<="; 0.25; ""),
          target("peak RSS nightly inc vs reference"; rss("inc"; "virtbackup"; "virtnbdbackup"); "<="; 0.25; ""),
          target("peak RSS restore plain vs reference"; rss("restore"; "virtrestore"; "virtnbdrestore"); "<="; 0.25; ""),
          target("peak RSS restore -z vs reference"; rss("restore-z"; "virtrestore"; "virtnbdrestore"); "<="; 0.25; ""),
          target("remote full backup (loopback) vs local: throughput"; ratio(get("remote"; "virtbackup-remote").mb_per_s; get("remote"; "virtbackup-local").mb_per_s); ">="; 0.8; ""),
          target("1 TiB sparse disk: full command time"; get("extents-1t"; "virtbackup").wall_s; "<"; 5; " s"),
          target("100,000-extent disk: full command time"; get("extents-frag"; "virtbackup").wall_s; "<"; 5; " s"),
          target("virtmap plain read vs nbdkit file"; ratio(get("map"; "virtmap").mb_per_s; get("map"; "nbdkit-file").mb_per_s); ">="; 0.7; ""),
          target("virtmap -z (our format) read vs nbdkit file"; ratio(get("map-z"; "virtmap").mb_per_s; get("map"; "nbdkit-file").mb_per_s); ">="; 0.5; ""),
          target("virtmap repository snapshot read vs nbdkit file"; ratio(get("map-repo"; "virtmap").mb_per_s; get("map"; "nbdkit-file").mb_per_s); ">="; 0.5; ""),
          info("virtmap repository snapshot read vs virtmap on the stream directory"; ratio(get("map-repo"; "virtmap").mb_per_s; get("map"; "virtmap").mb_per_s)),
          info("random 4 KiB read latency median, us: nbdkit file"; metric("map-lat-median-nbdkit-file")),
          info("random 4 KiB read latency p99, us: nbdkit file"; metric("map-lat-p99-nbdkit-file")),
          info("random 4 KiB read latency median, us: virtmap stream directory"; metric("map-lat-median-virtmap")),
          info("random 4 KiB read latency p99, us: virtmap stream directory"; metric("map-lat-p99-virtmap")),
          info("random 4 KiB read latency median, us: virtmap -z (ours)"; metric("map-lat-median-virtmap-z")),
          info("random 4 KiB read latency p99, us: virtmap -z (ours)"; metric("map-lat-p99-virtmap-z")),
          info("random 4 KiB read latency median, us: virtmap -z (reference)"; metric("map-lat-median-virtmap-z-ref")),
          info("random 4 KiB read latency p99, us: virtmap -z (reference)"; metric("map-lat-p99-virtmap-z-ref")),
          info("random 4 KiB read latency median, us: virtmap repository"; metric("map-lat-median-virtmap-repo")),
          info("random 4 KiB read latency p99, us: virtmap repository"; metric("map-lat-p99-virtmap-repo")),
          target("ten clones: repository (--chunk-size 64K) holds x one VM"; metric("clones-virtbackup-repo64k"); "<="; 2.5; "x"),
          info("ten clones: repository (4 MiB chunks, the default) holds x one VM"; metric("clones-virtbackup-repo")),
          info("ten clones: ten -z directories hold x one VM"; metric("clones-virtbackup-z")),
          info("second full of an unchanged VM: repository wall time vs -z into a new directory"; ratio(get("repo-again"; "virtbackup-repo").wall_s; get("repo-again"; "virtbackup-z").wall_s)),
          target("full backup into an encrypted repository: time vs the unencrypted one"; ratio(get("repo"; "virtbackup-repo-enc").wall_s; get("repo"; "virtbackup-repo").wall_s); "<="; 1.1; ""),
          target("restore from an encrypted repository: time vs the unencrypted one"; ratio(get("repo-restore"; "virtbackup-repo-enc").wall_s; get("repo-restore"; "virtbackup-repo").wall_s); "<="; 1.1; ""),
          info("second full of an unchanged VM: bytes a -z full into a new directory stored / bytes the repository added"; ratio(metric("repo-again-added-virtbackup-z"); metric("repo-again-added-virtbackup-repo"))),
          target("nightly inc into a repository, 4 MiB aligned writes: time vs the directory inc"; ratio(get("repo-inc-aligned"; "virtbackup-repo").wall_s; get("repo-inc-aligned"; "virtbackup-dir").wall_s); "<="; 1.2; ""),
          info("nightly inc into a repository of 1 MiB chunks, 4 MiB aligned writes: time vs the directory inc"; ratio(get("repo-inc-aligned"; "virtbackup-repo1m").wall_s; get("repo-inc-aligned"; "virtbackup-dir").wall_s))
        ],
        # the repo-inc case: per write pattern and output, medians over the rounds
        repo_inc: [$sum[] | select(.case | startswith("repo-inc-")) | (.case | ltrimstr("repo-inc-")) as $p
          | "repo-inc-\($p)-\(.tool)" as $k
          | {pattern: $p, tool, runs, changed: .bytes, wall_s, cpu_s,
             read: metric("\($k)-read"), new: metric("\($k)-new"), stored: metric("\($k)-stored"),
             amplification: metric("\($k)-amp")}]
      }' "$in"
}

# The markdown: settings, per-tool table with ratios, targets, sweep, notes.
render() {
    jq -r '
      def f($n): if $n == null then "–" else ($n * 100 | round / 100 | tostring) end;
      def limit_tool($c): {"full": ["full", "nbdcopy"], "full-z": ["full", "nbdcopy"],
                           "restore": ["restore", "nbdcopy"], "restore-z": ["restore", "nbdcopy"],
                           "map-tls": ["map-tls", "nbdkit-file"]}[$c];
      def ref_tool($c): if ($c | startswith("restore")) then "virtnbdrestore" else "virtnbdbackup" end;
      . as $r
      | def get($c; $t): first($r.summary[] | select(.case == $c and .tool == $t and .env == null)) // null;
      "# virtbackup benchmark (\(.settings.mode) mode)\n",
      "`\(.settings.command)` — \(.settings.date), \(.settings.cpus) CPUs\(if .settings.cpu_model then " (\(.settings.cpu_model))" else "" end), kernel \(.settings.kernel), commit \(.settings.commit)\(if .settings.domain_type then ", domains: \(if .settings.domain_type == "kvm" then "kvm" else "\(.settings.domain_type) (TCG: no /dev/kvm)" end)" else "" end)",
      "ours: \(.settings.ours); reference: virtnbdbackup \(.settings.reference); \(.settings.qemu); \(.settings.nbdcopy)",
      "corpus: \(.settings.virtual_size) main disk; \(.settings.reps) repetitions, tools alternating; outputs on \(.settings.outputs); medians of whole-command wall time; MB/s = allocated bytes / wall time; CPU s = user+sys of the process tree (median); peak RSS own = the tool\u0027s process, tree max = its largest process (e.g. the restore\u0027s qemu-nbd); limit = nbdcopy; max load = highest 1-min load average seen at the end of a run (2 CPUs: above 2, other work competed)\n",
      "| case | tool | runs | wall s (median) | (best) | MB/s | CPU s | peak RSS MiB (own) | (tree max) | speedup vs ref | vs limit | max load |",
      "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
      (.summary[] | select(.env == null) | . as $s
        | get($s.case; ref_tool($s.case)) as $ref
        | (limit_tool($s.case) // null) as $lt
        | (if $lt then get($lt[0]; $lt[1]) else null end) as $lim
        | "| \($s.case) | \($s.tool) | \($s.runs) | \(f($s.wall_s)) | \(f($s.wall_min_s)) | \(f($s.mb_per_s)) | \(f($s.cpu_s)) | \(f($s.peak_rss_mib)) | \(f($s.tree_rss_mib)) | "
          + (if $ref and ($s.tool == "virtbackup" or $s.tool == "virtrestore") then "\(f($ref.wall_s / $s.wall_s))x" else "" end) + " | "
          + (if $lim and $s.tool != "nbdcopy" and $lim.mb_per_s > 0 then "\(f($s.mb_per_s / $lim.mb_per_s * 100))%" else "" end) + " | \($s.load_max) |"),
      "\n## Targets\n",
      "| target | measured | goal | result |",
      "|---|---:|---:|---|",
      (.targets[] | "| \(.target) | \(f(.value)) | \(.goal) | **\(.result)** |"),
      (if ([.summary[] | select(.case == "sweep")] | length) > 0 then
        "\n## virtbackup knobs (full backup plain, one knob changed at a time; defaults = those of this build)\n",
        "| setting | runs | wall s (median) | (best) | MB/s | CPU s | peak RSS MiB |",
        "|---|---:|---:|---:|---:|---:|---:|",
        (get("full"; "virtbackup") | if . then "| defaults (case full) | \(.runs) | \(f(.wall_s)) | \(f(.wall_min_s)) | \(f(.mb_per_s)) | \(f(.cpu_s)) | \(f(.peak_rss_mib)) |" else empty end),
        (.summary[] | select(.case == "sweep") | "| \(.env) | \(.runs) | \(f(.wall_s)) | \(f(.wall_min_s)) | \(f(.mb_per_s)) | \(f(.cpu_s)) | \(f(.peak_rss_mib)) |")
      else empty end),
      (if ((.repo_inc // []) | length) > 0 then
        "\n## Nightly incremental: repository vs directory, per write pattern (repo-inc)\n",
        "Each round changes the same bytes (changed) with one pattern; amplification = bytes read / bytes changed; new = bytes of data the output gained (directory: written; repository: new chunks, raw), stored = after compression. Medians over the rounds.\n",
        "| pattern | output | runs | wall s | CPU s | changed MiB | read MiB | amplification | new MiB | stored MiB |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|",
        (.repo_inc | sort_by([({"aligned": 0, "64k": 1, "4k": 2}[.pattern] // 3), .tool])[]
          | "| \(.pattern) | \({"virtbackup-dir": "directory", "virtbackup-repo": "repository, 4 MiB chunks", "virtbackup-repo1m": "repository, 1 MiB chunks"}[.tool] // .tool) | \(.runs) | \(f(.wall_s)) | \(f(.cpu_s)) | \(f(.changed / 1048576)) | \(f(if .read then .read / 1048576 else null end)) | \(f(.amplification)) | \(f(if .new then .new / 1048576 else null end)) | \(f(if .stored then .stored / 1048576 else null end)) |")
      else empty end),
      (if (.failed | length) > 0 then "\n## Failed runs (not in the medians)\n", (.failed[] | "- \(.case) / \(.tool) rep \(.rep): exit \(.rc)\(if .env then " (\(.env))" else "" end)\(if .error then ": \(.error)" else "" end)") else empty end),
      "\n## Notes\n",
      (.notes[] | "- \(.note): \(.text)")
    ' "$1"
}

summarise >"$json_out.tmp"
# The raw runs go into the JSON too, so that it alone can be re-analysed.
jq --slurpfile runs <(jq -c 'select(.case != null)' "$in") '. + {runs: $runs}' "$json_out.tmp" >"$json_out"
rm -f "$json_out.tmp"
render "$json_out" >"$md_out"

# bench/README.md shows the latest table: replace what is between its markers.
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
readme="$here/README.md"
if [ "$(realpath -m "$md_out")" = "$here/results/latest.md" ] && grep -q '^<!-- latest:begin -->$' "$readme" 2>/dev/null; then
    awk -v md="$md_out" '
        /^<!-- latest:begin -->$/ {
            print
            # the table'"'"'s headings go below the README'"'"'s own "## Latest results"
            while ((getline line < md) > 0) { sub(/^#/, "###", line); print line }
            skip = 1
            next
        }
        /^<!-- latest:end -->$/ { skip = 0 }
        !skip { print }' "$readme" >"$readme.tmp"
    mv "$readme.tmp" "$readme"
fi
