#!/usr/bin/env bash
# bench/tls.sh: TLS termination side by side (issue 3, item 7): pentaflow,
# nginx and HAProxy with the SAME certificates, 1 worker/thread each, pinned.
#
# Owns: a throw-away ECDSA P-256 and RSA-2048 certificate (openssl req -x509 in
# the work directory), one shared nginx back-end, one TLS-terminating process
# per proxy and certificate kind, alternated measured runs, and the report in
# bench/out/tls-*.md. Cases (BENCH_TLS_CASES, any of):
#   full-ecdsa, full-rsa  full TLS 1.3 handshakes/s: wrk over https with
#                         `Connection: close` (one handshake + one request per
#                         connection; wrk never resumes a session)
#   new-ecdsa, new-rsa    the same with `openssl s_time -new` (handshake + GET,
#                         sequential clients)
#   resumed-ecdsa         resumed handshakes/s: `openssl s_time -reuse` (TLS 1.3
#                         PSK from the server's session ticket)
#   keepalive-ecdsa       HTTPS keep-alive requests/s: wrk, 50 connections
# and then (BENCH_TLS_IDLE=1, the default) the resident memory per idle TLS
# client connection of a fresh process of each proxy (bench/idle_conns.py
# --tls, BENCH_IDLE_CONNS connections, 10,000 by default, 1,000 quick).
# Must not: send traffic anywhere but 127.0.0.1, leave a process behind, or
# write outside its work directory and bench/out/.
#
# Settings (environment): BENCH_RUNS=3 rounds (each round runs every case on
# every proxy, alternated), BENCH_DURATION=5 (seconds per run), BENCH_CONNS=50
# (wrk connections), BENCH_STIME_CLIENTS=2 (parallel s_time clients),
# BENCH_PROXIES="pentaflow haproxy nginx", BENCH_QUIET_WAIT=0, BENCH_PIN=1,
# PENTAFLOW_BIN, BENCH_OUT=bench/out, BENCH_KEEP_WORK=1, BENCH_QUICK=1 (1 round of 2 s).
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(dirname "$HERE")
# shellcheck source-path=SCRIPTDIR source=common.sh
source "$HERE/common.sh"
export PATH="$PATH:/usr/sbin:/sbin"

if [[ ${BENCH_QUICK:-0} == 1 ]]; then quick_runs=1 quick_dur=2; else quick_runs=3 quick_dur=5; fi
RUNS=${BENCH_RUNS:-$quick_runs}
DURATION=${BENCH_DURATION:-$quick_dur}
DURATION=${DURATION%s}
CONNS=${BENCH_CONNS:-50}
STIME_CLIENTS=${BENCH_STIME_CLIENTS:-2}
CASES=${BENCH_TLS_CASES:-full-ecdsa full-rsa resumed-ecdsa keepalive-ecdsa}
TLS_IDLE=${BENCH_TLS_IDLE:-1}
if [[ ${BENCH_QUICK:-0} == 1 ]]; then quick_idle=1000; else quick_idle=10000; fi
IDLE_CONNS=${BENCH_IDLE_CONNS:-$quick_idle}
PROXIES=${BENCH_PROXIES:-pentaflow haproxy nginx}
OUT_DIR=${BENCH_OUT:-$HERE/out}
QUIET_WAIT=${BENCH_QUIET_WAIT:-0}
# "Quiet": other processes use less than this share of one core.
QUIET_PCT=25
URL_PATH=/bench.html
# The same small object as bench/run.sh, so the keep-alive row compares with it.
BODY_BYTES=600
MAXCONN=20000
# The certificate's name; clients do not verify it (s_time and wrk never do).
CERT_CN=bench.pentaflow.test

declare -A LIVE=() PORT=() PID=()
WORK="" MADE_POLICY_RC=0

trap cleanup EXIT
trap 'exit 130' INT TERM

