#!/usr/bin/env bash
# The kernel-side cost of steering a public address's datagrams over the shards, side by
# side in one run, alternating: no program (the kernel's 4-tuple hash: --steering flow),
# the classic BPF random program (--steering random) and the eBPF Call-ID program
# (--steering callid). bench-scripts/steer_bench.rs sends COUNT datagrams from one socket
# pinned to core 0 to a reuseport group of 2 sockets busy-polled from core 1; on loopback
# the receive path, the steering program included, runs on the sending core, so the cost
# is core 0's busy time per datagram. Payloads: an 828-byte INVITE with its Call-ID at
# byte 389 (invite), a 1572-byte one with it at byte 1133 (late), one without (nocallid).
# ROUNDS rounds, medians. Needs root (bpf).
#   bench-scripts/steering.sh              # COUNT=1000000 ROUNDS=3, about 2 minutes
set -euo pipefail
cd "$(dirname "$0")/.."
COUNT=${COUNT:-1000000}
ROUNDS=${ROUNDS:-3}
cargo build --release --example steer_bench >/dev/null 2>&1
BENCH=target/release/examples/steer_bench
declare -A NS
for round in $(seq "$ROUNDS"); do
  for payload in invite late nocallid; do
    for mode in none random callid; do
      line=$("$BENCH" $mode $payload "$COUNT" 2)
      ns=$(echo "$line" | sed -E 's/.*CPU0 ([0-9]+) ns\/dgram.*/\1/')
      NS[$payload,$mode]="${NS[$payload,$mode]:-} $ns"
      echo "[steering] round $round: $line" >&2
    done
  done
done
median() { printf '%s\n' "$@" | sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
echo "steering.sh run of $(date -u +%Y-%m-%d) (commit $(git rev-parse --short HEAD)); $COUNT datagrams per run, $ROUNDS rounds, medians"
echo
echo "| payload | no program (flow) | random | Call-ID | Call-ID − random |"
echo "| --- | --- | --- | --- | --- |"
for payload in invite late nocallid; do
  # shellcheck disable=SC2086 # lists of numbers
  n=$(median ${NS[$payload,none]}); r=$(median ${NS[$payload,random]}); c=$(median ${NS[$payload,callid]})
  echo "| $payload | $n ns (${NS[$payload,none]# }) | $r ns (${NS[$payload,random]# }) | $c ns (${NS[$payload,callid]# }) | $((c - r)) ns |"
done
