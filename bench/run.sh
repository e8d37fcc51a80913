#!/usr/bin/env bash
# bench/run.sh: pentaflow, HAProxy and nginx side by side as reverse proxies.
#
# Owns: installing nginx/haproxy/wrk from Debian when missing, building the
# pentaflow release binary, starting one shared nginx back-end and the three
# proxies on free loopback ports, alternated wrk runs (medians) in each
# scenario, the idle connection memory test (bench/idle_conns.py), and the
# report in bench/out/.
#
# Scenarios (BENCH_SCENARIOS, any of, in this order by default):
#   base   600 B responses, 50 connections, 1 worker each, pinned (the headline)
#   16k    16 KiB responses          256k  256 KiB responses
#   c1000  1,000 concurrent client connections
#   w2     2 workers/threads per proxy on both cores (nothing pinned; the
#          back-end has 2 workers and wrk 2 threads): the scaling
#   log    the access log on, to a file, in every proxy (pentaflow's cost of
#          logging, next to nginx's and HAProxy's)
# Must not: send traffic anywhere but 127.0.0.1, leave a process behind (every
# PID it starts is killed on exit), or touch any file outside its temporary
# work directory and bench/out/ (besides the apt install).
#
# Usage: bench/run.sh [--all]   (--all: then bench/tls.sh, cdn.sh, l4.sh and failover.sh)
#
# Settings (environment):
#   BENCH_RUNS=5          rounds; each round runs every target once, alternated
#   BENCH_DURATION=10s    wrk duration per run       BENCH_CONNS=50  wrk connections
#   BENCH_WRK_THREADS=1   wrk threads                BENCH_WARMUP=2s unmeasured run first
#   BENCH_IDLE_CONNS=10000 idle client connections   BENCH_IDLE_MODE=request|connect
#   BENCH_POLICY=round_robin|least_conn              BENCH_PIN=1 (proxy on CPU 1,
#                                                    back-end and wrk on CPU 0)
#   BENCH_PROXIES="pentaflow haproxy nginx"          BENCH_QUICK=1 smoke run
#   BENCH_SCENARIOS="base 16k 256k c1000 w2 log"     BENCH_IDLE=1 (0: no memory test)
#   BENCH_QUIET_WAIT=0    before each run, wait up to this many seconds for
#                         other processes to go quiet (on a shared machine)
#   BENCH_MAX_ROUNDS=RUNS add rounds, up to this many, until RUNS are clean
#                         (no run of the round disturbed by other processes)
#   BENCH_SYSCALLS=0      1: after a scenario's rounds, one more run per proxy
#                         under `perf stat -e 'syscalls:sys_enter_*'`: system
#                         calls (and context switches) per request, by name
#   PENTAFLOW_BIN=path    use this binary instead of `cargo build --release`
#   BENCH_OUT=bench/out   BENCH_KEEP_WORK=1 keep the temporary work directory
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source-path=SCRIPTDIR source=common.sh
source "$HERE/common.sh"
ROOT=$(dirname "$HERE")
export PATH="$PATH:/usr/sbin:/sbin"

QUICK=${BENCH_QUICK:-0}
if [[ $QUICK == 1 ]]; then quick_runs=1 quick_dur=2s quick_idle=1000 quick_warm=1s
else quick_runs=5 quick_dur=10s quick_idle=10000 quick_warm=2s; fi
RUNS=${BENCH_RUNS:-$quick_runs}
DURATION=${BENCH_DURATION:-$quick_dur}
WARMUP=${BENCH_WARMUP:-$quick_warm}
CONNS=${BENCH_CONNS:-50}
WRK_THREADS=${BENCH_WRK_THREADS:-1}
IDLE_CONNS=${BENCH_IDLE_CONNS:-$quick_idle}
IDLE_MODE=${BENCH_IDLE_MODE:-request}
POLICY=${BENCH_POLICY:-round_robin}
PROXIES=${BENCH_PROXIES:-pentaflow haproxy nginx}
SCENARIOS=${BENCH_SCENARIOS:-base 16k 256k c1000 w2 log}
IDLE=${BENCH_IDLE:-1}
PIN=${BENCH_PIN:-1}
OUT_DIR=${BENCH_OUT:-$HERE/out}
QUIET_WAIT=${BENCH_QUIET_WAIT:-0}
MAX_ROUNDS=${BENCH_MAX_ROUNDS:-$RUNS}
SYSCALLS=${BENCH_SYSCALLS:-0}
# "Quiet" for wait_quiet: others use less than this share of one core.
QUIET_PCT=25
# The files the back-end serves: ~600 B, a typical small object (icon, JSON),
# and the larger ones of the 16k and 256k scenarios.
URL_PATH=/bench.html
BODY_BYTES=600
declare -A SIZE_PATH=([600]=/bench.html [16384]=/bench-16k.html [262144]=/bench-256k.html)
# One limit for all three proxies; the config given for pentaflow uses 20000.
MAXCONN=20000


