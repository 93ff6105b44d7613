#!/usr/bin/env bash
# Full calls with sipp, for users who trust sipp. Two side-by-side measurements, in one run,
# alternating, ROUNDS rounds (default 3, median quoted):
#  A. sipp -sn uac (core 0) -> system under test (core 1) -> sipp -sn uas (core 0), for the
#     bare forwarder, Kamailio (dispatcher alg 0, forward(), 1 worker, f_malloc) and sipshard
#     (1 worker): the highest call rate (calls/s) with every call successful.
#  B. The generator alone on core 0 against sipshard responder on core 1: the highest call
#     rate with every call successful for sipp -sn uac and for sipshard bench --mode calls.
# The table goes to docs/benchmarks.md. Needs root; nothing else should run meanwhile.
#   bench-scripts/sipp-calls.sh
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
ROUNDS=${ROUNDS:-3}
STEP_SECONDS=${STEP_SECONDS:-4}
SIPP_RATES=${SIPP_RATES:-"1000 2000 4000 6000 8000 10000 12000 14000 16000"}
BENCH_RATES=${BENCH_RATES:-"10000 20000 30000 40000 50000 60000 80000 100000"}
WORK=$(mktemp -d /tmp/sipshard-sipp.XXXXXX)
trap 'cleanup; rm -rf "$WORK"' EXIT
log() { echo "[sipp-calls] $*" >&2; }

command -v sipp >/dev/null || { log "installing sipp"; DEBIAN_FRONTEND=noninteractive apt-get install -y -qq sip-tester >/dev/null; }
command -v kamailio >/dev/null || { log "installing kamailio"; DEBIAN_FRONTEND=noninteractive apt-get install -y -qq kamailio >/dev/null; }
cargo build --release --bin sipshard --example bare_forwarder >/dev/null 2>&1
SIPSHARD=$ROOT/target/release/sipshard
BARE=$ROOT/target/release/examples/bare_forwarder
sysctl -qw net.core.rmem_max=8388608 net.core.wmem_max=8388608 || true
UAS=127.0.0.1:5091
declare -A PORT=([bare]=5061 [kam]=5071 [sipshard]=5081)
source "$ROOT/bench-scripts/lib.sh"
kamailio_config "$WORK/kamailio.cfg" ${PORT[kam]} $UAS "$WORK/dispatcher.list"

PIDS=()
cleanup() { for p in "${PIDS[@]:-}"; do [ -n "$p" ] && kill "$p" 2>/dev/null || true; done; pkill -f "kamailio -f $WORK" 2>/dev/null || true; }
background() { "$@" >/dev/null 2>&1 & PIDS+=($!); echo $!; }
stop() { kill "$1" $(pgrep -P "$1" 2>/dev/null) 2>/dev/null || true; wait "$1" 2>/dev/null || true; sleep 0.5; }

start_system() {
  case $1 in
    bare) background taskset -c 1 "$BARE" --listen 127.0.0.1:${PORT[bare]} --to $UAS ;;
    kam) background taskset -c 1 kamailio -f "$WORK/kamailio.cfg" -DD -E -m 256 -M 16 -x fm ;;
    sipshard) background taskset -c 1 "$SIPSHARD" balance --listen 127.0.0.1:${PORT[sipshard]} --backend $UAS --workers 1 --secret sipp ;;
  esac
}

# sipp_uac TARGET RATE -> "successful failed elapsed_s"
sipp_uac() {
  local calls=$(( $2 * STEP_SECONDS )) stats="$WORK/uac-$RANDOM.csv" t0 t1
  t0=$(date +%s.%N)
  # sipp's own -timeout is not always honoured (it hung once at 8000 calls/s): bound it.
  timeout $((STEP_SECONDS * 4 + 30)) taskset -c 0 sipp -sn uac "$1" -i 127.0.0.1 -r "$2" -m "$calls" -nostdin -timeout $((STEP_SECONDS * 4)) \
    -trace_stat -stf "$stats" -fd 1 >/dev/null 2>&1 || true
  t1=$(date +%s.%N)
  python3 - "$stats" "$t0" "$t1" <<'PY'
import sys
path, t0, t1 = sys.argv[1], float(sys.argv[2]), float(sys.argv[3])
try:
    lines = open(path).read().splitlines()
    head, last = lines[0].split(";"), lines[-1].split(";")
    ok, failed = int(last[head.index("SuccessfulCall(C)")]), int(last[head.index("FailedCall(C)")])
except Exception:
    ok, failed = 0, 1
print(ok, failed, round(t1 - t0, 3))
PY
}

