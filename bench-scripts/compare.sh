#!/usr/bin/env bash
# Side-by-side comparison of stateless forwarders, in one run, alternating:
#   bare   - a recvmmsg/sendmmsg forwarder with no SIP parsing (the physical limit)
#   kam    - Kamailio (dispatcher algorithm 0 = hash over Call-ID, stateless forward(),
#            one worker, 4 MiB receive buffer, the f_malloc allocator: Debian's default
#            q_malloc, built with memory debugging, doubles its CPU per message)
#   sipshard - sipshard balance, one worker
# Each system under test is pinned to core 1; the load generator (sipshard bench, OPTIONS
# requests, each answered 200 by sipshard responder) and the responder run on core 0.
# For each system, per round:
#   - max rate: the highest offered rate (requests/s; 2 datagrams per request pass the
#     forwarder) with loss <= 0.1%, stepping the rate up;
#   - CPU per forwarded datagram: (user+sys CPU seconds of the system's processes) /
#     (datagrams forwarded), at a fixed rate below everyone's saturation;
#   - latency (request -> 200) p50/p99/p99.9 at 50% of sipshard's max rate, and for bare and
#     sipshard the residence time measured on the forwarder itself (kernel receive timestamp
#     to the end of the batch's send; the bare forwarder measures it only in this phase;
#     net.core.netdev_tstamp_prequeue=0 for the run, see residence.sh).
#   rroff  - sipshard balance with --record-route off (sipshard runs with the default, on):
#            the cost of staying in the dialogs, with LOAD=calls.
#   kamtm  - Kamailio as kam, but tm's t_relay() instead of forward(): stateful.
#   stateful - sipshard balance --mode stateful, one worker.
#   base   - with BASE=COMMIT: sipshard balance built from that commit (a git worktree and
#            target directory of its own), run exactly like sipshard: an A/B of two builds
#            in the same rounds, alternating with the others.
# ROUNDS rounds (default 3), medians reported; the table is printed (the current figures
# live in docs/benchmarks.md, with the command and commit).
# Needs root (sysctl, apt-get). Nothing else should run on the machine meanwhile.
#   bench-scripts/compare.sh             # full run (~10 minutes)
#   ROUNDS=1 STEP_SECONDS=3 bench-scripts/compare.sh   # quicker, noisier
#   BASE=32d80f4 SYSTEMS="bare base sipshard" bench-scripts/compare.sh   # A/B against a commit
# LOAD=calls drives whole calls instead of OPTIONS (INVITE, 100, 180, 200, ACK, BYE, 200:
# 7 datagrams per call; the ACK and BYE follow the 200's Record-Route as a user agent's do,
# and the responder copies Record-Route into its 180 and 200). Rates are then calls/s:
#   LOAD=calls SYSTEMS="bare rroff sipshard" RATES="2000 4000 6000 8000 10000 12000 14000 16000" \
#     CPU_RATE=4000 bench-scripts/compare.sh   # record-route on vs off
#   LOAD=calls SYSTEMS="kamtm stateful sipshard" RATES="1000 2000 4000 6000 8000 10000 12000 14000" \
#     CPU_RATE=2000 bench-scripts/compare.sh   # stateful mode vs Kamailio tm and vs stateless
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
ROUNDS=${ROUNDS:-3}
STEP_SECONDS=${STEP_SECONDS:-4}
CPU_RATE=${CPU_RATE:-20000}       # requests/s for the CPU-per-datagram measurement
CPU_SECONDS=${CPU_SECONDS:-10}
RATES=${RATES:-"10000 20000 30000 40000 55000 70000 85000 100000 120000 140000"}
GEN_CORE=0
SUT_CORE=1
RESPONDER=127.0.0.1:5090
declare -A PORT=([bare]=5060 [kam]=5070 [kamtm]=5072 [base]=5075 [sipshard]=5080 [stateful]=5082 [rroff]=5085)
LOAD=${LOAD:-messages}
case $LOAD in
  messages) LOAD_ARGS="--mode messages --method OPTIONS"; DATAGRAMS_PER=2 ;;
  calls) LOAD_ARGS="--mode calls"; DATAGRAMS_PER=7 ;;
  *) echo "LOAD is messages or calls" >&2; exit 2 ;;