declare -A LIVE=()      # PID -> name, of every process started and not yet reaped
declare -A PROXY_PID=() # proxy name -> PID
declare -A PROXY_PORT=() # proxy name -> loopback port
WORK=""
MADE_POLICY_RC=0


trap cleanup EXIT
trap 'exit 130' INT TERM



# wait_http PORT PID: until PORT serves the bench file byte for byte (10 s).
wait_http() {
  local port=$1 pid=$2 i
  for ((i = 0; i < 100; i++)); do
    alive "$pid" || return 1
    if curl -fsS --max-time 1 -o "$WORK/probe" "http://127.0.0.1:$port$URL_PATH" 2>/dev/null &&
      cmp -s "$WORK/probe" "$WORK/www${URL_PATH}"; then return 0; fi
    sleep 0.1
  done
  return 1
}


# write_files: every response size the scenarios ask for, once.
write_files() {
  local size
  mkdir -p "$WORK/www"
  for size in "${!SIZE_PATH[@]}"; do
    python3 -c 'import sys; head = "<!doctype html><title>pentaflow bench</title><p>"
body = head + "x" * (int(sys.argv[1]) - len(head) - 1) + "\n"
open(sys.argv[2], "w").write(body)' "$size" "$WORK/www${SIZE_PATH[$size]}"
  done
}

# start_backend: the shared back-end nginx, with S_WORKERS workers.
start_backend() {
  local dir=$WORK/backend
  mkdir -p "$dir/tmp"
  render "$HERE/conf/backend-nginx.conf" "$dir/nginx.conf" DIR="$dir" ROOT="$WORK/www" \
    PORT="$PORT_BACKEND" NOFILE="$NOFILE" WORKER_CONNS=$((NOFILE - 100)) SERVER_EXTRA="" \
    WORKERS="$S_WORKERS"
  "${LOAD_CPU[@]}" nginx -p "$dir" -e "$dir/error.log" -c "$dir/nginx.conf" -g 'daemon off;' \
    >"$dir/stdout.log" 2>&1 &
  LIVE[$!]=backend
  BACKEND_PID=$!
  wait_http "$PORT_BACKEND" "$BACKEND_PID" || die "back-end nginx did not start: $(tail -5 "$dir/error.log")"
}

# set_scenario NAME: the S_* settings of one scenario, and the CPU pinning.
set_scenario() {
  S_SIZE=$BODY_BYTES S_CONNS=$CONNS S_WORKERS=1 S_LOG=0 S_THREADS=$WRK_THREADS S_PIN=$PIN
  case $1 in
  base) S_WHAT="$BODY_BYTES B, $CONNS connections, 1 worker" ;;
  16k) S_SIZE=16384 S_WHAT="16 KiB responses, $CONNS connections, 1 worker" ;;
  256k) S_SIZE=262144 S_WHAT="256 KiB responses, $CONNS connections, 1 worker" ;;
  c1000) S_CONNS=1000 S_WHAT="$BODY_BYTES B, 1,000 connections, 1 worker" ;;
  w2) S_WORKERS=2 S_THREADS=2 S_PIN=0
    S_WHAT="$BODY_BYTES B, $CONNS connections, 2 workers on both cores (nothing pinned)" ;;
  log) S_LOG=1 S_WHAT="$BODY_BYTES B, $CONNS connections, 1 worker, access log on (to a file)" ;;
  *) die "unknown scenario $1 (base 16k 256k c1000 w2 log)" ;;
  esac
  URL_PATH=${SIZE_PATH[$S_SIZE]}
  LOAD_CPU=() PROXY_CPU=() PIN_NOTE="none"
  if [[ $S_PIN == 1 ]] && (($(nproc) >= 2)); then
    LOAD_CPU=(taskset -c 0) PROXY_CPU=(taskset -c 1)
    PIN_NOTE="proxy on CPU 1; back-end nginx and wrk on CPU 0"
  fi
}