# make_certs: one self-signed certificate per kind, the same files for all.
make_certs() {
  local dir=$WORK/certs
  mkdir -p "$dir"
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 2 \
    -subj "/CN=$CERT_CN" -addext "subjectAltName=DNS:$CERT_CN" \
    -keyout "$dir/ecdsa.key" -out "$dir/ecdsa.pem" 2>/dev/null
  openssl req -x509 -newkey rsa:2048 -nodes -days 2 \
    -subj "/CN=$CERT_CN" -addext "subjectAltName=DNS:$CERT_CN" \
    -keyout "$dir/rsa.key" -out "$dir/rsa.pem" 2>/dev/null
  # HAProxy wants the chain and the key in one file.
  cat "$dir/ecdsa.pem" "$dir/ecdsa.key" >"$dir/ecdsa.both.pem"
  cat "$dir/rsa.pem" "$dir/rsa.key" >"$dir/rsa.both.pem"
  chmod 644 "$dir"/*
}

# start_tls PROXY KIND: the proxy terminating TLS with KIND's certificate.
start_tls() {
  local proxy=$1 kind=$2 name=$1-$2 dir=$WORK/$1-$2 port
  port=${PORT[$name]}
  mkdir -p "$dir/tmp"
  local cert=$WORK/certs/$kind.pem key=$WORK/certs/$kind.key
  case $proxy in
  nginx)
    render "$HERE/conf/tls-nginx.conf" "$dir/nginx.conf" DIR="$dir" PORT="$port" \
      BACKEND_PORT="$PORT_BACKEND" NOFILE="$NOFILE" WORKER_CONNS=$((NOFILE - 100)) \
      CERT="$cert" KEY="$key"
    start_bg "$name" "${PROXY_CPU[@]}" nginx -p "$dir" -e "$dir/error.log" -c "$dir/nginx.conf" \
      -g 'daemon off;'
    ;;
  haproxy)
    render "$HERE/conf/tls-haproxy.cfg" "$dir/haproxy.cfg" DIR="$dir" PORT="$port" \
      BACKEND_PORT="$PORT_BACKEND" MAXCONN="$MAXCONN" NOFILE="$NOFILE" \
      PEM="$WORK/certs/$kind.both.pem"
    start_bg "$name" "${PROXY_CPU[@]}" haproxy -db -f "$dir/haproxy.cfg"
    ;;
  pentaflow)
    render "$HERE/conf/tls-pentaflow.toml" "$dir/pentaflow.toml" PORT="$port" \
      BACKEND_PORT="$PORT_BACKEND" MAXCONN="$MAXCONN" CERT="$cert" KEY="$key" \
      TICKET_KEY="$TICKET_KEY"
    "$PF_BIN" check --config "$dir/pentaflow.toml" >&2 || return 1
    start_bg "$name" env PENTAFLOW_WORKERS=1 "${PROXY_CPU[@]}" "$PF_BIN" serve \
      --config "$dir/pentaflow.toml" "${PF_ARGS[@]}"
    ;;
  esac
  PID[$name]=$STARTED_PID
  if ! wait_url "https://127.0.0.1:$port$URL_PATH" "$WORK/www$URL_PATH" "$STARTED_PID" -k; then
    log "$name did not serve https://127.0.0.1:$port$URL_PATH; its output:"
    tail -n 20 "$WORK/$name.log" "$dir/error.log" >&2 2>/dev/null || true
    stop_pid "$STARTED_PID"
    return 1
  fi
  # What was negotiated, for the report: protocol, suite, key exchange.
  echo "$name: $(openssl s_client -connect "127.0.0.1:$port" -servername "$CERT_CN" </dev/null 2>&1 |
    grep -E '^(New|Server Temp Key|Peer signature type)' | tr '\n' ' ' | sed 's/  */ /g')" \
    >>"$WORK/negotiated.txt"
}

# stime_clients PORT MODE: BENCH_STIME_CLIENTS `openssl s_time` in parallel
# (one is a sequential client and can leave the server idle between its
# handshakes), each for DURATION seconds; outputs concatenated.
stime_clients() {
  local port=$1 mode=$2 i pids=()
  for ((i = 1; i <= STIME_CLIENTS; i++)); do
    "${LOAD_CPU[@]}" openssl s_time -connect "127.0.0.1:$port" "$mode" -www "$URL_PATH" \
      -time "$DURATION" -tls1_3 >"$WORK/stime.$i" 2>&1 &
    pids+=($!)
  done
  for i in "${pids[@]}"; do wait "$i" || true; done
  for ((i = 1; i <= STIME_CLIENTS; i++)); do echo "=== client $i"; cat "$WORK/stime.$i"; done
}

