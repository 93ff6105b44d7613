#!/usr/bin/env bash
# Instructions per operation of bench-scripts/parse_loop.rs under callgrind: the difference
# between N and 2N iterations divided by N, so start-up costs cancel. Repeatable on a busy
# machine, unlike wall-clock timings.
#   bench-scripts/insn-count.sh [mode...]     (modes: invite ok200 insert_via forward)
set -euo pipefail
cd "$(dirname "$0")/.."
target=${CARGO_TARGET_DIR:-target}
cargo build --release --example parse_loop >/dev/null 2>&1
n=${N:-5000}
count() {
  valgrind --tool=callgrind --callgrind-out-file=/dev/null "$target/release/examples/parse_loop" "$1" "$2" 2>&1 >/dev/null |
    sed -n 's/.*Collected : \([0-9]*\).*/\1/p'
}
for mode in "${@:-invite ok200 insert_via forward}"; do
  for m in $mode; do
    a=$(count "$m" "$n"); b=$(count "$m" $((2 * n)))
    echo "$m $(( (b - a) / n )) instructions"
  done
done