# A call rate passes when every call succeeded and the generator kept the rate (>= 90%).
passes() { python3 -c "import sys; ok,f,e=$1; sys.exit(0 if f==0 and ok==$2*$STEP_SECONDS and ok/e >= 0.9*$2 else 1)"; }

max_sipp_rate() {
  local best=0 rate r
  for rate in $SIPP_RATES; do
    r=$(sipp_uac "$1" "$rate"); log "  sipp at $rate calls/s -> $r"
    if passes "${r// /,}" "$rate"; then best=$rate; else break; fi
  done
  echo $best
}

max_bench_rate() {
  local best=0 rate r
  for rate in $BENCH_RATES; do
    r=$(taskset -c 0 "$SIPSHARD" bench --target "$1" --mode calls --rate "$rate" --count $((rate * STEP_SECONDS)) \
        --timeout 8 --json --quiet 2>/dev/null | python3 -c "import json,sys; d=json.load(sys.stdin); print(d['completed'], d['failed']+d['timed_out'], round(d['elapsed_s'],3))" || echo "0 1 1")
    log "  bench at $rate calls/s -> $r"
    if passes "${r// /,}" "$rate"; then best=$rate; else break; fi
  done
  echo $best
}

declare -A A B
for round in $(seq "$ROUNDS"); do
  uas=$(background taskset -c 0 sipp -sn uas -aa -i 127.0.0.1 -p ${UAS#*:} -nostdin)
  sleep 1
  for system in bare kam sipshard; do
    log "round $round A: $system"
    pid=$(start_system $system); sleep 1
    A[$system,$round]=$(max_sipp_rate 127.0.0.1:${PORT[$system]})
    stop "$pid"
  done
  stop "$uas"
  responder=$(background taskset -c 1 "$SIPSHARD" responder --listen $UAS --workers 1)
  sleep 1
  log "round $round B: sipp"
  B[sipp,$round]=$(max_sipp_rate $UAS)
  log "round $round B: sipshard bench"
  B[bench,$round]=$(max_bench_rate $UAS)
  stop "$responder"
done

runs() { local key=$1 out=() r; for r in $(seq "$ROUNDS"); do out+=("$(eval echo "\${$2[$key,$r]}")"); done; echo "${out[*]}"; }
row() { local runs_; runs_=$(runs "$1" "$2"); echo "$(median $runs_) ($(echo $runs_ | tr ' ' '/'))"; }
table=$(cat <<EOF
| A: sipp uac → system (core 1) → sipp uas | max calls/s, all calls successful: median (runs) |
| --- | --- |
| bare recvmmsg/sendmmsg forwarder | $(row bare A) |
| Kamailio 5.6 (dispatcher alg 0, forward(), 1 worker, f_malloc) | $(row kam A) |
| sipshard balance, 1 worker | $(row sipshard A) |

| B: generator on one core (0) → sipshard responder (core 1) | max calls/s, all calls successful: median (runs) |
| --- | --- |
| sipp -sn uac | $(row sipp B) |
| sipshard bench --mode calls | $(row bench B) |

Highest rates tried: sipp ${SIPP_RATES##* } calls/s, bench ${BENCH_RATES##* } calls/s (a median equal to it means "at least").
EOF
)
echo "$table"
{
  echo
  echo "### sipp-calls.sh run of $(date -u +%Y-%m-%d) (commit $(git rev-parse --short HEAD), ${STEP_SECONDS} s per rate step, $ROUNDS rounds)"
  echo
  echo "$table"
} >>"$ROOT/docs/benchmarks.md"
log "appended to docs/benchmarks.md"
