#!/usr/bin/env bash
# bench/failover.sh: failover of the array against keepalived/VRRP on the same
# lab (issue 5, item 9). Root.
#
# Owns: installing keepalived from Debian when missing, building pentaflow,
# one namespace lab (`pentaflow lab up --nodes 3 --webs 3`) for both series,
# keepalived (VRRPv3) and a small HTTP server in every node namespace, the
# kills, restarts and waits between them, and the report
# bench/out/failover.md (+ failover-raw-STAMP/: every round as a JSON line,
# configs and logs). Each round measures, from the client namespace, the time
# from the SIGKILL to the first answered new connection to the VIP (probes:
# a fresh connection + GET started every BENCH_FAILOVER_GAP_MS, each given
# BENCH_FAILOVER_PROBE_MS to connect), under a keep-alive load whose failed
# requests are counted by the node that served the connection
# (bench/failover_probe.py does the measuring).
#
#   pentaflow series: SIGKILL of the current scheduler's `pentaflow serve`
#     (the PID `lab kill` would signal, sent by the probe so the clock starts
#     at the signal); then `lab start` it, and wait until the array is
#     settled again (it rejoins as a standby: no preemption).
#   keepalived series, one per advert_int of BENCH_FAILOVER_ADVERTS: on each
#     node a keepalived (-P: VRRP only, state BACKUP + nopreempt, priorities
#     node1 200 > node2 150 > node3 100) holding its own VIP 10.77.1.(1+k) on
#     eth0, and an HTTP server answering on it. A kill is a crash of the
#     master: SIGKILL of its VRRP child, its keepalived parent and its HTTP
#     server at once. SIGKILL leaves the VIP configured on the dead master; it
#     is removed after the measurement, before keepalived restarts there.
#   The series alternate (pentaflow kill, keepalived kill per advert_int, ...)
#   with both running; BENCH_FAILOVER_ORDER=sequential runs all pentaflow
#   kills first, then stops pentaflow on every node (`lab kill`) and runs
#   the keepalived kills.
#
# Must not: send traffic outside the lab's namespaces, touch a lab it did not
# make, signal a PID it did not start or check (the probe refuses a PID whose
# command line is not what it expects), or leave a process or a lab behind:
# every exit path stops its processes and tears its lab down by prefix.
#
# Usage: bench/failover.sh [--quick]
#
# Settings (environment):
#   BENCH_FAILOVER_KILLS=20         kills per series (--quick / BENCH_QUICK=1: 3)
#   BENCH_FAILOVER_ADVERTS="0.01 0.1 1"  keepalived advert_int (s) per series;
#                                   0.01 is the smallest keepalived accepts
#   BENCH_FAILOVER_SERIES="pentaflow keepalived"
#   BENCH_FAILOVER_ORDER=alternate  or sequential (see above)
#   BENCH_FAILOVER_CONNS=100        keep-alive connections of the load
#   BENCH_FAILOVER_PACE=0.02        s between two requests of one connection
#   BENCH_FAILOVER_PROBE_MS=50      connect timeout of one probe
#   BENCH_FAILOVER_GAP_MS=10        a new probe starts this often
#   BENCH_QUIET_WAIT=0              before each round, wait up to this many s
#                                   for the machine to go quiet (shared machine)
#   PENTAFLOW_BIN=path              use this binary (default: cargo build
#                                   --release -p pentaflow, then target/release)
#   BENCH_OUT=bench/out   BENCH_KEEP_WORK=1 keep the temporary work directory
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(dirname "$HERE")
# shellcheck source-path=SCRIPTDIR source=common.sh
source "$HERE/common.sh"
export PATH="$PATH:/usr/sbin:/sbin"