# start_proxy NAME: a fresh proxy process; returns 1 (and logs why) if it
# does not serve the bench file through the back-end within 10 s.
start_proxy() {
  local name=$1 dir=$WORK/$1 port pid
  mkdir -p "$dir/tmp"
  case $name in
  haproxy)
    port=$PORT_HAPROXY
    local log_global="" log_defaults="" log_option=""
    if ((S_LOG)); then
      log_global="log stdout format raw local0" log_defaults="log global" log_option="option httplog"
    fi
    render "$HERE/conf/haproxy.cfg" "$dir/haproxy.cfg" DIR="$dir" PORT="$port" \
      BACKEND_PORT="$PORT_BACKEND" MAXCONN="$MAXCONN" NOFILE="$NOFILE" HAPROXY_BALANCE="$HAPROXY_BALANCE" \
      THREADS="$S_WORKERS" LOG_GLOBAL="$log_global" LOG_DEFAULTS="$log_defaults" \
      LOG_OPTION="$log_option"
    "${PROXY_CPU[@]}" haproxy -db -f "$dir/haproxy.cfg" >>"$dir/stdout.log" 2>&1 &
    ;;
  nginx)
    port=$PORT_NGINX
    render "$HERE/conf/nginx-proxy.conf" "$dir/nginx.conf" DIR="$dir" PORT="$port" \
      BACKEND_PORT="$PORT_BACKEND" NOFILE="$NOFILE" WORKER_CONNS=$((NOFILE - 100)) \
      NGINX_BALANCE="$NGINX_BALANCE" WORKERS="$S_WORKERS" \
      ACCESS_LOG="$( ((S_LOG)) && echo "$dir/access.log" || echo off)"
    "${PROXY_CPU[@]}" nginx -p "$dir" -e "$dir/error.log" -c "$dir/nginx.conf" -g 'daemon off;' \
      >>"$dir/stdout.log" 2>&1 &
    ;;
  pentaflow)
    port=$PORT_PENTAFLOW
    render "$HERE/conf/pentaflow.toml" "$dir/pentaflow.toml" PORT="$port" \
      BACKEND_PORT="$PORT_BACKEND" MAXCONN="$MAXCONN" POLICY="$POLICY" \
      ACCESS_LOG="$( ((S_LOG)) && echo true || echo false)"
    local pf_args=()
    ((${#PF_ARGS[@]} == 0)) || pf_args=(--workers "$S_WORKERS")
    PENTAFLOW_WORKERS=$S_WORKERS "${PROXY_CPU[@]}" "$PF_BIN" serve --config "$dir/pentaflow.toml" \
      "${pf_args[@]}" >>"$dir/stdout.log" 2>&1 &
    ;;
  *) die "unknown proxy $name" ;;
  esac
  pid=$!
  LIVE[$pid]=$name
  PROXY_PID[$name]=$pid
  PROXY_PORT[$name]=$port
  if ! wait_http "$port" "$pid"; then
    log "$name did not serve $URL_PATH on 127.0.0.1:$port; its output:"
    tail -n 20 "$dir/stdout.log" "$dir/error.log" >&2 2>/dev/null || true
    stop_pid "$pid"
    return 1
  fi
}

stop_proxy() { stop_pid "${PROXY_PID[$1]}"; }


# run_wrk SCENARIO TARGET ROUND: one measured run, appended to runs.tsv with
# the proxy's CPU (user and system apart) and the CPU that anything else on
# the machine used meanwhile (the machine is shared: a busy neighbour shows up
# there, not as a mystery).
run_wrk() {
  local scenario=$1 target=$2 round=$3 port pids=() bpids=() raw parsed t0 t1
  local c0 c1 b0 b1 m0 m1 w0 w1 cpu other u0 s0 u1 s1
  if [[ $target == direct ]]; then port=$PORT_BACKEND; else
    port=${PROXY_PORT[$target]}
    mapfile -t pids < <(target_pids "${PROXY_PID[$target]}")
  fi
  mapfile -t bpids < <(target_pids "$BACKEND_PID")
  raw=$WORK/raw/$scenario-$target-$round.txt
  # Every counter is read inside [t0, t1], so no share can exceed its true value.
  t0=$EPOCHREALTIME
  read -r u0 s0 <<<"$(cpu_split "${pids[@]}")"
  c0=$((u0 + s0)) b0=$(cpu_ticks "${bpids[@]}") m0=$(machine_busy)
  times >"$WORK/times0"
  "${LOAD_CPU[@]}" wrk -t"$S_THREADS" -c"$S_CONNS" -d"$DURATION" --latency \
    "http://127.0.0.1:$port$URL_PATH" >"$raw"
  times >"$WORK/times1"
  read -r u1 s1 <<<"$(cpu_split "${pids[@]}")"
  c1=$((u1 + s1)) b1=$(cpu_ticks "${bpids[@]}") m1=$(machine_busy)
  t1=$EPOCHREALTIME
  w0=$(children_ticks "$WORK/times0") w1=$(children_ticks "$WORK/times1")
  cpu=$(percent $((c1 - c0)) "$t0" "$t1")
  other=$(percent $((m1 - m0 - (c1 - c0) - (b1 - b0) - (w1 - w0))) "$t0" "$t1")
  parsed=$(python3 "$HERE/report.py" wrk "$raw")
  local rps p50 p99 errors requests
  read -r rps p50 p99 errors requests <<<"$parsed"
  # scenario target round rps p50 p99 errors cpu% other% user-ticks sys-ticks requests
  echo "$scenario $target $round $rps $p50 $p99 $errors $cpu $other $((u1 - u0)) $((s1 - s0)) $requests" \
    >>"$WORK/runs.tsv"
  LAST_OTHER=${other%.*}
  log "$scenario round $round $target: $rps req/s, p50 $p50 ms, p99 $p99 ms, errors $errors," \
    "proxy CPU $cpu% (user $((u1 - u0)), system $((s1 - s0)) ticks), other processes $other%"
}

# count_syscalls SCENARIO TARGET: one wrk run of DURATION while `perf stat`
# counts the proxy's system calls by name (tracepoints: the proxy runs at its
# normal speed, unlike under strace), plus its user/system ticks; appended to
# syscalls.tsv as "scenario target event count requests user-ticks sys-ticks".
count_syscalls() {
  local scenario=$1 target=$2 port=${PROXY_PORT[$2]} pids=() raw stat u0 s0 u1 s1 requests
  mapfile -t pids < <(target_pids "${PROXY_PID[$target]}")
  raw=$WORK/raw/$scenario-$target-syscalls.txt stat=$WORK/raw/$scenario-$target-perfstat.csv
  wait_quiet
  read -r u0 s0 <<<"$(cpu_split "${pids[@]}")"
  perf stat -x, -o "$stat" -e 'syscalls:sys_enter_*' -e context-switches \
    -p "$(IFS=,; echo "${pids[*]}")" -- \
    "${LOAD_CPU[@]}" wrk -t"$S_THREADS" -c"$S_CONNS" -d"$DURATION" --latency \
    "http://127.0.0.1:$port$URL_PATH" >"$raw"
  read -r u1 s1 <<<"$(cpu_split "${pids[@]}")"
  requests=$(python3 "$HERE/report.py" wrk "$raw" | cut -d' ' -f5)
  # perf's CSV: count,unit,event,...; uncounted events say "<not counted>".
  awk -F, -v sc="$scenario" -v t="$target" -v r="$requests" -v u=$((u1 - u0)) -v s=$((s1 - s0)) \
    '$1 ~ /^[0-9]+$/ && $1 > 0 {ev = $3; sub(/^syscalls:sys_enter_/, "", ev)
      print sc, t, ev, $1, r, u, s}' "$stat" >>"$WORK/syscalls.tsv"
  log "$scenario $target: system calls counted over $requests requests ($stat)"
}

