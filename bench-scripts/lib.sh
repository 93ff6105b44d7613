# Shared by the comparison scripts: the Kamailio configuration they run.
# kamailio_config FILE LISTEN_PORT BACKEND_ADDR DISPATCHER_LIST [tm]
#   Kamailio 5.6 as a balancer: dispatcher algorithm 0 (hash over Call-ID), one worker, up
#   to 4 MiB of receive buffer; stateless forward(), or with `tm` the tm module's
#   t_relay() (a transaction per request, retransmissions absorbed: the stateful peer).
kamailio_config() {
  local cfg=$1 port=$2 backend=$3 list=$4 mode=${5:-stateless} modules relay tm_module=""
  modules=$(dirname "$(find /usr/lib -name dispatcher.so -path '*kamailio*' | head -1)")
  relay="forward();"
  if [ "$mode" = tm ]; then relay="t_relay();"; tm_module='loadmodule "tm.so"'; fi
  echo "1 sip:$backend" >"$list"
  cat >"$cfg" <<CFG
#!KAMAILIO
debug=0
log_stderror=yes
children=1
maxbuffer=4194304
listen=udp:127.0.0.1:$port
mpath="$modules/"
loadmodule "sl.so"
$tm_module
loadmodule "dispatcher.so"
modparam("dispatcher", "list_file", "$list")
request_route {
    if (!ds_select_dst("1", "0")) {
        sl_send_reply("503", "No backend");
        exit;
    }
    $relay
    exit;
}
CFG
}

# median N... : the median of the numbers given (the middle one, or the lower middle).
median() { printf '%s\n' "$@" | sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }

# field EXPR : evaluates the Python expression EXPR with d = the JSON document on stdin.
field() { python3 -c "import json,sys; d=json.load(sys.stdin); print($1)"; }

# proc_ticks PID : user + system CPU of a process so far, in clock ticks (getconf CLK_TCK);
# fields 14 and 15 of /proc/PID/stat, counted after the command name in parentheses.
proc_ticks() { awk '{sub(/.*\) /, ""); print $12 + $13}' "/proc/$1/stat"; }

# residence_of LOG : "p50 p99 p999" (µs, upper bucket edges) from the last residence summary
# line in LOG (sipshard prints one when it stops, bare_forwarder --residence every second);
# "- - -" when there is none.
residence_of() {
  python3 - "$1" <<'PY'
import re, sys
lines = [l for l in open(sys.argv[1], errors="replace") if "residence over" in l]
m = re.search(r"p50 <(\d+)us p99 <(\d+)us p99\.9 <(\d+)us", lines[-1]) if lines else None
print(" ".join(m.groups()) if m else "- - -")
PY
}

# stamp_at_socket / unstamp: on loopback the kernel stamps a datagram when the sender's core
# queues it (net.core.netdev_tstamp_prequeue=1, the default, right for a NIC), so its wait
# behind the generator's own work would count as residence; stamp_at_socket sets the sysctl
# to 0 (stamped when delivered toward the forwarder's socket) and remembers the old value,
# which unstamp restores (call it from the script's EXIT trap).
stamp_at_socket() {
  PREQUEUE=$(sysctl -n net.core.netdev_tstamp_prequeue)
  sysctl -qw net.core.netdev_tstamp_prequeue=0 || true
}
unstamp() { [ -z "${PREQUEUE:-}" ] || sysctl -qw net.core.netdev_tstamp_prequeue="$PREQUEUE" || true; }