QUICK=${BENCH_QUICK:-0}
case ${1:-} in
--quick) QUICK=1 ;;
"") ;;
-h | --help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
*) die "unknown argument $1 (usage: bench/failover.sh [--quick])" ;;
esac
if [[ $QUICK == 1 ]]; then quick_kills=3; else quick_kills=20; fi
KILLS=${BENCH_FAILOVER_KILLS:-$quick_kills}
ADVERTS=${BENCH_FAILOVER_ADVERTS:-0.01 0.1 1}
SERIES=${BENCH_FAILOVER_SERIES:-pentaflow keepalived}
ORDER=${BENCH_FAILOVER_ORDER:-alternate}
CONNS=${BENCH_FAILOVER_CONNS:-100}
PACE=${BENCH_FAILOVER_PACE:-0.02}
PROBE_MS=${BENCH_FAILOVER_PROBE_MS:-50}
GAP_MS=${BENCH_FAILOVER_GAP_MS:-10}
OUT_DIR=${BENCH_OUT:-$HERE/out}
QUIET_WAIT=${BENCH_QUIET_WAIT:-0}
# "Quiet" for wait_quiet (common.sh): the machine uses less than this share of a core.
QUIET_PCT=25
CLK_TCK=$(getconf CLK_TCK)
PROBE=$HERE/failover_probe.py
NODES=3
WEBS=3
# The lab's address plan (crates/lab): nodes from 10.77.1.11, web servers from
# .101, the router .1, the array's VIP .10; keepalived's VIPs take .2 to .9.
KA_NET=10.77.1
KA_PRIO=(0 200 150 100)
LAB_STATE_DIR=/run/pentaflow-lab
# The lab's VIP serves on port 80; so do keepalived's.
PORT=80
# Probing window of a pentaflow kill (s); keepalived's grows with advert_int.
PF_WINDOW=3

declare -A LIVE=()    # PID -> name of every process started here and not yet reaped
declare -A KA_PID=()  # "k,i" -> keepalived parent PID of series k on node i
declare -A KA_HTTP=() # "k,i" -> HTTP server PID of series k on node i
PREFIX="" LAB_DIR="" WORK="" MADE_POLICY_RC=0 RAW=""