# measure_idle NAME: fresh process, one warm-up request, then idle_conns.py.
measure_idle() {
  local name=$1 pids=() args=() json pid
  start_proxy "$name" || { log "$name: idle test skipped, it did not start"; return 0; }
  curl -fsS -o /dev/null "http://127.0.0.1:${PROXY_PORT[$name]}$URL_PATH"
  sleep 1
  mapfile -t pids < <(target_pids "${PROXY_PID[$name]}")
  for pid in "${pids[@]}"; do args+=(--pid "$pid"); done
  json=$(python3 "$HERE/idle_conns.py" --port "${PROXY_PORT[$name]}" --path "$URL_PATH" \
    --conns "$IDLE_CONNS" --mode "$IDLE_MODE" "${args[@]}") ||
    log "$name: idle_conns.py reported failures"
  printf '%s\t%s\n' "$name" "$json" >>"$WORK/mem.tsv"
  log "$name idle: $json"
  stop_proxy "$name"
}

# run_scenario NAME: a fresh back-end and fresh proxies with the scenario's
# settings, a warm-up of each, then rounds until RUNS clean ones (or
# MAX_ROUNDS); clean rounds are recorded as "SCENARIO ROUND".
run_scenario() {
  local scenario=$1 name round target port started=() clean=0 round_clean
  set_scenario "$scenario"
  log "scenario $scenario: $S_WHAT"
  printf '%s\t%s\t%s\n' "$scenario" "$S_WHAT" "$PIN_NOTE" >>"$WORK/scenarios.tsv"
  start_backend
  for name in $ALL_PROXIES; do
    if start_proxy "$name"; then started+=("$name")
    elif [[ $name == pentaflow ]]; then
      log "pentaflow: skipped in $scenario (it did not serve; see above)"
      PF_VERSION="$PF_VERSION (did not serve in $scenario)"
    else die "$name did not start"; fi
  done
  PROXIES="${started[*]}"
  log "targets: $PROXIES direct; $RUNS rounds of $DURATION"
  for target in $PROXIES direct; do
    # Unmeasured warm-up: fills connection pools, caches and allocator arenas.
    if [[ $target == direct ]]; then port=$PORT_BACKEND; else port=${PROXY_PORT[$target]}; fi
    "${LOAD_CPU[@]}" wrk -t"$S_THREADS" -c"$S_CONNS" -d"$WARMUP" "http://127.0.0.1:$port$URL_PATH" >/dev/null
  done
  # A round is clean when no run in it had a busy neighbour; with
  # BENCH_MAX_ROUNDS above BENCH_RUNS, rounds go on until RUNS clean ones.
  for ((round = 1; round <= MAX_ROUNDS && clean < RUNS; round++)); do
    round_clean=1
    for target in $PROXIES direct; do
      wait_quiet
      run_wrk "$scenario" "$target" "$round"
      ((LAST_OTHER < QUIET_PCT)) || round_clean=0
    done
    if ((round_clean)); then clean=$((clean + 1)); echo "$scenario $round" >>"$WORK/clean-rounds"; fi
    if ((round >= RUNS && clean < RUNS && round < MAX_ROUNDS)); then
      log "$scenario: $clean clean rounds of $round; one more"
    fi
  done
  if ((SYSCALLS)); then
    for target in $PROXIES; do count_syscalls "$scenario" "$target"; done
  fi
  for name in $PROXIES; do stop_proxy "$name"; done
  stop_pid "$BACKEND_PID"
  ((S_LOG)) && shrink_logs
  return 0
}

