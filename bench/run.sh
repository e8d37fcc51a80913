#!/usr/bin/env bash
# bench/run.sh: pentaflow, HAProxy and nginx side by side as reverse proxies.
#
# Owns: installing nginx/haproxy/wrk from Debian when missing, building the
# pentaflow release binary, starting one shared nginx back-end and the three
# proxies on free loopback ports, alternated wrk runs (medians), the idle
# connection memory test (bench/idle_conns.py), and the report in bench/out/.
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
#   BENCH_QUIET_WAIT=0    before each run, wait up to this many seconds for
#                         other processes to go quiet (on a shared machine)
#   BENCH_MAX_ROUNDS=RUNS add rounds, up to this many, until RUNS are clean
#                         (no run of the round disturbed by other processes)
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
PIN=${BENCH_PIN:-1}
OUT_DIR=${BENCH_OUT:-$HERE/out}
QUIET_WAIT=${BENCH_QUIET_WAIT:-0}
MAX_ROUNDS=${BENCH_MAX_ROUNDS:-$RUNS}
# "Quiet" for wait_quiet: others use less than this share of one core.
QUIET_PCT=25
# The file every target serves: ~600 B, a typical small object (icon, JSON).
URL_PATH=/bench.html
BODY_BYTES=600
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


start_backend() {
  local dir=$WORK/backend
  mkdir -p "$dir/tmp" "$WORK/www"
  python3 -c 'import sys; head = "<!doctype html><title>pentaflow bench</title><p>"
body = head + "x" * (int(sys.argv[1]) - len(head) - 1) + "\n"
open(sys.argv[2], "w").write(body)' "$BODY_BYTES" "$WORK/www${URL_PATH}"
  render "$HERE/conf/backend-nginx.conf" "$dir/nginx.conf" DIR="$dir" ROOT="$WORK/www" \
    PORT="$PORT_BACKEND" NOFILE="$NOFILE" WORKER_CONNS=$((NOFILE - 100)) SERVER_EXTRA=""
  "${LOAD_CPU[@]}" nginx -p "$dir" -e "$dir/error.log" -c "$dir/nginx.conf" -g 'daemon off;' \
    >"$dir/stdout.log" 2>&1 &
  LIVE[$!]=backend
  BACKEND_PID=$!
  wait_http "$PORT_BACKEND" "$BACKEND_PID" || die "back-end nginx did not start: $(tail -5 "$dir/error.log")"
}

# start_proxy NAME: a fresh proxy process; returns 1 (and logs why) if it
# does not serve the bench file through the back-end within 10 s.
start_proxy() {
  local name=$1 dir=$WORK/$1 port pid
  mkdir -p "$dir/tmp"
  case $name in
  haproxy)
    port=$PORT_HAPROXY
    render "$HERE/conf/haproxy.cfg" "$dir/haproxy.cfg" DIR="$dir" PORT="$port" \
      BACKEND_PORT="$PORT_BACKEND" MAXCONN="$MAXCONN" NOFILE="$NOFILE" HAPROXY_BALANCE="$HAPROXY_BALANCE"
    "${PROXY_CPU[@]}" haproxy -db -f "$dir/haproxy.cfg" >>"$dir/stdout.log" 2>&1 &
    ;;
  nginx)
    port=$PORT_NGINX
    render "$HERE/conf/nginx-proxy.conf" "$dir/nginx.conf" DIR="$dir" PORT="$port" \
      BACKEND_PORT="$PORT_BACKEND" NOFILE="$NOFILE" WORKER_CONNS=$((NOFILE - 100)) \
      NGINX_BALANCE="$NGINX_BALANCE"
    "${PROXY_CPU[@]}" nginx -p "$dir" -e "$dir/error.log" -c "$dir/nginx.conf" -g 'daemon off;' \
      >>"$dir/stdout.log" 2>&1 &
    ;;
  pentaflow)
    port=$PORT_PENTAFLOW
    render "$HERE/conf/pentaflow.toml" "$dir/pentaflow.toml" PORT="$port" \
      BACKEND_PORT="$PORT_BACKEND" MAXCONN="$MAXCONN" POLICY="$POLICY"
    PENTAFLOW_WORKERS=1 "${PROXY_CPU[@]}" "$PF_BIN" serve --config "$dir/pentaflow.toml" \
      "${PF_ARGS[@]}" >>"$dir/stdout.log" 2>&1 &
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