# measure CASE PROXY ROUND: one run, appended to runs.tsv.
measure() {
  local case=$1 proxy=$2 round=$3 kind=${1#*-} name port raw parsed tpids=() bpids=()
  name=$proxy-$kind
  [[ -n ${PID[$name]:-} ]] || return 0
  port=${PORT[$name]}
    # shellcheck disable=SC2034  # read by timed_run (nameref)
    mapfile -t tpids < <(target_pids "${PID[$name]}")
  # shellcheck disable=SC2034  # read by timed_run (nameref)
  mapfile -t bpids < <(target_pids "$BACKEND_PID")
  raw=$WORK/raw/$case-$proxy-$round.txt
  local url="https://127.0.0.1:$port$URL_PATH"
  case ${case%%-*} in
  full) timed_run "$raw" tpids bpids "${LOAD_CPU[@]}" wrk -t1 -c"$CONNS" -d"${DURATION}s" \
    --latency -H 'Connection: close' "$url" ;;
  keepalive) timed_run "$raw" tpids bpids "${LOAD_CPU[@]}" wrk -t1 -c"$CONNS" \
    -d"${DURATION}s" --latency "$url" ;;
  new) timed_run "$raw" tpids bpids stime_clients "$port" -new ;;
  resumed) timed_run "$raw" tpids bpids stime_clients "$port" -reuse ;;
  *) die "unknown case $case" ;;
  esac
  if [[ $case == full-* || $case == keepalive-* ]]; then
    parsed=$(python3 "$HERE/suites.py" wrk "$raw") || parsed="0 - 1"
  else
    parsed=$(python3 "$HERE/suites.py" stime --wall "$RUN_WALL" "$raw") || parsed="0 - 1"
  fi
  read -r rate p99 errors <<<"$parsed"
  printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$case" "$proxy" "$round" "$rate" "$p99" \
    "$RUN_CPU" "$RUN_OTHER" "$errors" >>"$WORK/runs.tsv"
  log "round $round $case $proxy: $rate/s, p99 $p99 ms, errors/not resumed $errors," \
    "proxy CPU $RUN_CPU%, other $RUN_OTHER%"
}

# measure_idle_tls PROXY: a fresh ECDSA process of PROXY, one warm-up request,
# then idle_conns.py --tls; the JSON goes to mem.tsv.
measure_idle_tls() {
  local proxy=$1 name=$1-ecdsa pids=() args=() json pid
  [[ -n ${PID[$name]:-} ]] && stop_pid "${PID[$name]}"
  unset "PID[$name]"
  start_tls "$proxy" ecdsa || { log "$name: idle TLS test skipped, it did not start"; return 0; }
  curl -fsSk -o /dev/null "https://127.0.0.1:${PORT[$name]}$URL_PATH"
  sleep 1
  mapfile -t pids < <(target_pids "${PID[$name]}")
  for pid in "${pids[@]}"; do args+=(--pid "$pid"); done
  json=$(python3 "$HERE/idle_conns.py" --tls --port "${PORT[$name]}" --path "$URL_PATH" \
    --conns "$IDLE_CONNS" --mode request "${args[@]}") ||
    log "$name: idle_conns.py --tls reported failures"
  printf '%s\t%s\n' "$proxy" "$json" >>"$WORK/mem.tsv"
  log "$name idle TLS: $json"
  stop_pid "${PID[$name]}"
  unset "PID[$name]"
}