# shrink_logs: access logs of the log scenario run to hundreds of MB; keep
# their last lines (a sample for the record) so bench/out stays small.
shrink_logs() {
  local f
  for f in "$WORK"/*/access.log "$WORK"/*/stdout.log; do
    [[ -f $f ]] && (($(stat -c %s "$f") > 1048576)) || continue
    { echo "[bench: $(wc -l <"$f") lines; the last 200 kept]"; tail -n 200 "$f"; } >"$f.tail"
    mv "$f.tail" "$f"
  done
}

# Everything the report says about where and how it was measured.
write_header() {
  local now=$1
  {
    echo "# pentaflow side-by-side benchmark, $now"
    echo
    echo "- machine: $(nproc) cores ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)), $(free -g | awk '/^Mem:/ {print $2}') GiB, kernel $(uname -r)"
    echo "- load average before the run: $LOAD_BEFORE; after: $(cut -d' ' -f1-3 /proc/loadavg)"
    echo "- versions: $(nginx -v 2>&1 | sed 's/^nginx version: //'), $(haproxy -v | head -1 | cut -d' ' -f1-3), $(wrk -v 2>&1 | head -1 | cut -d' ' -f1-2 || true), pentaflow ${PF_VERSION}"
    echo "- wrk: \`wrk -tT -cC -d$DURATION --latency http://127.0.0.1:PORT/FILE\` (T = $WRK_THREADS, 2 in w2; C = $CONNS, 1000 in c1000), rounds alternated ($PROXIES direct) until $RUNS clean ones or $MAX_ROUNDS in all, $WARMUP warm-up each; medians"
    echo "- responses: static files from one shared nginx back-end (1 worker, 2 in w2); policy $POLICY; keep-alive to the back-end in every proxy"
    echo "- threads: 1 per proxy ($PF_WORKERS_HOW for pentaflow), 2 in w2; pinning: proxy on CPU 1, back-end and wrk on CPU 0, except w2 (nothing pinned)"
    echo "- scenarios: $SCENARIOS"
    echo "- idle memory: $IDLE_CONNS client connections, mode \`$IDLE_MODE\`, fresh process per proxy, VmRSS/RssAnon summed over its processes"
  } >"$WORK/header.md"
}