esac
BASE=${BASE:-}
# The stateful system's table: every transaction lingers 5 s after its final answer, so
# the highest rate tried × 5 s must fit, or the excess gets 503s and the figures measure
# refusals (131072 fits 26 k transactions/s).
MAX_TRANSACTIONS=${MAX_TRANSACTIONS:-131072}
SYSTEMS=${SYSTEMS:-"bare kam ${BASE:+base }sipshard"}
WORK=$(mktemp -d /tmp/sipshard-compare.XXXXXX)
trap 'stop_all; [ -d "$WORK/base" ] && git worktree remove --force "$WORK/base"; rm -rf "$WORK"; unstamp' EXIT

log() { echo "[compare] $*" >&2; }

case " $SYSTEMS " in *" kam "*|*" kamtm "*)
  command -v kamailio >/dev/null || { log "installing kamailio"; DEBIAN_FRONTEND=noninteractive apt-get install -y -qq kamailio >/dev/null; } ;;
esac
cargo build --release --bin sipshard --example bare_forwarder >/dev/null 2>&1
SIPSHARD=$ROOT/target/release/sipshard
BARE=$ROOT/target/release/examples/bare_forwarder
if [ -n "$BASE" ]; then
  log "building $BASE"
  git worktree add --detach "$WORK/base" "$BASE" >/dev/null 2>&1
  (cd "$WORK/base" && CARGO_TARGET_DIR="$WORK/base-target" cargo build --release --bin sipshard >/dev/null 2>&1)
  BASE_SIPSHARD=$WORK/base-target/release/sipshard
  [ -x "$BASE_SIPSHARD" ] || { log "cannot build $BASE"; exit 1; }
fi
sysctl -qw net.core.rmem_max=8388608 net.core.wmem_max=8388608 || true

source "$ROOT/bench-scripts/lib.sh"
stamp_at_socket
kamailio_config "$WORK/kamailio.cfg" ${PORT[kam]} $RESPONDER "$WORK/dispatcher.list"
kamailio_config "$WORK/kamailio-tm.cfg" ${PORT[kamtm]} $RESPONDER "$WORK/dispatcher.list" tm

start_responder() {
  taskset -c $GEN_CORE "$SIPSHARD" responder --listen $RESPONDER --workers 1 2>"$WORK/responder.log" &
  echo $! >"$WORK/responder.pid"
}

start_system() { # system [--residence: measure residence times (bare and sipshard)]
  case $1 in
    bare) taskset -c $SUT_CORE "$BARE" --listen 127.0.0.1:${PORT[bare]} --to $RESPONDER ${2:-} 2>"$WORK/bare.log" & ;;
    kam) taskset -c $SUT_CORE kamailio -f "$WORK/kamailio.cfg" -DD -E -m 256 -M 16 -x fm -P "$WORK/kam.pidfile" 2>"$WORK/kam.log" & ;;
    kamtm) taskset -c $SUT_CORE kamailio -f "$WORK/kamailio-tm.cfg" -DD -E -m 256 -M 16 -x fm -P "$WORK/kamtm.pidfile" 2>"$WORK/kamtm.log" & ;;
    stateful) taskset -c $SUT_CORE "$SIPSHARD" balance --listen 127.0.0.1:${PORT[stateful]} --backend $RESPONDER --workers 1 --secret compare --mode stateful --max-transactions $MAX_TRANSACTIONS ${2:+--residence-time on} 2>"$WORK/stateful.log" & ;;
    sipshard) taskset -c $SUT_CORE "$SIPSHARD" balance --listen 127.0.0.1:${PORT[sipshard]} --backend $RESPONDER --workers 1 --secret compare ${2:+--residence-time on} 2>"$WORK/sipshard.log" & ;;
    rroff) taskset -c $SUT_CORE "$SIPSHARD" balance --listen 127.0.0.1:${PORT[rroff]} --backend $RESPONDER --workers 1 --secret compare --record-route off ${2:+--residence-time on} 2>"$WORK/rroff.log" & ;;
    base) taskset -c $SUT_CORE "$BASE_SIPSHARD" balance --listen 127.0.0.1:${PORT[base]} --backend $RESPONDER --workers 1 --secret compare ${2:+--residence-time on} 2>"$WORK/base.log" & ;;
  esac
  echo $! >"$WORK/$1.pid"
  sleep 1
}

