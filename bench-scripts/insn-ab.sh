#!/usr/bin/env bash
# User-space instructions per forwarded request of the whole balancer, this tree against
# BASE (a commit), counted by callgrind: deterministic where CPU time on this shared VM is not.
# Each side runs `sipshard balance` (1 worker, probes off) under callgrind, pinned to core 1,
# in front of `sipshard responder` on core 0, while `sipshard bench` sends N and then 2N
# OPTIONS requests (each answered 200: two datagrams through the balancer); the difference
# of the two totals over N removes start-up (the Maglev table, the executor) and shutdown.
# Idle wake-ups (every 5 ms) add a little to both sides alike.
#   BASE=32d80f4 bench-scripts/insn-ab.sh          # N=10000, about 3 minutes
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
BASE=${BASE:?give BASE=COMMIT}
N=${N:-10000}
RATE=${RATE:-2000}
WORK=$(mktemp -d /tmp/sipshard-insn.XXXXXX)
trap '[ -d "$WORK/base" ] && git worktree remove --force "$WORK/base"; rm -rf "$WORK"' EXIT
log() { echo "[insn-ab] $*" >&2; }

command -v valgrind >/dev/null || { log "installing valgrind"; DEBIAN_FRONTEND=noninteractive apt-get install -y -qq valgrind >/dev/null; }
cargo build --release --bin sipshard >/dev/null 2>&1
SIPSHARD=$ROOT/target/release/sipshard
log "building $BASE"
git worktree add --detach "$WORK/base" "$BASE" >/dev/null 2>&1
(cd "$WORK/base" && CARGO_TARGET_DIR="$WORK/base-target" cargo build --release --bin sipshard >/dev/null 2>&1)
BASE_SIPSHARD=$WORK/base-target/release/sipshard

# total BINARY COUNT -> instructions callgrind counted in the balancer's whole run
total() {
  taskset -c 0 "$SIPSHARD" responder --listen 127.0.0.1:5990 --workers 1 2>/dev/null &
  local responder=$!
  taskset -c 1 valgrind --tool=callgrind --callgrind-out-file="$WORK/cg.out" "$1" balance \
    --listen 127.0.0.1:5970 --backend 127.0.0.1:5990 --workers 1 --secret insn \
    --probe-interval-ms 0 2>"$WORK/valgrind.log" &
  local balancer=$!
  sleep 6 # valgrind's start and the table build
  local completed
  completed=$(taskset -c 0 "$SIPSHARD" bench --target 127.0.0.1:5970 --mode messages \
    --method OPTIONS --rate "$RATE" --count "$2" --timeout 5 --json --quiet 2>/dev/null |
    python3 -c "import json,sys; print(json.load(sys.stdin)['completed'])")
  kill -INT $balancer; wait $balancer 2>/dev/null || true
  kill $responder; wait $responder 2>/dev/null || true
  [ "$completed" = "$2" ] || log "$1: only $completed of $2 completed"
  awk '/^summary:/ {print $2}' "$WORK/cg.out"
}

declare -A ONE TWO
for side in base this; do
  bin=$SIPSHARD; [ $side = base ] && bin=$BASE_SIPSHARD
  ONE[$side]=$(total "$bin" "$N")
  TWO[$side]=$(total "$bin" $((2 * N)))
  log "$side: $N requests ${ONE[$side]}, $((2 * N)) requests ${TWO[$side]}"
done
python3 - "$N" "${ONE[base]}" "${TWO[base]}" "${ONE[this]}" "${TWO[this]}" "$BASE" "$(git rev-parse --short HEAD)" <<'EOF'
import sys
n, b1, b2, t1, t2 = (int(x) for x in sys.argv[1:6])
base, this = sys.argv[6], sys.argv[7]
pb, pt = (b2 - b1) / n, (t2 - t1) / n
print(f"| build | instructions per request (2 datagrams) |")
print(f"| --- | --- |")
print(f"| {base} | {pb:.0f} |")
print(f"| {this} (this tree) | {pt:.0f} |")
print(f"\nthis / base: {pt / pb:.4f}")
EOF
