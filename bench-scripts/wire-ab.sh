#!/usr/bin/env bash
# The wire-layer micro-benchmarks of an older commit and of the working tree, alternating,
# RUNS rounds (default 3): criterion's median per benchmark and round, then the median of
# the rounds for each side. Run with nothing else on the machine.
#   bench-scripts/wire-ab.sh OLD_COMMIT ["criterion filter regex"]
set -euo pipefail
cd "$(dirname "$0")/.."
old=${1:?usage: wire-ab.sh OLD_COMMIT [filter]}
filter=${2:-"parse/invite|parse/ok200|request/parse_insert_via|request/parse_full_forward_rewrite"}
runs=${RUNS:-3}
tree=$(mktemp -d /tmp/sipshard-wire-ab.XXXXXX)
trap 'git worktree remove --force "$tree/src" >/dev/null 2>&1 || true; rm -rf "$tree"' EXIT
git worktree add --detach "$tree/src" "$old" >/dev/null 2>&1
bench_bin() { # DIR TARGET_DIR -> path of the built wire bench
  (cd "$1" && CARGO_TARGET_DIR=$2 cargo bench --bench wire --no-run --message-format=json 2>/dev/null) |
    python3 -c "import json,sys; print([m['executable'] for m in map(json.loads, sys.stdin) if m.get('reason') == 'compiler-artifact' and m['target']['name'] == 'wire' and m.get('executable')][-1])"
}
old_bin=$(bench_bin "$tree/src" "$tree/target")
new_bin=$(bench_bin . "${CARGO_TARGET_DIR:-target}")
results=$(mktemp)
for run in $(seq "$runs"); do
  for side in old new; do
    bin=$old_bin; [ "$side" = new ] && bin=$new_bin
    "$bin" --bench --warm-up-time 1 --measurement-time 3 "$filter" 2>/dev/null |
      awk -v side=$side '/^[a-z_]+\/[a-z_0-9]+/ {name=$1}
        /time:/ && name != "" {for (i = 1; i <= NF; i++) if ($i == "time:") print side, name, $(i + 3), $(i + 4); name = ""}' >>"$results"
  done
done
python3 - "$results" "$old" <<'PY'
import sys, collections, statistics
unit = {"ns": 1, "µs": 1e3, "us": 1e3, "ms": 1e6}
rows = collections.defaultdict(list)
for line in open(sys.argv[1]):
    side, name, value, u = line.split()
    rows[(name, side)].append(float(value) * unit[u])
names = sorted({n for n, _ in rows})
print(f"| benchmark | {sys.argv[2][:7]} median (runs), ns | working tree median (runs), ns | change |")
print("| --- | --- | --- | --- |")
for n in names:
    o, w = rows[(n, "old")], rows[(n, "new")]
    mo, mw = statistics.median(o), statistics.median(w)
    fmt = lambda v: " / ".join(f"{x:.0f}" for x in v)
    print(f"| {n} | {mo:.0f} ({fmt(o)}) | {mw:.0f} ({fmt(w)}) | {100 * (mw / mo - 1):+.0f}% |")
PY
rm -f "$results"
