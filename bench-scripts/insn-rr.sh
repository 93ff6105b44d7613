#!/usr/bin/env bash
# User-space instructions per call of `sipshard balance` with --record-route off and on,
# counted by callgrind (deterministic where CPU time on this shared VM is not). The balancer
# (1 worker, probes off) runs under callgrind on core 1 in front of `sipshard responder` on
# core 0, while `sipshard bench --mode calls` places N and then 2N calls (INVITE, 100, 180,
# 200, ACK, BYE, 200; the ACK and BYE follow the 200's Record-Route); the difference of the
# two totals over N removes start-up and shutdown.
#   bench-scripts/insn-rr.sh          # N=3000, about 2 minutes
set -euo pipefail
cd "$(dirname "$0")/.."
N=${N:-3000}
RATE=${RATE:-1000}
WORK=$(mktemp -d /tmp/sipshard-insn-rr.XXXXXX)
trap 'rm -rf "$WORK"' EXIT
command -v valgrind >/dev/null || DEBIAN_FRONTEND=noninteractive apt-get install -y -qq valgrind >/dev/null
cargo build --release --bin sipshard >/dev/null 2>&1
SIPSHARD=$(pwd)/target/release/sipshard

# total RECORD_ROUTE CALLS -> instructions in the balancer's whole run
total() {
  taskset -c 0 "$SIPSHARD" responder --listen 127.0.0.1:5990 --workers 1 2>/dev/null &
  local responder=$!
  taskset -c 1 valgrind --tool=callgrind --callgrind-out-file="$WORK/cg.out" "$SIPSHARD" balance \
    --listen 127.0.0.1:5970 --backend 127.0.0.1:5990 --workers 1 --secret insn \
    --probe-interval-ms 0 --record-route "$1" 2>/dev/null &
  local balancer=$!
  sleep 6
  local completed
  completed=$(taskset -c 0 "$SIPSHARD" bench --target 127.0.0.1:5970 --mode calls --rate "$RATE" \
    --count "$2" --timeout 5 --json --quiet 2>/dev/null |
    python3 -c "import json,sys; print(json.load(sys.stdin)['completed'])")
  kill -INT $balancer; wait $balancer 2>/dev/null || true
  kill $responder; wait $responder 2>/dev/null || true
  [ "$completed" = "$2" ] || echo "[insn-rr] record-route $1: only $completed of $2 completed" >&2
  awk '/^summary:/ {print $2}' "$WORK/cg.out"
}

declare -A PER
for rr in off on; do
  one=$(total $rr "$N"); two=$(total $rr $((2 * N)))
  PER[$rr]=$(( (two - one) / N ))
  echo "[insn-rr] record-route $rr: $N calls $one, $((2 * N)) calls $two" >&2
done
echo "| commit | record-route off | record-route on | on / off |"
echo "| --- | --- | --- | --- |"
python3 -c "print(f'| $(git rev-parse --short HEAD) | ${PER[off]} | ${PER[on]} | {${PER[on]}/${PER[off]}:.2f} |')"