# Every process of a system (Kamailio forks its workers).
pids_of() {
  local main; main=$(cat "$WORK/$1.pid")
  echo "$main $(pgrep -P "$main" 2>/dev/null | tr '\n' ' ')"
}

cpu_ticks() {
  local total=0 pid
  for pid in $(pids_of "$1"); do
    [ -r /proc/$pid/stat ] || continue
    total=$((total + $(proc_ticks "$pid")))
  done
  echo $total
}

stop_system() {
  [ -f "$WORK/$1.pid" ] || return 0
  local main; main=$(cat "$WORK/$1.pid")
  kill $(pids_of "$1") 2>/dev/null || true
  wait "$main" 2>/dev/null || true
  rm -f "$WORK/$1.pid"
  sleep 0.5
}
stop_all() { for s in $SYSTEMS responder; do stop_system $s 2>/dev/null || true; done; }

# bench RATE SECONDS PORT -> JSON report
bench() {
  taskset -c $GEN_CORE "$SIPSHARD" bench --target 127.0.0.1:$3 $LOAD_ARGS \
    --rate "$1" --duration "$2" --timeout 2 --json --quiet 2>/dev/null || true
}


max_rate() {
  local system=$1 best=0 rate report loss offered_rate
  for rate in $RATES; do
    report=$(bench "$rate" "$STEP_SECONDS" "${PORT[$system]}")
    [ -n "$report" ] || break
    loss=$(echo "$report" | field "d['timed_out']/max(d['offered'],1)")
    offered_rate=$(echo "$report" | field "d['offered']/$STEP_SECONDS")
    log "$system rate $rate: offered $offered_rate/s, loss $loss"
    if python3 -c "import sys; sys.exit(0 if $loss <= 0.001 else 1)"; then best=$rate; else break; fi
  done
  echo $best
}

cpu_per_datagram() {
  local system=$1 before after report completed
  before=$(cpu_ticks "$system")
  report=$(bench "$CPU_RATE" "$CPU_SECONDS" "${PORT[$system]}")
  after=$(cpu_ticks "$system")
  completed=$(echo "$report" | field "d['completed']")
  # Each completed request is two datagrams forwarded (the request and its 200), each call
  # seven.
  python3 -c "print(($after-$before)/$(getconf CLK_TCK)/max($DATAGRAMS_PER*$completed,1)*1e6)"
}

latency() { bench "$2" 5 "${PORT[$1]}" | field "f\"{d['latency_us']['p50']} {d['latency_us']['p99']} {d['latency_us']['p999']}\""; }


declare -A MAX CPU LAT RES
start_responder
for round in $(seq "$ROUNDS"); do
  for system in $SYSTEMS; do
    log "round $round: $system"
    start_system $system
    MAX[$system,$round]=$(max_rate $system)
    CPU[$system,$round]=$(cpu_per_datagram $system)
    stop_system $system
  done
  half=$(( ${MAX[sipshard,$round]} / 2 ))
  [ "$half" -gt 0 ] || half=$((CPU_RATE / 2))
  for system in $SYSTEMS; do
    start_system $system --residence
    LAT[$system,$round]=$(latency $system $half)
    [ "$system" = bare ] && sleep 1.5
    stop_system $system
    RES[$system,$round]=$(residence_of "$WORK/$system.log")
    log "round $round: $system at $half req/s: latency ${LAT[$system,$round]}, residence ${RES[$system,$round]}"
  done
done

declare -A MED_MAX MED_CPU MED_P50 MED_P99 MED_P999 MED_R50 MED_R99 MED_R999
for system in $SYSTEMS; do
  maxes=(); cpus=(); p50=(); p99=(); p999=(); r50=(); r99=(); r999=()
  for round in $(seq "$ROUNDS"); do
    maxes+=("${MAX[$system,$round]}"); cpus+=("${CPU[$system,$round]}")
    read -r a b c <<<"${LAT[$system,$round]}"; p50+=("$a"); p99+=("$b"); p999+=("$c")
    read -r a b c <<<"${RES[$system,$round]}"; r50+=("$a"); r99+=("$b"); r999+=("$c")
  done
  MED_MAX[$system]=$(median "${maxes[@]}"); MED_CPU[$system]=$(median "${cpus[@]}")
  MED_P50[$system]=$(median "${p50[@]}"); MED_P99[$system]=$(median "${p99[@]}"); MED_P999[$system]=$(median "${p999[@]}")
  MED_R50[$system]=$(median "${r50[@]}"); MED_R99[$system]=$(median "${r99[@]}"); MED_R999[$system]=$(median "${r999[@]}")
  log "$system: max ${MAX_LIST:-} ${maxes[*]} | cpu ${cpus[*]}"