# run_wrk TARGET ROUND: one measured run, appended to runs.tsv with the
# proxy's CPU and the CPU that anything else on the machine used meanwhile
# (the machine is shared: a busy neighbour shows up there, not as a mystery).
run_wrk() {
  local target=$1 round=$2 port pids=() bpids=() raw parsed t0 t1
  local c0 c1 b0 b1 m0 m1 w0 w1 cpu other
  if [[ $target == direct ]]; then port=$PORT_BACKEND; else
    port=${PROXY_PORT[$target]}
    mapfile -t pids < <(target_pids "${PROXY_PID[$target]}")
  fi
  mapfile -t bpids < <(target_pids "$BACKEND_PID")
  raw=$WORK/raw/$target-$round.txt
  # Every counter is read inside [t0, t1], so no share can exceed its true value.
  t0=$EPOCHREALTIME
  c0=$(cpu_ticks "${pids[@]}") b0=$(cpu_ticks "${bpids[@]}") m0=$(machine_busy)
  times >"$WORK/times0"
  "${LOAD_CPU[@]}" wrk -t"$WRK_THREADS" -c"$CONNS" -d"$DURATION" --latency \
    "http://127.0.0.1:$port$URL_PATH" >"$raw"
  times >"$WORK/times1"
  c1=$(cpu_ticks "${pids[@]}") b1=$(cpu_ticks "${bpids[@]}") m1=$(machine_busy)
  t1=$EPOCHREALTIME
  w0=$(children_ticks "$WORK/times0") w1=$(children_ticks "$WORK/times1")
  cpu=$(percent $((c1 - c0)) "$t0" "$t1")
  other=$(percent $((m1 - m0 - (c1 - c0) - (b1 - b0) - (w1 - w0))) "$t0" "$t1")
  parsed=$(python3 "$HERE/report.py" wrk "$raw")
  echo "$target $round $parsed $cpu $other" >>"$WORK/runs.tsv"
  LAST_OTHER=${other%.*}
  read -r rps p50 p99 errors <<<"$parsed"
  log "round $round $target: $rps req/s, p50 $p50 ms, p99 $p99 ms, errors $errors," \
    "proxy CPU $cpu%, other processes $other%"
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

# Everything the report says about where and how it was measured.
write_header() {
  local now=$1
  {
    echo "# pentaflow side-by-side benchmark, $now"
    echo
    echo "- machine: $(nproc) cores ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)), $(free -g | awk '/^Mem:/ {print $2}') GiB, kernel $(uname -r)"
    echo "- load average before the run: $LOAD_BEFORE; after: $(cut -d' ' -f1-3 /proc/loadavg)"
    echo "- versions: $(nginx -v 2>&1 | sed 's/^nginx version: //'), $(haproxy -v | head -1 | cut -d' ' -f1-3), $(wrk -v 2>&1 | head -1 | cut -d' ' -f1-2 || true), pentaflow ${PF_VERSION}"
    echo "- wrk: \`wrk -t$WRK_THREADS -c$CONNS -d$DURATION --latency http://127.0.0.1:PORT$URL_PATH\`, rounds alternated ($PROXIES direct) until $RUNS clean ones or $MAX_ROUNDS in all, $WARMUP warm-up each; medians"
    echo "- response: $BODY_BYTES B static file from one shared nginx back-end (1 worker); policy $POLICY; keep-alive to the back-end in every proxy"
    echo "- threads: 1 per proxy ($PF_WORKERS_HOW for pentaflow); pinning: $PIN_NOTE"
    echo "- idle memory: $IDLE_CONNS client connections, mode \`$IDLE_MODE\`, fresh process per proxy, VmRSS/RssAnon summed over its processes"
  } >"$WORK/header.md"
}

main() {
  ensure_packages nginx haproxy wrk
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
  LOAD_CPU=() PROXY_CPU=() PIN_NOTE="none"
  if [[ $PIN == 1 ]] && (($(nproc) >= 2)); then
    LOAD_CPU=(taskset -c 0) PROXY_CPU=(taskset -c 1)
    PIN_NOTE="proxy on CPU 1; back-end nginx and wrk on CPU 0"
  fi
  WORK=$(mktemp -d /tmp/pfbench.XXXXXX)
  # nginx workers run as www-data and must read the served file.
  chmod 755 "$WORK"
  mkdir -p "$WORK/raw" "$OUT_DIR"
  : >"$WORK/runs.tsv"
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

  start_backend
  local name round target port started=()
  for name in $PROXIES; do
    if start_proxy "$name"; then started+=("$name")
    elif [[ $name == pentaflow ]]; then
      log "pentaflow: skipped (it did not serve; see above)"
      PF_VERSION="$PF_VERSION (did not serve: row pending)"
    else die "$name did not start"; fi
  done
  PROXIES="${started[*]}"
  log "targets: $PROXIES direct; $RUNS rounds of $DURATION"
  for target in $PROXIES direct; do
    # Unmeasured warm-up: fills connection pools, caches and allocator arenas.
    if [[ $target == direct ]]; then port=$PORT_BACKEND; else port=${PROXY_PORT[$target]}; fi
    "${LOAD_CPU[@]}" wrk -t"$WRK_THREADS" -c"$CONNS" -d"$WARMUP" "http://127.0.0.1:$port$URL_PATH" >/dev/null
  done
  # A round is clean when no run in it had a busy neighbour; with
  # BENCH_MAX_ROUNDS above BENCH_RUNS, rounds go on until RUNS clean ones.
  local clean=0 round_clean
  : >"$WORK/clean-rounds"
  for ((round = 1; round <= MAX_ROUNDS && clean < RUNS; round++)); do
    round_clean=1
    for target in $PROXIES direct; do
      wait_quiet
      run_wrk "$target" "$round"
      ((LAST_OTHER < QUIET_PCT)) || round_clean=0
    done
    if ((round_clean)); then clean=$((clean + 1)); echo "$round" >>"$WORK/clean-rounds"; fi
    if ((round >= RUNS && clean < RUNS && round < MAX_ROUNDS)); then
      log "$clean clean rounds of $round; one more"
    fi
  done
  for name in $PROXIES; do stop_proxy "$name"; done

  : >"$WORK/mem.tsv"
  for name in $PROXIES; do measure_idle "$name"; done

  local now stamp
  now=$(date -u +'%Y-%m-%d %H:%M UTC')
  stamp=$(date -u +%Y-%m-%d-%H%M%S)
  write_header "$now"
  python3 "$HERE/report.py" summary --runs "$WORK/runs.tsv" --mem "$WORK/mem.tsv" \
    --clean "$WORK/clean-rounds" --quiet-pct "$QUIET_PCT" --header "$WORK/header.md" >"$OUT_DIR/results-$stamp.md"
  # The raw wrk outputs and the rendered configs, for anyone checking a number.
  mkdir -p "$OUT_DIR/raw-$stamp"
  cp -r "$WORK/raw/." "$OUT_DIR/raw-$stamp/"
  # The report's inputs, so `report.py summary` can rebuild it later.
  cp "$WORK/runs.tsv" "$WORK/mem.tsv" "$WORK/clean-rounds" "$WORK/header.md" "$OUT_DIR/raw-$stamp/"
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
