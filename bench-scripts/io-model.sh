#!/usr/bin/env bash
# The cost of the I/O model, side by side in one run, alternating: CPU per forwarded
# datagram at one fixed rate for
#   bare     - bare_forwarder: poll(2) + recvmmsg/sendmmsg, no SIP (the physical limit)
#   glommio  - glommio_forwarder: the same job, one glommio task per socket parked on
#              io_uring (glommio's peek_from) between batches: sipshard's earlier I/O model
#   sipshard - sipshard balance, 1 worker, probes off (parks in poll(2) over its sockets)
# Each system is pinned to core 1; the generator (sipshard bench, OPTIONS) and the responder
# run on core 0. ROUNDS rounds (default 3), medians; the table goes to docs/benchmarks.md.
# The latency (request -> 200 at the generator) of the three, at the same rate, shows what the
# forwarder adds: the generator's own queueing is common to all three.
# Nothing else should run on the machine meanwhile.
#   bench-scripts/io-model.sh              # RATE=20000 DURATION=6 ROUNDS=3
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
ROUNDS=${ROUNDS:-3}
RATE=${RATE:-20000}
SECONDS_EACH=${DURATION:-6}
source "$ROOT/bench-scripts/lib.sh"
cargo build --release --bin sipshard --example bare_forwarder --example glommio_forwarder >/dev/null 2>&1
S=$ROOT/target/release/sipshard
EX=$ROOT/target/release/examples
RESPONDER=127.0.0.1:5290
WORK=$(mktemp -d /tmp/sipshard-io-model.XXXXXX)
PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$WORK"; }
trap cleanup EXIT

run_one() { # system -> prints µs per datagram
  local sys=$1 target pid t0 t1 done
  case $sys in
    bare) taskset -c 1 "$EX/bare_forwarder" --listen 127.0.0.1:5260 --to $RESPONDER 2>/dev/null & pid=$!; target=127.0.0.1:5260 ;;
    glommio) taskset -c 1 "$EX/glommio_forwarder" --listen 127.0.0.1:5270 --to $RESPONDER 2>/dev/null & pid=$!; target=127.0.0.1:5270 ;;
    sipshard) taskset -c 1 "$S" balance --listen 127.0.0.1:5280 --backend $RESPONDER --workers 1 --secret io --probe-interval-ms 0 2>/dev/null & pid=$!; target=127.0.0.1:5280 ;;
  esac
  PIDS+=("$pid")
  sleep 1
  t0=$(proc_ticks "$pid")
  taskset -c 0 "$S" bench --target $target --mode messages --rate "$RATE" --duration "$SECONDS_EACH" --quiet --json >"$WORK/$sys.json" 2>/dev/null || true
  t1=$(proc_ticks "$pid")
  kill -9 "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true
  done=$(field 'd["completed"]' <"$WORK/$sys.json")
  field 'd["latency_us"]["p50"], d["latency_us"]["p99"], d["latency_us"]["p999"]' <"$WORK/$sys.json" >"$WORK/$sys.lat"
  python3 -c "print(($t1 - $t0) / $(getconf CLK_TCK) * 1e6 / (2 * $done))"
}

taskset -c 0 "$S" responder --listen $RESPONDER --workers 1 2>/dev/null & PIDS+=($!)
sleep 0.5
declare -A RESULTS=([bare]="" [glommio]="" [sipshard]="")
declare -A P50=() P99=() P999=()
for round in $(seq "$ROUNDS"); do
  for sys in bare glommio sipshard; do
    us=$(run_one $sys)
    echo "[io-model] round $round $sys: $us µs/datagram" >&2
    RESULTS[$sys]+="$us "
    read -r p50 p99 p999 <"$WORK/$sys.lat"
    P50[$sys]+="$p50 "; P99[$sys]+="$p99 "; P999[$sys]+="$p999 "
  done
done
bare=$(median ${RESULTS[bare]})
{
  echo
  echo "### io-model.sh run of $(date -u +%Y-%m-%d) (commit $(git rev-parse --short HEAD), $RATE req/s, ${SECONDS_EACH} s, $ROUNDS rounds, median)"
  echo
  echo "| system | CPU µs per forwarded datagram (runs) | × bare | latency p50 / p99 / p99.9 µs (medians) |"
  echo "| --- | --- | --- | --- |"
  for sys in bare glommio sipshard; do
    m=$(median ${RESULTS[$sys]})
    printf '| %s | %.2f (%s) | %.2f | %s / %s / %s |\n' "$sys" "$m" "$(printf '%.2f/' ${RESULTS[$sys]} | sed 's/\/$//')" "$(python3 -c "print($m / $bare)")" \
      "$(median ${P50[$sys]})" "$(median ${P99[$sys]})" "$(median ${P999[$sys]})"
  done
} | tee -a "$ROOT/docs/benchmarks.md"