cleanup() {
  local pid i
  if ((${#LIVE[@]})); then
    # All at once (stop_pid one by one would wait for each keepalived's shutdown in turn).
    log "stopping ${#LIVE[@]} processes (keepalived, HTTP servers)"
    for pid in "${!LIVE[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
    for ((i = 0; i < 50; i++)); do
      for pid in "${!LIVE[@]}"; do alive "$pid" && break; done
      alive "$pid" || break
      sleep 0.1
    done
    for pid in "${!LIVE[@]}"; do stop_pid "$pid"; done
  fi
  if [[ -n $PREFIX ]]; then
    save_logs
    log "tearing down lab $PREFIX"
    # The lab's teardown also ends whatever still runs in its namespaces
    # (keepalived's VRRP children, whose parents were stopped above).
    "$PF_BIN" lab down "$PREFIX" >&2 || log "lab down $PREFIX failed"
    PREFIX=""
  fi
  if [[ $MADE_POLICY_RC == 1 ]]; then rm -f /usr/sbin/policy-rc.d; fi
  if [[ -n $WORK && ${BENCH_KEEP_WORK:-0} != 1 ]]; then rm -rf "$WORK"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

[[ $(id -u) == 0 ]] || die "run as root (network namespaces, AF_PACKET, keepalived)"
[[ $ORDER == alternate || $ORDER == sequential ]] || die "BENCH_FAILOVER_ORDER: alternate or sequential"
# keepalived ignores an advert_int out of range (and runs at 1 s): refuse it here.
for advert in $ADVERTS; do
  awk -v a="$advert" 'BEGIN {exit !(a + 0 >= 0.01 && a + 0 <= 255)}' ||
    die "BENCH_FAILOVER_ADVERTS: $advert is outside keepalived's 0.01..255 s"
done
(($(wc -w <<<"$ADVERTS") <= 8)) || die "BENCH_FAILOVER_ADVERTS: at most 8 (VIPs 10.77.1.2 to .9)"
has_series() { [[ " $SERIES " == *" $1 "* ]]; }
# The lab's own tools (ip, ss, nft, python3), then keepalived.
sh "$ROOT/scripts/install-lab-deps.sh" >&2 || die "scripts/install-lab-deps.sh failed"
if has_series keepalived; then ensure_packages keepalived; fi

# --- pentaflow: binary and lab ------------------------------------------------

build_pentaflow() {
  if [[ -n ${PENTAFLOW_BIN:-} ]]; then
    PF_BIN=$PENTAFLOW_BIN
  else
    log "building pentaflow: cargo build --release -p pentaflow"
    (cd "$ROOT" && cargo build --release -p pentaflow >&2) || die "the release build failed (PENTAFLOW_BIN=path to use another binary)"
    PF_BIN=${CARGO_TARGET_DIR:-$ROOT/target}/release/pentaflow
  fi
  [[ -x $PF_BIN ]] || die "no pentaflow binary at $PF_BIN"
  PF_VERSION="$("$PF_BIN" --version 2>/dev/null | head -1) (tree $(git -C "$ROOT" describe --always --dirty 2>/dev/null || echo '?'), binary built $(date -u -r "$PF_BIN" +%H:%M:%SZ))"
}

lab_up() {
  "$PF_BIN" lab up --nodes "$NODES" --webs "$WEBS" --clients 1 >"$WORK/up.txt" 2>&1 || {
    cat "$WORK/up.txt" >&2; die "pentaflow lab up failed"; }
  PREFIX=$(sed -n 's/^  down: *pentaflow lab down \(pf[0-9a-f]*\)$/\1/p' "$WORK/up.txt")
  [[ -n $PREFIX ]] || { cat "$WORK/up.txt" >&2; die "no lab prefix in the output of lab up"; }
  VIP=$(sed -n 's/^lab [^ ]* (VIP \([0-9.]*\))$/\1/p' "$WORK/up.txt" | head -1)
  LAB_DIR=$LAB_STATE_DIR/$PREFIX
  # The cluster timers the lab gave this binary's nodes (LAB_CLUSTER in lab.rs).
  HEARTBEAT=$(sed -n 's/^heartbeat = "\(.*\)"$/\1/p' "$LAB_DIR/array.toml")
  DEAD_AFTER=$(sed -n 's/^dead_after = "\(.*\)"$/\1/p' "$LAB_DIR/array.toml")
  log "lab $PREFIX up: VIP $VIP, heartbeat ${HEARTBEAT:-default}, dead_after ${DEAD_AFTER:-default}"
}

ns() { echo "$PREFIX-$1"; }

# pf_state: sets PF_SCHED, PF_SCHED_PID and PF_SETTLED from `lab status`;
# returns 1 when there is no single scheduler.
pf_state() {
  local out
  "$PF_BIN" lab status "$PREFIX" >"$WORK/status.txt" 2>&1 || return 1
  out=$(python3 "$PROBE" lab-status --nodes "$NODES" <"$WORK/status.txt" 2>/dev/null) || return 1
  read -r PF_SCHED PF_SCHED_PID PF_SETTLED <<<"$out"
}

# pf_wait_settled: every node up, one scheduler every node names (20 s).
pf_wait_settled() {
  local i
  for ((i = 0; i < 100; i++)); do
    if pf_state && [[ $PF_SETTLED == 1 ]]; then return 0; fi
    sleep 0.2
  done
  cat "$WORK/status.txt" >&2
  die "the array did not settle within 20 s"
}

# round_args: the load and probe settings both series share.
round_args() {
  ROUND_ARGS=(--conns "$CONNS" --pace "$PACE" --probe-connect "$(ms_to_s "$PROBE_MS")"
    --probe-gap "$(ms_to_s "$GAP_MS")")
}
ms_to_s() { awk -v ms="$1" 'BEGIN {printf "%.3f", ms / 1000}'; }

# say_round JSON: one log line of a round's result.
say_round() {
  python3 -c 'import json, sys
r = json.loads(sys.argv[1])
ev = r.get("events_ms") or {}
extra = "".join(" %s %s" % (k, v) for k, v in ev.items() if v is not None)
print("%s round %s: %s killed, %s took over, answered again after %s ms; lost %d on the killed node, %d on survivors%s" % (
    r["series"], r["round"], r["victim"], r.get("new_master"), r["failover_ms"],
    r["lost"]["victim"], r["lost"]["survivors"] + r["lost"]["unattributed"],
    (" (ms:" + extra + ")") if extra else ""))' "$1" >&2
}

pf_round() {
  local r=$1 json i args=()
  pf_wait_settled
  for ((i = 1; i <= NODES; i++)); do
    args+=(--node "node$i=$(ns "node$i")" --pf-log "node$i=$LAB_DIR/node$i.log")
  done
  round_args
  run_round pentaflow "$r" --series pentaflow --round "$r" \
    --vip "$VIP" --port "$PORT" --victim "$PF_SCHED" --kill "$PF_SCHED_PID:pentaflow" \
    --attribute ss "${args[@]}" "${ROUND_ARGS[@]}" --window "$PF_WINDOW" || return 1
  "$PF_BIN" lab start --lab "$PREFIX" "$PF_SCHED" >/dev/null || die "lab start $PF_SCHED failed"
  pf_wait_settled
}

# run_round SERIES R ARGS...: one `failover_probe.py round` in the client
# namespace, its JSON line appended to the results. Returns 1 when the load
# broke before the kill (nothing was killed: the caller tries again), dies on
# any other failure.
run_round() {
  local series=$1 r=$2 json rc=0
  shift 2
  json=$(ip netns exec "$(ns client1)" python3 "$PROBE" round "$@" 2>"$WORK/round.err") || rc=$?
  if ((rc != 0 && rc != 3)) || [[ -z $json ]]; then
    cat "$WORK/round.err" >&2
    die "$series round $r failed (exit $rc)"
  fi
  echo "$json" >>"$RAW/results.jsonl"
  if ((rc == 3)); then
    log "$series round $r aborted before the kill: the load broke on its own (recorded; retrying)"
    return 1
  fi
  say_round "$json"
}

# with_retries FUNCTION ARGS...: FUNCTION until it returns 0, at most 3 times.
with_retries() {
  local try
  for ((try = 1; try <= 3; try++)); do
    "$@" && return 0
    sleep 1
  done
  die "$* aborted 3 times in a row"
}

# --- keepalived ----------------------------------------------------------------

ka_vip() { echo "$KA_NET.$((1 + $1))"; }
ka_file() { echo "$WORK/ka/k$1-node$2.$3"; }

# ka_conf K I ADVERT: keepalived.conf of series K on node I.
ka_conf() {
  local k=$1 i=$2 advert=$3
  cat >"$(ka_file "$k" "$i" conf)" <<EOF
# bench/failover.sh: keepalived series $k (advert_int $advert) on node$i.
global_defs {
  router_id node$i-k$k
  vrrp_version 3
}
vrrp_instance k$k {
  state BACKUP
  nopreempt
  interface eth0
  virtual_router_id $((50 + k))
  priority ${KA_PRIO[$i]}
  advert_int $advert
  virtual_ipaddress {
    $(ka_vip "$k")/32 dev eth0
  }
}
EOF
}

# ka_start K I: the HTTP server and keepalived of series K on node I, once the
# server listens and keepalived's VRRP child runs (5 s each).
ka_start() {
  local k=$1 i=$2 vip netns n
  vip=$(ka_vip "$k") netns=$(ns "node$i")
  start_bg "k$k-http-node$i" ip netns exec "$netns" python3 "$PROBE" serve "node$i" "$vip" "$PORT"
  KA_HTTP[$k,$i]=$STARTED_PID
  rm -f "$(ka_file "$k" "$i" pid)" "$(ka_file "$k" "$i" vpid)"
  start_bg "k$k-keepalived-node$i" ip netns exec "$netns" keepalived -n -P -l -D -G -R \
    -f "$(ka_file "$k" "$i" conf)" -p "$(ka_file "$k" "$i" pid)" -r "$(ka_file "$k" "$i" vpid)"
  KA_PID[$k,$i]=$STARTED_PID
  for ((n = 0; n < 50; n++)); do
    if ip netns exec "$netns" ss -Htln "( sport = :$PORT )" | grep -F "$vip:$PORT" >/dev/null &&
      [[ -s $(ka_file "$k" "$i" vpid) ]] && alive "$(cat "$(ka_file "$k" "$i" vpid)")"; then
      return 0
    fi
    alive "${KA_PID[$k,$i]}" || break
    sleep 0.1
  done
  tail -n 20 "$WORK/k$k-keepalived-node$i.log" "$WORK/k$k-http-node$i.log" >&2 || true
  die "keepalived series $k did not start on node$i"
}

# ka_holders K: the nodes whose eth0 holds series K's VIP.
ka_holders() {
  local k=$1 i vip
  vip=$(ka_vip "$k")
  for ((i = 1; i <= NODES; i++)); do
    if ip -n "$(ns "node$i")" -4 -o addr show dev eth0 | grep -F " $vip/32 " >/dev/null; then
      echo "$i"
    fi
  done
}

# ka_wait_master K: exactly one node holds the VIP (10 s); its number in KA_MASTER.
ka_wait_master() {
  local k=$1 n holders
  for ((n = 0; n < 100; n++)); do
    mapfile -t holders < <(ka_holders "$k")
    if ((${#holders[@]} == 1)); then KA_MASTER=${holders[0]}; return 0; fi
    sleep 0.1
  done
  die "keepalived series $k: VIP held by ${#holders[@]} nodes after 10 s"
}

ka_up() {
  local k=0 i advert
  mkdir -p "$WORK/ka"
  for advert in $ADVERTS; do
    k=$((k + 1))
    for ((i = 1; i <= NODES; i++)); do ka_conf "$k" "$i" "$advert"; ka_start "$k" "$i"; done
  done
  k=0
  for advert in $ADVERTS; do
    k=$((k + 1))
    ka_wait_master "$k"
    log "keepalived series $k (advert_int $advert): master node$KA_MASTER, VIP $(ka_vip "$k")"
  done
}

# ka_window ADVERT: probing window (s): the master-down interval is at most 4 x
# advert_int; 1.5 s on top for ARP and the probes.
ka_window() { awk -v a="$1" 'BEGIN {w = 4 * a + 1.5; printf "%.2f", w < 3 ? 3 : w}'; }

ka_round() {
  local k=$1 advert=$2 r=$3 i n pid vpid json before
  ka_wait_master "$k"
  i=$KA_MASTER
  vpid=$(cat "$(ka_file "$k" "$i" vpid)")
  round_args
  # Out of the job table: bash would print "Killed" for each when it reaps them.
  disown "${KA_PID[$k,$i]}" "${KA_HTTP[$k,$i]}" 2>/dev/null || true
  run_round "keepalived-$advert" "$r" --series "keepalived-$advert" \
    --round "$r" --vip "$(ka_vip "$k")" --port "$PORT" --victim "node$i" \
    --kill "$vpid:keepalived" --kill "${KA_PID[$k,$i]}:keepalived" \
    --kill "${KA_HTTP[$k,$i]}:failover_probe.py" --attribute body "${ROUND_ARGS[@]}" \
    --window "$(ka_window "$advert")" || return 1
  # Both were started here; disowned, bash reaps them by itself.
  for pid in "${KA_PID[$k,$i]}" "${KA_HTTP[$k,$i]}"; do
    for ((n = 0; n < 50; n++)); do alive "$pid" || break; sleep 0.02; done
  done
  unset "LIVE[${KA_PID[$k,$i]}]" "LIVE[${KA_HTTP[$k,$i]}]"
  # A SIGKILLed keepalived cannot remove its VIP: the dead master still holds it.
  ip -n "$(ns "node$i")" addr del "$(ka_vip "$k")/32" dev eth0 2>/dev/null || true
  before=$(grep -c 'Entering BACKUP STATE' "$WORK/k$k-keepalived-node$i.log" || true)
  ka_start "$k" "$i"
  for ((n = 0; n < 50; n++)); do
    (($(grep -c 'Entering BACKUP STATE' "$WORK/k$k-keepalived-node$i.log" || true) > before)) && break
    sleep 0.1
  done
  ka_wait_master "$k"
  [[ $KA_MASTER != "$i" ]] || die "keepalived series $k: the restarted node$i took the VIP back"
}

# --- the run ---------------------------------------------------------------------

# save_logs: the nodes' logs, the lab's config and keepalived's configs and logs
# into the raw directory (also when a run dies half-way: cleanup calls it).
save_logs() {
  [[ -n $RAW && -d $RAW ]] || return 0
  cp "$LAB_DIR"/node*.log "$LAB_DIR/array.toml" "$RAW/" 2>/dev/null || true
  cp "$WORK"/ka/*.conf "$WORK"/k*-keepalived-node*.log "$RAW/" 2>/dev/null || true
}

# shellcheck disable=SC2016  # the backquotes are markdown, not command substitution
write_settings() {
  local k=0 advert
  {
    printf 'date\t%s\n' "$(date -u '+%Y-%m-%d %H:%M UTC')"
    printf 'line\tcommand\t`%s`\n' "${COMMAND_LINE}"
    printf 'line\tmachine\t%s; load average before %s, after %s\n' "$(machine_line)" \
      "$LOAD_BEFORE" "$(cut -d' ' -f1-3 /proc/loadavg)"
    printf 'line\tlab\t`pentaflow lab up --nodes %s --webs %s --clients 1` (prefix %s): the client behind the router, nodes and web servers on one bridge\n' \
      "$NODES" "$WEBS" "$PREFIX"
    printf 'line\tpentaflow\t%s; lab cluster timers heartbeat = %s, dead_after = %s (from the generated array.toml)\n' \
      "$PF_VERSION" "${HEARTBEAT:-default}" "${DEAD_AFTER:-default}"
    if has_series keepalived; then
      printf 'line\tkeepalived\t%s, `keepalived -n -P -l -D -G -R` in each node namespace, VRRPv3, state BACKUP + nopreempt, priorities node1 200, node2 150, node3 100, VIP /32 on eth0, default garp settings; the HTTP server is bench/failover_probe.py serve on the node itself\n' \
        "$(keepalived --version 2>&1 | head -1)"
    fi
    printf 'line\tkill\tpentaflow: SIGKILL of the scheduler'"'"'s `pentaflow serve`, then `lab start`; keepalived: SIGKILL of the master'"'"'s VRRP child, keepalived parent and HTTP server together (its VIP, left configured by the SIGKILL, removed afterwards), then restarted; order %s\n' "$ORDER"
    printf 'line\tprobe\ta fresh TCP connection + GET started every %s ms from the kill, %s ms to connect and 500 ms to answer, in the client namespace; failover = kill to the first answer received\n' \
      "$GAP_MS" "$PROBE_MS"
    printf 'line\tload\t%s keep-alive connections (10 threads), one request per connection every %s s at most, 5 s request timeout, running 1.5 s before each kill and 0.5 s after the probes; a failed connection is not reused; pentaflow connections are attributed to nodes by `ss` in the node namespaces, keepalived ones by the answering server'"'"'s name\n' \
      "$CONNS" "$PACE"
    printf 'logs\tpentaflow\tnode\n'
    printf 'label\tpentaflow\tpentaflow (heartbeat %s, dead_after %s)\n' "${HEARTBEAT:-?}" "${DEAD_AFTER:-?}"
    for advert in $ADVERTS; do
      k=$((k + 1))
      printf 'label\tkeepalived-%s\tkeepalived VRRPv3, advert_int %s s\n' "$advert" "$advert"
      printf 'logs\tkeepalived-%s\tk%s-keepalived-node\n' "$advert" "$k"
    done
  } >"$RAW/settings.tsv"
}

main() {
  local r k advert i stamp
  local var
  COMMAND_LINE=""
  # The settings given in the environment, then the command.
  for var in $(compgen -v BENCH_) PENTAFLOW_BIN; do
    if [[ -n ${!var:-} ]]; then COMMAND_LINE+="$var=${!var} "; fi
  done
  COMMAND_LINE+="bench/failover.sh"
  if [[ ${1:-} == --quick ]]; then COMMAND_LINE+=" --quick"; fi
  WORK=$(mktemp -d /tmp/pentaflow-failover.XXXXXX)
  stamp=$(date -u +%Y-%m-%d-%H%M%S)
  RAW=$OUT_DIR/failover-raw-$stamp
  mkdir -p "$RAW"
  LOAD_BEFORE=$(cut -d' ' -f1-3 /proc/loadavg)
  build_pentaflow
  lab_up
  if has_series keepalived && [[ $ORDER == alternate ]]; then ka_up; fi
  log "$KILLS kills per series; series: $SERIES; keepalived advert_int: $ADVERTS; order $ORDER"
  for ((r = 1; r <= KILLS; r++)); do
    if ((QUIET_WAIT > 0)); then wait_quiet; fi
    if has_series pentaflow; then with_retries pf_round "$r"; fi
    if [[ $ORDER == alternate ]] && has_series keepalived; then
      k=0
      for advert in $ADVERTS; do k=$((k + 1)); with_retries ka_round "$k" "$advert" "$r"; done
    fi
  done
  if [[ $ORDER == sequential ]] && has_series keepalived; then
    # pentaflow stops on every node, the scheduler last (no election in between).
    pf_wait_settled
    for ((i = 1; i <= NODES; i++)); do
      if [[ node$i != "$PF_SCHED" ]]; then "$PF_BIN" lab kill --lab "$PREFIX" "node$i" >/dev/null; fi
    done
    "$PF_BIN" lab kill --lab "$PREFIX" "$PF_SCHED" >/dev/null
    ka_up
    for ((r = 1; r <= KILLS; r++)); do
      if ((QUIET_WAIT > 0)); then wait_quiet; fi
      k=0
      for advert in $ADVERTS; do k=$((k + 1)); with_retries ka_round "$k" "$advert" "$r"; done
    done
  fi
  write_settings
  save_logs
  python3 "$PROBE" report "$RAW/results.jsonl" "$RAW/settings.tsv" --logs "$RAW" >"$RAW/failover.md"
  cp "$RAW/failover.md" "$OUT_DIR/failover.md"
  cat "$OUT_DIR/failover.md"
  log "report: $OUT_DIR/failover.md (raw: $RAW)"
}

main "$@"