main() {
  ensure_packages nginx haproxy wrk
  if ((SYSCALLS)); then command -v perf >/dev/null || die "BENCH_SYSCALLS=1 needs perf (linux-perf)"; fi
  ulimit -n "$(ulimit -Hn)"
  NOFILE=$(ulimit -n)
  if ((IDLE_CONNS + 200 > NOFILE)); then
    log "open-file limit $NOFILE: idle connections lowered from $IDLE_CONNS to $((NOFILE - 200))"
    IDLE_CONNS=$((NOFILE - 200))
  fi
  CLK_TCK=$(getconf CLK_TCK)
  LOAD_BEFORE=$(cut -d' ' -f1-3 /proc/loadavg)
  case $POLICY in
  round_robin) HAPROXY_BALANCE=roundrobin NGINX_BALANCE="# round robin: the nginx default" ;;
  least_conn) HAPROXY_BALANCE=leastconn NGINX_BALANCE="least_conn;" ;;
  *) die "BENCH_POLICY must be round_robin or least_conn" ;;
  esac
  WORK=$(mktemp -d /tmp/pfbench.XXXXXX)
  # nginx workers run as www-data and must read the served file.
  chmod 755 "$WORK"
  mkdir -p "$WORK/raw" "$OUT_DIR"
  : >"$WORK/runs.tsv"
  : >"$WORK/syscalls.tsv"
  read -r PORT_BACKEND PORT_PENTAFLOW PORT_HAPROXY PORT_NGINX <<<"$(free_ports 4)"

  PF_BIN=${PENTAFLOW_BIN:-} PF_ARGS=() PF_VERSION="(not run)" PF_WORKERS_HOW="not run"
  if [[ " $PROXIES " == *" pentaflow "* ]]; then
    if [[ -z $PF_BIN ]]; then
      log "building pentaflow: cargo build --release -p pentaflow"
      if (cd "$ROOT" && cargo build --release -p pentaflow >&2); then
        PF_BIN=${CARGO_TARGET_DIR:-$ROOT/target}/release/pentaflow
      else
        log "pentaflow: the release build failed; its row is skipped"
      fi
    fi
    if [[ -n $PF_BIN && -x $PF_BIN ]]; then
      if "$PF_BIN" serve --help 2>&1 | grep -- '--workers' >/dev/null; then
        PF_ARGS=(--workers 1) PF_WORKERS_HOW="--workers 1"
      else
        PF_WORKERS_HOW="PENTAFLOW_WORKERS=1"
      fi
      PF_VERSION="$("$PF_BIN" --version 2>/dev/null | head -1 | sed 's/^pentaflow //' || true) (tree $(git -C "$ROOT" describe --always --dirty 2>/dev/null || echo 'not committed yet'))"
    else
      [[ -z $PF_BIN ]] || log "pentaflow: $PF_BIN is not an executable; its row is skipped"
      PROXIES=${PROXIES//pentaflow/}
    fi
  fi

  ALL_PROXIES=$PROXIES
  write_files
  : >"$WORK/clean-rounds"
  : >"$WORK/scenarios.tsv"
  local scenario
  for scenario in $SCENARIOS; do run_scenario "$scenario"; done

  : >"$WORK/mem.tsv"
  if ((IDLE)); then
    set_scenario base
    start_backend
    for name in $ALL_PROXIES; do measure_idle "$name"; done
    stop_pid "$BACKEND_PID"
  fi

  local now stamp
  now=$(date -u +'%Y-%m-%d %H:%M UTC')
  stamp=$(date -u +%Y-%m-%d-%H%M%S)
  write_header "$now"
  python3 "$HERE/report.py" summary --runs "$WORK/runs.tsv" --mem "$WORK/mem.tsv" \
    --clean "$WORK/clean-rounds" --quiet-pct "$QUIET_PCT" --header "$WORK/header.md" \
    --scenarios "$WORK/scenarios.tsv" --hz "$CLK_TCK" --syscalls "$WORK/syscalls.tsv" >"$OUT_DIR/results-$stamp.md"
  # The raw wrk outputs and the rendered configs, for anyone checking a number.
  mkdir -p "$OUT_DIR/raw-$stamp"
  cp -r "$WORK/raw/." "$OUT_DIR/raw-$stamp/"
  # The report's inputs, so `report.py summary` can rebuild it later.
  cp "$WORK/runs.tsv" "$WORK/mem.tsv" "$WORK/syscalls.tsv" "$WORK/clean-rounds" "$WORK/header.md" \
    "$WORK/scenarios.tsv" "$OUT_DIR/raw-$stamp/"
  find "$WORK" -maxdepth 2 \( -name '*.conf' -o -name '*.cfg' -o -name '*.toml' -o -name '*.log' \) \
    -exec sh -c 'cp "$1" "$2/$(basename "$(dirname "$1")")-$(basename "$1")"' _ {} "$OUT_DIR/raw-$stamp" \;
  cat "$OUT_DIR/results-$stamp.md"
  log "report: $OUT_DIR/results-$stamp.md"
}

# `run.sh --all`: this comparison, then the TLS, CDN, L4 and failover suites, each a
# separate script with its own report (a failing suite does not stop the rest).
ALL=0
case ${1:-} in
--all) ALL=1 ;;
"") ;;
*) die "usage: bench/run.sh [--all]" ;;
esac
main
if ((ALL)); then
  cleanup
  for suite in tls cdn l4 failover; do
    log "suite $suite: bench/$suite.sh"
    PENTAFLOW_BIN=${PF_BIN:-${PENTAFLOW_BIN:-}} "$HERE/$suite.sh" || log "bench/$suite.sh failed"
  done
fi
