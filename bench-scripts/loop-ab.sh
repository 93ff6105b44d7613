#!/usr/bin/env bash
# Wall-clock A/B of the wire layer without criterion: builds bench-scripts/parse_loop.rs at
# OLD_COMMIT (in a git worktree, its own target dir) and in the working tree, then runs the
# two alternately, ROUNDS times per mode, each run N operations in 20 timed blocks. Prints
# every run's fastest and median block (ns per operation) and, per build, the median of
# the runs' fastest blocks. Quicker than wire-ab.sh; the fastest block is the figure least
# disturbed by a noisy VM.
#   bench-scripts/loop-ab.sh OLD_COMMIT [mode...]   (modes: invite ok200 insert_via forward)
set -euo pipefail
cd "$(dirname "$0")/.."
old=${1:?usage: loop-ab.sh OLD_COMMIT [mode...]}
shift
n=${N:-1000000}
rounds=${ROUNDS:-5}
new_target=${CARGO_TARGET_DIR:-target}
old_tree=${OLD_TREE:-/tmp/sipshard-ab-$old}
old_target=${OLD_TARGET:-/tmp/sipshard-ab-target}
[ -d "$old_tree" ] || git worktree add -f --detach "$old_tree" "$old" >/dev/null
# An old tree whose driver predates the `time` argument and the batch modes gets this
# tree's driver, which then must compile against the old library; where the API differs,
# prepare OLD_TREE by hand (docs/benchmarks.md, "An old tree for loop-ab.sh", shows how).
if ! grep -q insert_via_batch "$old_tree/bench-scripts/parse_loop.rs"; then
  cp bench-scripts/parse_loop.rs bench-scripts/wire_ops.rs "$old_tree/bench-scripts/"
fi
(cd "$old_tree" && CARGO_TARGET_DIR=$old_target cargo build --release --example parse_loop 2>&1 | tail -3)
cargo build --release --example parse_loop 2>&1 | tail -1
for mode in "${@:-invite insert_via forward}"; do
  for m in $mode; do
    for _ in $(seq "$rounds"); do
      for which in old new; do
        bin=$new_target/release/examples/parse_loop
        [ "$which" = old ] && bin=$old_target/release/examples/parse_loop
        echo "$which $("$bin" "$m" "$n" time)"
      done
    done
  done
done | tee /dev/stderr | awk '{k=$1" "$2; v[k]=v[k]" "$4} END {for (k in v) print k, v[k]}' |
  while read -r which m mins; do
    med=$(printf '%s\n' $mins | sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}')
    echo "$which $m: median of the fastest blocks $med ns"
  done | sort -k2,2 -k1,1r
