#!/usr/bin/env bash
# Runs the wire-layer micro-benchmarks three times and prints, for each, the median of the
# three runs' median times, as a markdown table (per datagram for the batch32 group, which
# times 32 at a time). Run with nothing else on the machine; the runs are pinned to core
# CORE (default 1), as loop-ab.sh runs are.
#   bench-scripts/wire-bench.sh
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${RUNS:-3}
# criterion writes under the cargo target directory.
criterion=${CARGO_TARGET_DIR:-target}/criterion
cargo bench --bench wire --no-run >/dev/null 2>&1
results=$(mktemp)
for run in $(seq "$runs"); do
  taskset -c "${CORE:-1}" cargo bench --bench wire >/dev/null 2>&1
  for est in "$criterion"/*/*/new/estimates.json; do
    name=${est#"$criterion"/}; name=${name%/new/estimates.json}
    bench=$criterion/$name/new/benchmark.json
    python3 - "$est" "$bench" "$name" "$run" >>"$results" <<'PY'
import json, sys
est, bench, name, run = sys.argv[1:]
median = json.load(open(est))["median"]["point_estimate"]
throughput = json.load(open(bench)).get("throughput") or {}
nbytes = throughput.get("Bytes", 0)
# A batch benchmark times `Elements` datagrams: report per datagram.
per = throughput.get("Elements", 1)
print(name, run, median / per, nbytes)
PY
  done
done
python3 - "$results" <<'PY'
import sys, collections, statistics
rows = collections.defaultdict(list)
size = {}
for line in open(sys.argv[1]):
    name, run, ns, nbytes = line.split()
    rows[name].append(float(ns)); size[name] = int(nbytes)
print("| benchmark | median of runs (ns) | runs (ns) | MB/s | messages/s |")
print("| --- | --- | --- | --- | --- |")
for name in sorted(rows):
    v = rows[name]; m = statistics.median(v)
    mbps = f"{size[name] / m * 1e3:.0f}" if size[name] else ""
    print(f"| {name} | {m:.0f} | {' / '.join(f'{x:.0f}' for x in v)} | {mbps} | {1e9 / m / 1e6:.2f} M |")
PY
rm -f "$results"
