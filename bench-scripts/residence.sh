#!/usr/bin/env bash
# The latency a forwarder adds, measured on the forwarder itself, side by side in one run,
# alternating, at one offered rate (default 40 k req/s: about half of sipshard's max rate
# on this machine, see compare.sh):
#   bare         - bare_forwarder --residence: recvmmsg/sendmmsg, no SIP (the yardstick)
#   sipshard     - sipshard balance, 1 worker, probes off, --residence-time on
#   sipshard-off - the same with residence time off (the default): what measuring costs
#   sipshard-busy - sipshard (on) with --busy-poll-us BUSY_POLL_US (default 200): an idle shard
#                  spins that long before it parks, so no wake-up latency within the window
# Residence time = from the kernel's receive timestamp of a datagram (SO_TIMESTAMPNS) to the
# end of the sendmmsg of its batch: queueing in the socket, the wake-up, the work, the send.
# On loopback the kernel would stamp a datagram when the sender's core queues it for
# delivery (net.core.netdev_tstamp_prequeue=1, the default, right for a NIC), so its wait
# behind the generator's own work on core 0 would count; the script sets the sysctl to 0
# for the run (stamped when delivered to the forwarder's socket) and restores it.
# The generator's latency (request -> 200, two passes through the forwarder plus the
# generator's and responder's own queueing on core 0) is printed beside it.
# Each system is pinned to core 1; generator (sipshard bench, OPTIONS) and responder on
# core 0. ROUNDS rounds (default 3), medians; the table goes to docs/benchmarks.md.
# Nothing else should run on the machine meanwhile.
#   bench-scripts/residence.sh            # RATE=40000 DURATION=6 ROUNDS=3 [SEND_INTERVAL_US=N: the generator's pacing]
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
ROUNDS=${ROUNDS:-3}
RATE=${RATE:-40000}
SECONDS_EACH=${DURATION:-6}
SYSTEMS="bare sipshard sipshard-off sipshard-busy"
BUSY_POLL_US=${BUSY_POLL_US:-200}
source "$ROOT/bench-scripts/lib.sh"
cargo build --release --bin sipshard --example bare_forwarder >/dev/null 2>&1
S=$ROOT/target/release/sipshard
EX=$ROOT/target/release/examples
RESPONDER=127.0.0.1:5490
WORK=$(mktemp -d /tmp/sipshard-residence.XXXXXX)
PIDS=()
stamp_at_socket
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$WORK"; unstamp; }
trap cleanup EXIT


run_one() { # system -> prints "cpu_us_per_datagram gen_p50 gen_p99 gen_p999 res_p50 res_p99 res_p999"
  local sys=$1 target pid t0 t1 done port
  case $sys in
    bare) port=5460; taskset -c 1 "$EX/bare_forwarder" --listen 127.0.0.1:$port --to $RESPONDER --residence 2>"$WORK/$sys.log" & pid=$! ;;
    sipshard) port=5470; taskset -c 1 "$S" balance --listen 127.0.0.1:$port --backend $RESPONDER --workers 1 --secret res --probe-interval-ms 0 --residence-time on 2>"$WORK/$sys.log" & pid=$! ;;
    sipshard-busy) port=5450; taskset -c 1 "$S" balance --listen 127.0.0.1:$port --backend $RESPONDER --workers 1 --secret res --probe-interval-ms 0 --residence-time on --busy-poll-us "$BUSY_POLL_US" 2>"$WORK/$sys.log" & pid=$! ;;
    sipshard-off) port=5480; taskset -c 1 "$S" balance --listen 127.0.0.1:$port --backend $RESPONDER --workers 1 --secret res --probe-interval-ms 0 --residence-time off 2>"$WORK/$sys.log" & pid=$! ;;
  esac
  target=127.0.0.1:$port
  PIDS+=("$pid")
  sleep 1
  t0=$(proc_ticks "$pid")
  taskset -c 0 "$S" bench --target $target --mode messages --rate "$RATE" --duration "$SECONDS_EACH" ${SEND_INTERVAL_US:+--send-interval-us $SEND_INTERVAL_US} --quiet --json >"$WORK/$sys.json" 2>/dev/null || true
  t1=$(proc_ticks "$pid")
  # The bare forwarder prints its histogram every second; sipshard when it stops.
  [ "$sys" = bare ] && sleep 1.5
  kill -TERM "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true
  done=$(field 'd["completed"]' <"$WORK/$sys.json")
  echo "$(python3 -c "print(f'{($t1 - $t0) / $(getconf CLK_TCK) * 1e6 / max(2 * $done, 1):.2f}')")" \
    "$(field 'd["latency_us"]["p50"], d["latency_us"]["p99"], d["latency_us"]["p999"]' <"$WORK/$sys.json" | tr -d '(),')" \
    "$(residence_of "$WORK/$sys.log")"
}

taskset -c 0 "$S" responder --listen $RESPONDER --workers 1 2>/dev/null & PIDS+=($!)
sleep 0.5
declare -A COL=()
for round in $(seq "$ROUNDS"); do
  for sys in $SYSTEMS; do
    read -r cpu g50 g99 g999 r50 r99 r999 <<<"$(run_one $sys)"
    echo "[residence] round $round $sys: cpu $cpu µs/datagram, generator p50/p99/p99.9 $g50/$g99/$g999 µs, residence p50/p99/p99.9 <$r50/<$r99/<$r999 µs" >&2
    for c in cpu g50 g99 g999 r50 r99 r999; do COL[$sys,$c]+="${!c} "; done
  done
done
{
  echo
  echo "### residence.sh run of $(date -u +%Y-%m-%d) (commit $(git rev-parse --short HEAD), $RATE req/s, ${SECONDS_EACH} s, $ROUNDS rounds, median)"
  echo
  echo "| system | residence p50 / p99 / p99.9 µs (upper bucket edge; runs of p99) | generator latency p50 / p99 / p99.9 µs | CPU µs per forwarded datagram (runs) |"
  echo "| --- | --- | --- | --- |"
  for sys in $SYSTEMS; do
    med() { median ${COL[$sys,$1]}; }
    printf '| %s | %s / %s / %s (%s) | %s / %s / %s | %s (%s) |\n' "$sys" \
      "$(med r50)" "$(med r99)" "$(med r999)" "$(echo ${COL[$sys,r99]} | tr ' ' '/')" \
      "$(med g50)" "$(med g99)" "$(med g999)" "$(med cpu)" "$(echo ${COL[$sys,cpu]} | tr ' ' '/')"
  done
} | tee -a "$ROOT/docs/benchmarks.md"