done

export SYSTEMS RATES BASE LOAD
MED="$(for system in $SYSTEMS; do echo "$system ${MED_MAX[$system]} ${MED_CPU[$system]} ${MED_P50[$system]} ${MED_P99[$system]} ${MED_P999[$system]} ${MED_R50[$system]} ${MED_R99[$system]} ${MED_R999[$system]}"; done)"
export MED
table=$(python3 - <<'EOF'
import os
names = {"bare": "bare recvmmsg/sendmmsg forwarder", "kam": "Kamailio 5.6 (dispatcher alg 0, forward(), 1 worker)",
         "base": f"sipshard balance at {os.environ.get('BASE')}, 1 worker", "sipshard": "sipshard balance, 1 worker",
         "rroff": "sipshard balance --record-route off, 1 worker",
         "kamtm": "Kamailio 5.6 (dispatcher alg 0, tm t_relay(), 1 worker)",
         "stateful": "sipshard balance --mode stateful, 1 worker"}
rows = {}
for line in os.environ["MED"].splitlines():
    key, mx, cpu, *rest = line.split()
    rows[key] = (float(mx), float(cpu), rest[:3], rest[3:] if not key.startswith("kam") else ["-"] * 3)
top = float(os.environ["RATES"].split()[-1])
ref = rows["bare"][1] if "bare" in rows else next(iter(rows.values()))[1]
unit = "calls/s" if os.environ.get("LOAD") == "calls" else "req/s"
print(f"| system | max {unit} at ≤0.1% loss | CPU µs per forwarded datagram | × bare | latency p50 / p99 / p99.9 (µs) at 50% of sipshard's max | residence on the forwarder p50 / p99 / p99.9 (µs, bucket edge), same run |")
print("| --- | --- | --- | --- | --- | --- |")
for key, (mx, cpu, lat, res) in rows.items():
    m = f"{mx:.0f}" + (" (≥: the highest rate tried)" if mx >= top else "")
    print(f"| {names[key]} | {m} | {cpu:.2f} | {cpu/ref:.2f} | {' / '.join(lat)} | {' / '.join(res)} |")
print()
if "kam" in rows and "sipshard" in rows:
    print(f"sipshard vs Kamailio: {rows['kam'][1]/rows['sipshard'][1]:.2f}× less CPU per datagram; max rate {rows['sipshard'][0]/max(rows['kam'][0],1):.2f}×.")
if "rroff" in rows and "sipshard" in rows:
    print(f"record-route on vs off: CPU per datagram {rows['sipshard'][1]/rows['rroff'][1]:.3f}×; max rate {rows['sipshard'][0]/max(rows['rroff'][0],1):.2f}×.")
if "kamtm" in rows and "stateful" in rows:
    print(f"stateful vs Kamailio tm: CPU per datagram {rows['stateful'][1]/rows['kamtm'][1]:.3f}×; max rate {rows['stateful'][0]/max(rows['kamtm'][0],1):.2f}×.")
if "stateful" in rows and "sipshard" in rows:
    print(f"stateful vs stateless sipshard: CPU per datagram {rows['stateful'][1]/rows['sipshard'][1]:.3f}×; max rate {rows['stateful'][0]/max(rows['sipshard'][0],1):.2f}×.")
if "base" in rows and "sipshard" in rows:
    print(f"sipshard vs the base commit: CPU per datagram {rows['sipshard'][1]/rows['base'][1]:.3f}×; max rate {rows['sipshard'][0]/max(rows['base'][0],1):.2f}×.")
EOF
)
echo
echo "compare.sh run of $(date -u +%Y-%m-%d) (commit $(git rev-parse --short HEAD), $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)); rounds: $ROUNDS (median quoted); load: $LOAD; rate steps: $RATES per s, ${STEP_SECONDS} s each; CPU at $CPU_RATE per s for ${CPU_SECONDS} s."
echo
echo "$table"
