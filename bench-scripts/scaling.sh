#!/usr/bin/env bash
# sipshard with 1 worker vs 2 workers, alternating, ROUNDS rounds (median). On a 2-core
# machine there is no spare core for the load: generator (2 workers) and responder
# (2 workers) share both cores with the balancer, unpinned, so this bounds scaling rather
# than measuring it. Reports the max rate at <= 0.1% loss and the CPU per forwarded datagram
# (at a fixed rate) for each worker count; the table goes to docs/benchmarks.md.
#   bench-scripts/scaling.sh
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
ROUNDS=${ROUNDS:-3}
STEP_SECONDS=${STEP_SECONDS:-3}
RATES=${RATES:-"20000 30000 40000 50000 60000 70000 85000 100000 120000"}
CPU_RATE=${CPU_RATE:-20000}
cargo build --release --bin sipshard >/dev/null 2>&1
S=$ROOT/target/release/sipshard
source "$ROOT/bench-scripts/lib.sh"
log() { echo "[scaling] $*" >&2; }
"$S" responder --listen 127.0.0.1:5092 --workers 2 2>/dev/null & RESP=$!
BAL=
trap 'kill $RESP $BAL 2>/dev/null || true' EXIT
# bench exits non-zero when a request went unanswered: that is a result here, not an error.
bench() { "$S" bench --target 127.0.0.1:5082 --mode messages --rate "$1" --duration "$2" --workers 2 --timeout 2 --json --quiet 2>/dev/null || true; }
declare -A MAX CPU
for round in $(seq "$ROUNDS"); do
  for w in 1 2; do
    "$S" balance --listen 127.0.0.1:5082 --backend 127.0.0.1:5092 --workers $w --secret scale 2>/dev/null & BAL=$!
    sleep 1
    best=0
    for rate in $RATES; do
      loss=$(bench "$rate" "$STEP_SECONDS" | field "d['timed_out']/max(d['offered'],1)")
      log "round $round, $w worker(s), $rate req/s: loss $loss"
      if python3 -c "import sys; sys.exit(0 if $loss <= 0.001 else 1)"; then best=$rate; else break; fi
    done
    t0=$(proc_ticks $BAL)
    completed=$(bench "$CPU_RATE" 8 | field "d['completed']")
    t1=$(proc_ticks $BAL)
    MAX[$w,$round]=$best
    CPU[$w,$round]=$(python3 -c "print(round(($t1-$t0)/$(getconf CLK_TCK)/max(2*$completed,1)*1e6, 2))")
    kill $BAL; wait $BAL 2>/dev/null || true
    sleep 0.5
  done
done
vals() { local out=() r; for r in $(seq "$ROUNDS"); do out+=("$(eval echo "\${$1[$2,$r]}")"); done; echo "${out[*]}"; }
m1=$(median $(vals MAX 1)); m2=$(median $(vals MAX 2)); c1=$(median $(vals CPU 1)); c2=$(median $(vals CPU 2))
ratio=$(python3 -c "print(round($m2/max($m1,1),2))")
table="| sipshard workers | max req/s at ≤0.1% loss (runs) | CPU µs per datagram (runs) |
| --- | --- | --- |
| 1 | $m1 ($(vals MAX 1 | tr ' ' '/')) | $c1 ($(vals CPU 1 | tr ' ' '/')) |
| 2 | $m2 ($(vals MAX 2 | tr ' ' '/')) | $c2 ($(vals CPU 2 | tr ' ' '/')) |

Ratio 2 workers / 1 worker: ${ratio}× max rate. Generator (2 workers) and responder (2 workers) share the 2 cores with the balancer, unpinned."
echo "$table"
{ echo; echo "### scaling.sh run of $(date -u +%Y-%m-%d) (commit $(git rev-parse --short HEAD), $ROUNDS rounds, median)"; echo; echo "$table"; } >>"$ROOT/docs/benchmarks.md"
