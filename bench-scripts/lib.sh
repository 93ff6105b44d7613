# Shared by the comparison scripts: the Kamailio configuration they run.
# kamailio_config FILE LISTEN_PORT BACKEND_ADDR DISPATCHER_LIST
#   Kamailio 5.6 as a stateless balancer: dispatcher algorithm 0 (hash over Call-ID),
#   forward(), one worker, up to 4 MiB of receive buffer.
kamailio_config() {
  local cfg=$1 port=$2 backend=$3 list=$4 modules
  modules=$(dirname "$(find /usr/lib -name dispatcher.so -path '*kamailio*' | head -1)")
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
loadmodule "dispatcher.so"
modparam("dispatcher", "list_file", "$list")
request_route {
    if (!ds_select_dst("1", "0")) {
        sl_send_reply("503", "No backend");
        exit;
    }
    forward();
    exit;
}
CFG
}
