#!/usr/bin/env bash
# bench/cdn.sh: CDN rewriting side by side (issue 6, item 8): pentaflow's
# [service.cdn] against nginx's sub_filter making the same URL changes.
#
# Owns: a realistic HTML page (the blog fixture of crates/rewrite, its body
# repeated to ~BENCH_PAGE_KB), one shared nginx back-end serving it, one
# pentaflow process (services: plain, rewritten with cache_bytes = 0,
# rewritten with the cache) and one nginx process (plain, sub_filter), a check
# that both rewrite the page to the same bytes, alternated wrk runs, the
# criterion rewrite bench (MB/s per core), and the report bench/out/cdn-*.md.
# Cases: plain (page unrewritten), rewritten-uncached (pentaflow cache off;
# nginx sub_filter, which has no cache), rewritten-cached (pentaflow only).
# Must not: send traffic anywhere but 127.0.0.1, leave a process behind, or
# write outside its work directory and bench/out/ (criterion writes target/).
#
# Settings (environment): BENCH_RUNS=3, BENCH_DURATION=5 (s), BENCH_CONNS=50,
# BENCH_PAGE_KB=64, BENCH_CRITERION=1 (0 = skip the cargo bench; it is a
# release build), BENCH_QUIET_WAIT=0, BENCH_PIN=1, PENTAFLOW_BIN,
# BENCH_OUT=bench/out, BENCH_KEEP_WORK=1, BENCH_QUICK=1 (1 round of 2 s, no criterion),
# BENCH_CASES (a subset of the cases, e.g. "rewritten-uncached" while profiling).
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(dirname "$HERE")
# shellcheck source-path=SCRIPTDIR source=common.sh
source "$HERE/common.sh"
export PATH="$PATH:/usr/sbin:/sbin"

if [[ ${BENCH_QUICK:-0} == 1 ]]; then quick_runs=1 quick_dur=2 quick_crit=0
else quick_runs=3 quick_dur=5 quick_crit=1; fi
RUNS=${BENCH_RUNS:-$quick_runs}
DURATION=${BENCH_DURATION:-$quick_dur}
DURATION=${DURATION%s}
CONNS=${BENCH_CONNS:-50}
PAGE_KB=${BENCH_PAGE_KB:-64}
CRITERION=${BENCH_CRITERION:-$quick_crit}
OUT_DIR=${BENCH_OUT:-$HERE/out}
QUIET_WAIT=${BENCH_QUIET_WAIT:-0}
QUIET_PCT=25
MAXCONN=20000
# The page's path: relative URLs in it resolve against /blog/.
URL_PATH=/blog/page.html
# The site's host: pentaflow rewrites URLs of this host (site_hosts).
SITE_HOST=www.example.com
FIXTURE=$ROOT/crates/rewrite/tests/fixtures/blog.html
# The back-end's Cache-Control max-age for the page (nginx `expires`): longer
# than any run, so the cached case never sees an expired entry.
PAGE_MAX_AGE=1h
CASES=${BENCH_CASES:-"plain rewritten-uncached rewritten-cached"}

declare -A LIVE=() PORT=() TPID=()
WORK="" MADE_POLICY_RC=0

trap cleanup EXIT
trap 'exit 130' INT TERM

