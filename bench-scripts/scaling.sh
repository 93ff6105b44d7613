#!/usr/bin/env bash
# sipshard with 1 worker vs 2 workers, alternating, ROUNDS rounds (median).
#
# On a 2-core machine there is no spare core for the load: the generator and the responder
# need about as much CPU per request as the balancer, so with 2 workers all three share
# both cores and the max rate stays bound by the generator. This script therefore reports
# two things:
#   - max rate at <= 0.1% loss, 1 worker (pinned to core 1, generator and responder on
#     core 0) and 2 workers (shards pinned to cores 0 and 1, generator and responder on
#     core 0 with shard 0): bounded by the generator, stated as such;
#   - the work per shard at one fixed rate (CPU_RATE): each shard thread's CPU time
#     (/proc/PID/task/TID/stat) divided by the datagrams that shard received (its
#     sipshard_received_total): with 2 workers, how evenly the load spreads (--steering
#     random: the generator's one socket is spread too) and whether a shard pays anything for
#     having a sibling (shared-nothing: it should not). Equal CPU per datagram per shard means
#     the capacity of N shards on N free cores is N times one shard's.
# The table goes to docs/benchmarks.md. Nothing else should run on the machine meanwhile.
#   bench-scripts/scaling.sh          # ROUNDS=3 CPU_RATE=30000
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
ROUNDS=${ROUNDS:-3}
STEP_SECONDS=${STEP_SECONDS:-3}
RATES=${RATES:-"20000 30000 40000 50000 60000 70000 85000 100000 120000"}
CPU_RATE=${CPU_RATE:-30000}
CPU_SECONDS=${CPU_SECONDS:-8}
cargo build --release --bin sipshard >/dev/null 2>&1
S=$ROOT/target/release/sipshard
source "$ROOT/bench-scripts/lib.sh"
log() { echo "[scaling] $*" >&2; }
METRICS=127.0.0.1:9482
taskset -c 0 "$S" responder --listen 127.0.0.1:5092 --workers 1 2>/dev/null & RESP=$!
BAL=
trap 'kill $RESP $BAL 2>/dev/null || true' EXIT
# bench exits non-zero when a request went unanswered: that is a result here, not an error.
bench() { taskset -c 0 "$S" bench --target 127.0.0.1:5082 --mode messages --rate "$1" --duration "$2" --timeout 2 --json --quiet 2>/dev/null || true; }

# shard_ticks PID K : CPU ticks of shard K's threads (glommio names them sipshard-K-ID)
shard_ticks() {
  local t total=0
  for t in /proc/$1/task/*; do
    case "$(cat "$t/comm" 2>/dev/null)" in
      sipshard-$2-*) total=$((total + $(awk '{sub(/.*\) /, ""); print $12 + $13}' "$t/stat"))) ;;
    esac
  done
  echo $total
}
# shard_received K : sipshard_received_total of shard K
shard_received() {
  curl -s "http://$METRICS/metrics" | awk -v s="sipshard_received_total{shard=\"$1\"}" '$1 == s {print $2}'
}

declare -A MAX CPU SHARE
for round in $(seq "$ROUNDS"); do
  for w in 1 2; do
    if [ "$w" = 1 ]; then pin="taskset -c 1"; else pin=""; fi
    $pin "$S" balance --listen 127.0.0.1:5082 --backend 127.0.0.1:5092 --workers $w --secret scale \
      --probe-interval-ms 0 --metrics $METRICS 2>/dev/null & BAL=$!
    sleep 1
    best=0
    for rate in $RATES; do
      loss=$(bench "$rate" "$STEP_SECONDS" | field "d['timed_out']/max(d['offered'],1)")
      log "round $round, $w worker(s), $rate req/s: loss $loss"
      if python3 -c "import sys; sys.exit(0 if $loss <= 0.001 else 1)"; then best=$rate; else break; fi
    done
    MAX[$w,$round]=$best
    declare -a t0=() r0=()
    for k in $(seq 0 $((w - 1))); do t0[$k]=$(shard_ticks $BAL $k); r0[$k]=$(shard_received $k); done
    bench "$CPU_RATE" "$CPU_SECONDS" >/dev/null
    cpus=(); shares=(); total_r=0
    for k in $(seq 0 $((w - 1))); do
      t1=$(shard_ticks $BAL $k); r1=$(shard_received $k)
      dr=$((r1 - r0[k])); total_r=$((total_r + dr))
      cpus+=("$(python3 -c "print(round(($t1-${t0[$k]})/$(getconf CLK_TCK)/max($dr,1)*1e6, 2))")")
      shares+=("$dr")
    done
    CPU[$w,$round]="${cpus[*]}"
    SHARE[$w,$round]=$(python3 -c "print('/'.join(f'{int(s)/max($total_r,1)*100:.0f}%' for s in '${shares[*]}'.split()))")
    log "round $round, $w worker(s): max $best req/s; CPU µs per datagram per shard ${cpus[*]}; share ${SHARE[$w,$round]}"
    kill $BAL; wait $BAL 2>/dev/null || true
    sleep 0.5
  done
done
vals() { local out=() r; for r in $(seq "$ROUNDS"); do out+=("$(eval echo "\${$1[$2,$r]}")"); done; echo "${out[*]}"; }
# per-shard medians of "a b" pairs over rounds
shard_median() { # w k
  local v=() r
  for r in $(seq "$ROUNDS"); do v+=("$(echo ${CPU[$1,$r]} | cut -d' ' -f$(($2 + 1)))"); done
  median "${v[@]}"
}
m1=$(median $(vals MAX 1)); m2=$(median $(vals MAX 2))
c1=$(shard_median 1 0); c20=$(shard_median 2 0); c21=$(shard_median 2 1)
ratio=$(python3 -c "print(round($m2/max($m1,1),2))")
shares2=$(for r in $(seq "$ROUNDS"); do echo -n "${SHARE[2,$r]} "; done)
table="| sipshard workers | max req/s at ≤0.1% loss (runs) | CPU µs per datagram, per shard, at $CPU_RATE req/s (median) | datagrams per shard (runs) |
| --- | --- | --- | --- |
| 1 (core 1) | $m1 ($(vals MAX 1 | tr ' ' '/')) | shard 0: $c1 | 100% |
| 2 (cores 0, 1) | $m2 ($(vals MAX 2 | tr ' ' '/')) | shard 0: $c20, shard 1: $c21 | $shares2|

Max-rate ratio 2 workers / 1 worker: ${ratio}×, bound by the generator and responder (on core 0, shared with shard 0 when there are 2 workers). Per-shard CPU per datagram with a sibling shard vs alone: $(python3 -c "print(round(max($c20,$c21)/$c1,2))")× (1.00 = no cost for sharing the machine)."
echo "$table"
{ echo; echo "### scaling.sh run of $(date -u +%Y-%m-%d) (commit $(git rev-parse --short HEAD), $ROUNDS rounds, median)"; echo; echo "$table"; } >>"$ROOT/docs/benchmarks.md"