main() {
  ensure_packages nginx haproxy wrk openssl
  ulimit -n "$(ulimit -Hn)"
  NOFILE=$(ulimit -n)
  if ((IDLE_CONNS + 200 > NOFILE)); then IDLE_CONNS=$((NOFILE - 200)); fi
  CLK_TCK=$(getconf CLK_TCK)
  LOAD_BEFORE=$(cut -d' ' -f1-3 /proc/loadavg)
  pin_cpus
  WORK=$(mktemp -d /tmp/pfbench-tls.XXXXXX)
  chmod 755 "$WORK"
  mkdir -p "$WORK/raw" "$WORK/www" "$OUT_DIR"
  : >"$WORK/runs.tsv"
  : >"$WORK/negotiated.txt"
  python3 -c 'import sys; head = "<!doctype html><title>pentaflow bench</title><p>"
open(sys.argv[2], "w").write(head + "x" * (int(sys.argv[1]) - len(head) - 1) + "\n")' \
    "$BODY_BYTES" "$WORK/www$URL_PATH"
  make_certs
  TICKET_KEY=$(openssl rand -hex 32)
  if [[ " $PROXIES " == *" pentaflow "* ]]; then
    resolve_pentaflow
    [[ -n $PF_BIN ]] || PROXIES=${PROXIES//pentaflow/}
  fi
  local ports kinds=() kind proxy case round
  for case in $CASES; do kind=${case#*-}; [[ " ${kinds[*]} " == *" $kind "* ]] || kinds+=("$kind"); done
  read -r -a ports <<<"$(free_ports $((1 + 3 * ${#kinds[@]})))"
  PORT_BACKEND=${ports[0]}
  local i=1
  for kind in "${kinds[@]}"; do
    for proxy in pentaflow haproxy nginx; do PORT[$proxy-$kind]=${ports[i]}; i=$((i + 1)); done
  done
  start_nginx_backend "$WORK/backend" "$WORK/www" "$PORT_BACKEND"
  wait_url "http://127.0.0.1:$PORT_BACKEND$URL_PATH" "$WORK/www$URL_PATH" "$BACKEND_PID" ||
    die "back-end nginx did not start"
  for kind in "${kinds[@]}"; do
    for proxy in $PROXIES; do
      start_tls "$proxy" "$kind" || log "$proxy-$kind: skipped (did not serve)"
    done
  done
  # Unmeasured warm-up of every target.
  for kind in "${kinds[@]}"; do
    for proxy in $PROXIES; do
      [[ -n ${PID[$proxy-$kind]:-} ]] || continue
      "${LOAD_CPU[@]}" wrk -t1 -c"$CONNS" -d1s "https://127.0.0.1:${PORT[$proxy-$kind]}$URL_PATH" >/dev/null
    done
  done
  for ((round = 1; round <= RUNS; round++)); do
    for case in $CASES; do
      for proxy in $PROXIES; do
        wait_quiet
        measure "$case" "$proxy" "$round"
      done
    done
  done
  : >"$WORK/mem.tsv"
  if ((TLS_IDLE)); then
    for proxy in $PROXIES; do measure_idle_tls "$proxy"; done
  fi
  local stamp
  stamp=$(date -u +%Y-%m-%d-%H%M%S)
  {
    echo "# TLS termination side by side, $(date -u +'%Y-%m-%d %H:%M UTC')"
    echo
    echo "- machine: $(machine_line); load average before: $LOAD_BEFORE, after: $(cut -d' ' -f1-3 /proc/loadavg)"
    echo "- versions: $(nginx -v 2>&1 | sed 's/^nginx version: //'), $(haproxy -v | head -1 | cut -d' ' -f1-3), $(openssl version | cut -d' ' -f1-2), $(wrk -v 2>&1 | head -1 | cut -d' ' -f1-2 || true), pentaflow $PF_VERSION"
    echo "- certificates: ECDSA P-256 and RSA-2048, self-signed (\`openssl req -x509\`), the same files for all three; TLS 1.3 only; ticket keys: pentaflow one fixed key, nginx/HAProxy their own"
    echo "- 1 worker/thread per proxy; pinning: $PIN_NOTE; $RUNS rounds of ${DURATION} s, cases and proxies alternated; medians"
    echo "- full-*: \`wrk -t1 -c$CONNS -d${DURATION}s --latency -H 'Connection: close' https://127.0.0.1:PORT$URL_PATH\`; keepalive-*: the same without the header;"
    echo "  new-* / resumed-*: $STIME_CLIENTS x \`openssl s_time -connect 127.0.0.1:PORT -new|-reuse -www $URL_PATH -time $DURATION -tls1_3\` in parallel"
    echo "- idle TLS memory: $IDLE_CONNS connections (TLS 1.3, ALPN http/1.1, one request each, then idle), fresh ECDSA process per proxy"
    echo "- negotiated (openssl s_client):"
    sed 's/^/  - /' "$WORK/negotiated.txt"
  } >"$WORK/header.md"
  python3 "$HERE/suites.py" summary --suite tls --runs "$WORK/runs.tsv" --header "$WORK/header.md" \
    --quiet-pct "$QUIET_PCT" --mem "$WORK/mem.tsv" >"$OUT_DIR/tls-$stamp.md"
  copy_results "tls-$stamp" "$WORK/runs.tsv" "$WORK/header.md" "$WORK/negotiated.txt" "$WORK/mem.tsv"
  cat "$OUT_DIR/tls-$stamp.md"
  log "report: $OUT_DIR/tls-$stamp.md"
}

main "$@"