# make_page: the fixture with its <body> content repeated up to PAGE_KB.
make_page() {
  mkdir -p "$WORK/www/blog"
  python3 - "$FIXTURE" "$((PAGE_KB * 1024))" "$WORK/www$URL_PATH" <<'EOF'
import sys
text = open(sys.argv[1], encoding="utf-8").read()
head, tag, rest = text.partition('<body class="post">')
body, end, tail = rest.partition("</body>")
if not (tag and end):
    sys.exit("fixture has no <body class=\"post\">...</body>")
copies = max(1, -(-(int(sys.argv[2]) - len(head) - len(tail)) // len(body)))
open(sys.argv[3], "w", encoding="utf-8").write(head + tag + body * copies + end + tail)
EOF
  PAGE_BYTES=$(stat -c %s "$WORK/www$URL_PATH")
}

# fetch KEY: the page through one target, into $WORK/KEY.html.
fetch() {
  curl -fsS --max-time 5 -H "Host: $SITE_HOST" -o "$WORK/$1.html" \
    "http://127.0.0.1:${PORT[$1]}$URL_PATH"
}

start_targets() {
  local dir=$WORK/nginx i
  mkdir -p "$dir/tmp"
  render "$HERE/conf/cdn-nginx.conf" "$dir/nginx.conf" DIR="$dir" NOFILE="$NOFILE" \
    WORKER_CONNS=$((NOFILE - 100)) BACKEND_PORT="$PORT_BACKEND" \
    PORT_PLAIN="${PORT[plain:nginx]}" PORT_SUB="${PORT[rewritten-uncached:nginx]}"
  start_bg nginx "${PROXY_CPU[@]}" nginx -p "$dir" -e "$dir/error.log" -c "$dir/nginx.conf" \
    -g 'daemon off;'
  TPID[nginx]=$STARTED_PID
  if [[ -n $PF_BIN ]]; then
    dir=$WORK/pentaflow
    mkdir -p "$dir"
    render "$HERE/conf/cdn-pentaflow.toml" "$dir/pentaflow.toml" MAXCONN="$MAXCONN" \
      BACKEND_PORT="$PORT_BACKEND" PORT_PLAIN="${PORT[plain:pentaflow]}" \
      PORT_UNCACHED="${PORT[rewritten-uncached:pentaflow]}" \
      PORT_CACHED="${PORT[rewritten-cached:pentaflow]}"
    if "$PF_BIN" check --config "$dir/pentaflow.toml" >&2; then
      start_bg pentaflow env PENTAFLOW_WORKERS=1 "${PROXY_CPU[@]}" "$PF_BIN" serve \
        --config "$dir/pentaflow.toml" "${PF_ARGS[@]}"
      TPID[pentaflow]=$STARTED_PID
    fi
  fi
  # Up when every port answers (10 s).
  local key ok
  for ((i = 0; i < 100; i++)); do
    ok=1
    for key in "${!PORT[@]}"; do
      [[ $key == backend ]] && continue
      [[ -n ${TPID[${key#*:}]:-} ]] || continue
      fetch "$key" 2>/dev/null || ok=0
    done
    ((ok)) && return 0
    sleep 0.1
  done
  log "a target did not answer; logs:"
  tail -n 20 "$WORK"/*.log "$WORK"/nginx/error.log >&2 2>/dev/null || true
  die "targets did not start"
}

# check_outputs: what each target sent, for the header; both rewriters must
# produce the same bytes, or the comparison is not of the same work.
check_outputs() {
  local key n
  for key in $(printf '%s\n' "${!PORT[@]}" | sort); do
    [[ $key == backend || -z ${TPID[${key#*:}]:-} ]] && continue
    fetch "$key"
    n=$(grep -o 'cdn\.example\.net' "$WORK/$key.html" | wc -l || true)
    echo "  - $key: $(stat -c %s "$WORK/$key.html") B, $n URLs on cdn.example.net" >>"$WORK/outputs.txt"
  done
  if [[ -n ${TPID[pentaflow]:-} ]]; then
    if cmp -s "$WORK/rewritten-uncached:pentaflow.html" "$WORK/rewritten-uncached:nginx.html"; then
      SAME="yes: pentaflow's and sub_filter's rewritten pages are byte for byte the same"
    else
      SAME="NO: the rewritten pages differ (see the diff in the raw directory)"
      diff "$WORK/rewritten-uncached:pentaflow.html" "$WORK/rewritten-uncached:nginx.html" \
        >"$WORK/raw/rewrite.diff" || true
    fi
  fi
}

# criterion: the rewrite crate's bench, on the proxies' core once built.
run_criterion() {
  ((CRITERION)) || return 0
  log "criterion: cargo bench -p pentaflow-rewrite --bench rewrite (release build first)"
  if ! (cd "$ROOT" && cargo bench -p pentaflow-rewrite --bench rewrite --no-run >&2); then
    log "criterion: the build failed; skipped"
    return 0
  fi
  wait_quiet
  (cd "$ROOT" && "${PROXY_CPU[@]}" cargo bench -p pentaflow-rewrite --bench rewrite -- \
    --warm-up-time 1 --measurement-time 5 --noplot) >"$WORK/raw/criterion.txt" 2>&1 ||
    log "criterion: cargo bench failed; see raw/criterion.txt"
}

measure() {
  local case=$1 target=$2 round=$3 key=$1:$2 raw parsed tpids=() bpids=()
  [[ -n ${PORT[$key]:-} && -n ${TPID[$target]:-} ]] || return 0
    # shellcheck disable=SC2034  # read by timed_run (nameref)
    mapfile -t tpids < <(target_pids "${TPID[$target]}")
  # shellcheck disable=SC2034  # read by timed_run (nameref)
  mapfile -t bpids < <(target_pids "$BACKEND_PID")
  raw=$WORK/raw/$case-$target-$round.txt
  timed_run "$raw" tpids bpids "${LOAD_CPU[@]}" wrk -t1 -c"$CONNS" -d"${DURATION}s" --latency \
    -H "Host: $SITE_HOST" "http://127.0.0.1:${PORT[$key]}$URL_PATH"
  parsed=$(python3 "$HERE/suites.py" wrk "$raw") || parsed="0 - 1"
  read -r rate p99 errors <<<"$parsed"
  printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$case" "$target" "$round" "$rate" "$p99" \
    "$RUN_CPU" "$RUN_OTHER" "$errors" >>"$WORK/runs.tsv"
  log "round $round $case $target: $rate req/s, p99 $p99 ms, errors $errors," \
    "proxy CPU $RUN_CPU%, other $RUN_OTHER%"
}

main() {
  ensure_packages nginx wrk
  ulimit -n "$(ulimit -Hn)"
  NOFILE=$(ulimit -n)
  CLK_TCK=$(getconf CLK_TCK)
  LOAD_BEFORE=$(cut -d' ' -f1-3 /proc/loadavg)
  pin_cpus
  WORK=$(mktemp -d /tmp/pfbench-cdn.XXXXXX)
  chmod 755 "$WORK"
  mkdir -p "$WORK/raw" "$OUT_DIR"
  : >"$WORK/runs.tsv"
  : >"$WORK/outputs.txt"
  make_page
  resolve_pentaflow
  SAME="(pentaflow not run)"
  local ports round case target
  read -r -a ports <<<"$(free_ports 6)"
  PORT_BACKEND=${ports[0]} PORT[plain:pentaflow]=${ports[1]}
  PORT[rewritten-uncached:pentaflow]=${ports[2]} PORT[rewritten-cached:pentaflow]=${ports[3]}
  PORT[plain:nginx]=${ports[4]} PORT[rewritten-uncached:nginx]=${ports[5]}
  # Cacheable, as a site that wants its pages cached says so: pentaflow caches a
  # rewritten page only with an explicit lifetime and a validator (ETag here).
  start_nginx_backend "$WORK/backend" "$WORK/www" "$PORT_BACKEND" "expires $PAGE_MAX_AGE;"
  wait_url "http://127.0.0.1:$PORT_BACKEND$URL_PATH" "$WORK/www$URL_PATH" "$BACKEND_PID" ||
    die "back-end nginx did not start"
  start_targets
  check_outputs
  for case in $CASES; do
    for target in pentaflow nginx; do
      [[ -n ${PORT[$case:$target]:-} && -n ${TPID[$target]:-} ]] || continue
      "${LOAD_CPU[@]}" wrk -t1 -c"$CONNS" -d1s -H "Host: $SITE_HOST" \
        "http://127.0.0.1:${PORT[$case:$target]}$URL_PATH" >/dev/null
    done
  done
  for ((round = 1; round <= RUNS; round++)); do
    for case in $CASES; do
      for target in pentaflow nginx; do
        wait_quiet
        measure "$case" "$target" "$round"
      done
    done
  done
  for target in "${!TPID[@]}"; do stop_pid "${TPID[$target]}"; done
  stop_pid "$BACKEND_PID"
  run_criterion
  local stamp
  stamp=$(date -u +%Y-%m-%d-%H%M%S)
  {
    echo "# CDN rewriting side by side, $(date -u +'%Y-%m-%d %H:%M UTC')"
    echo
    echo "- machine: $(machine_line); load average before: $LOAD_BEFORE, after: $(cut -d' ' -f1-3 /proc/loadavg)"
    echo "- versions: $(nginx -v 2>&1 | sed 's/^nginx version: //'), $(wrk -v 2>&1 | head -1 | cut -d' ' -f1-2 || true), pentaflow $PF_VERSION"
    echo "- page: crates/rewrite/tests/fixtures/blog.html, body repeated: $PAGE_BYTES B, text/html, identity, \`Cache-Control: max-age\` ($PAGE_MAX_AGE) + ETag, from one shared nginx back-end (1 worker, keep-alive pools)"
    echo "- 1 worker per proxy; pinning: $PIN_NOTE; $RUNS rounds of ${DURATION} s, cases and proxies alternated; medians"
    echo "- load: \`wrk -t1 -c$CONNS -d${DURATION}s --latency -H 'Host: $SITE_HOST' http://127.0.0.1:PORT$URL_PATH\`"
    echo "- same rewriting: $SAME"
    echo "- what each target sent:"
    cat "$WORK/outputs.txt"
  } >"$WORK/header.md"
  local crit=()
  [[ -s $WORK/raw/criterion.txt ]] && crit=(--criterion "$WORK/raw/criterion.txt")
  python3 "$HERE/suites.py" summary --suite cdn --runs "$WORK/runs.tsv" --header "$WORK/header.md" \
    --quiet-pct "$QUIET_PCT" "${crit[@]}" >"$OUT_DIR/cdn-$stamp.md"
  copy_results "cdn-$stamp" "$WORK/runs.tsv" "$WORK/header.md" "$WORK"/*.html
  cat "$OUT_DIR/cdn-$stamp.md"
  log "report: $OUT_DIR/cdn-$stamp.md"
}

main "$@"
