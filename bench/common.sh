# bench/common.sh: helpers shared by every bench script (sourced, not run).
# shellcheck shell=bash disable=SC2034  # globals set here are read by the scripts that source it
#
# Owns: logging, starting/stopping our own processes by PID, free loopback
# ports, config templates, CPU accounting from /proc (ours, the machine's,
# "other"), and waiting for a quiet machine. Must not: start anything itself
# or signal a PID it was not given. The caller declares LIVE (PID -> name),
# WORK, MADE_POLICY_RC, CLK_TCK, QUIET_WAIT and QUIET_PCT before using them.

log() { printf '[bench %s] %s\n' "$(date -u +%H:%M:%S)" "$*" >&2; }
die() { log "error: $*"; exit 1; }

# Ends one process we started: TERM, up to 5 s of grace, then KILL; reaps it
# so its PID can never be signalled again after reuse.
stop_pid() {
  local pid=$1 i
  kill -TERM "$pid" 2>/dev/null || true
  for ((i = 0; i < 50; i++)); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  kill -KILL "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
  unset "LIVE[$pid]"
}

# ensure_packages TOOL...: installs the missing tools (the Debian package has
# the tool's name); `apt-get update` only when something is missing.
ensure_packages() {
  local need=() tool
  for tool in "$@"; do command -v "$tool" >/dev/null || need+=("$tool"); done
  ((${#need[@]})) || return 0
  [[ $(id -u) == 0 ]] || die "missing ${need[*]}: run as root so they can be installed"
  # Debian starts a freshly installed service on port 80; we want none running.
  if [[ ! -e /usr/sbin/policy-rc.d ]]; then
    printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d
    chmod +x /usr/sbin/policy-rc.d
    MADE_POLICY_RC=1
  fi
  log "installing ${need[*]} from Debian"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" >&2
}

# Prints N free loopback ports below the ephemeral range, so the thousands of
# client connections of the memory test can never collide with a listener.
free_ports() {
  python3 - "$1" <<'EOF'
import random, socket, sys
low = int(open("/proc/sys/net/ipv4/ip_local_port_range").read().split()[0])
ports, rng = [], random.Random()
while len(ports) < int(sys.argv[1]):
    port = rng.randrange(10000, low)
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            continue
    if port not in ports:
        ports.append(port)
print(*ports)
EOF
}

# render TEMPLATE OUT KEY=VALUE...: fills @KEY@ placeholders.
render() {
  local tmpl=$1 out=$2 kv
  shift 2
  local args=()
  for kv in "$@"; do args+=(-e "s|@${kv%%=*}@|${kv#*=}|g"); done
  sed "${args[@]}" "$tmpl" >"$out"
  # No `grep -q` at the end of a pipe: it would exit early, SIGPIPE the first
  # command, and pipefail would turn a match into a non-match.
  if sed '/^ *#/d' "$out" | grep '@[A-Z_]*@' >/dev/null; then die "unfilled placeholder in $out"; fi
}

# alive PID: running, not merely an exited child waiting to be reaped.
alive() {
  local state
  state=$(sed 's/^.*) //' "/proc/$1/stat" 2>/dev/null | cut -d' ' -f1) || return 1
  [[ -n $state && $state != Z ]]
}

# The PIDs whose CPU and memory count for a target: nginx master + workers.
target_pids() {
  local pid=$1
  echo "$pid"
  # The kernel lists children space-separated on one line.
  tr -s ' ' '\n' 2>/dev/null <"/proc/$pid/task/$pid/children" | grep . || true
}

# Sum of user+system clock ticks of the given PIDs (fields 14 and 15).
cpu_ticks() {
  local total=0 pid t
  for pid in "$@"; do
    t=$(sed 's/^.*) //' "/proc/$pid/stat" | awk '{print $12 + $13}')
    total=$((total + t))
  done
  echo "$total"
}

# User and system clock ticks of the given PIDs, apart ("USER SYS"): where a
# proxy spends its time (its own code, or the kernel's socket work for it).
cpu_split() {
  local user=0 sys=0 pid u s
  for pid in "$@"; do
    read -r u s < <(sed 's/^.*) //' "/proc/$pid/stat" | awk '{print $12, $13}')
    user=$((user + u)) sys=$((sys + s))
  done
  echo "$user $sys"
}

# Busy clock ticks of the whole machine, all CPUs (/proc/stat: user, nice,
# system, irq, softirq, steal). irq and softirq belong in it: this kernel
# charges softirq work (most of loopback TCP) to the process it interrupted,
# so it is in our processes' ticks too (measured: without it "other" < 0).
machine_busy() { awk '/^cpu / {print $2 + $3 + $4 + $7 + $8 + $9; exit}' /proc/stat; }

# Clock ticks used by this shell's reaped children (wrk, once it has exited),
# from a `times` report. `times` itself must run in this shell: in a command
# substitution it would report the subshell's (empty) children.
children_ticks() {
  awk -v hz="$CLK_TCK" 'NR == 2 {
    split($1, u, /[ms]/); split($2, s, /[ms]/)
    printf "%d", (u[1] * 60 + u[2] + s[1] * 60 + s[2]) * hz }' "$1"
}

# percent PID_TICKS T0 T1: ticks over the wall time, as % of one core.
percent() {
  awk -v d="$1" -v hz="$CLK_TCK" -v t0="$2" -v t1="$3" \
    'BEGIN {p = 100 * d / hz / (t1 - t0); printf "%.1f", p < 0 ? 0 : p}'
}

# wait_quiet: before a run, waits (at most BENCH_QUIET_WAIT seconds) until
# the rest of the machine uses under QUIET_PCT of one core over one second;
# between runs our own processes are idle, so whatever is busy is a neighbour.
wait_quiet() {
  local deadline=$((SECONDS + QUIET_WAIT)) m0 m1 busy
  while ((SECONDS < deadline)); do
    m0=$(machine_busy)
    sleep 1
    m1=$(machine_busy)
    busy=$(((m1 - m0) * 100 / CLK_TCK))
    ((busy < QUIET_PCT)) && return 0
  done
  ((QUIET_WAIT == 0)) || log "machine still busy (${busy}% of a core used by others); running anyway"
}

# wait_url URL FILE PID [CURL_ARGS...]: until URL serves FILE byte for byte
# (10 s), while PID is alive.
wait_url() {
  local url=$1 file=$2 pid=$3 i
  shift 3
  for ((i = 0; i < 100; i++)); do
    alive "$pid" || return 1
    if curl -fsS --max-time 1 "$@" -o "$WORK/probe" "$url" 2>/dev/null &&
      cmp -s "$WORK/probe" "$file"; then return 0; fi
    sleep 0.1
  done
  return 1
}

# start_bg NAME CMD...: starts CMD in the background, output appended to
# $WORK/NAME.log, and records its PID in LIVE; the PID is in STARTED_PID.
start_bg() {
  local name=$1
  shift
  "$@" >>"$WORK/$name.log" 2>&1 &
  STARTED_PID=$!
  # shellcheck disable=SC2004  # LIVE is associative: the key must be the expanded PID
  LIVE[$STARTED_PID]=$name
}

# start_nginx_backend DIR ROOT PORT [DIRECTIVE]: one nginx worker on CPU 0
# serving ROOT (bench/conf/backend-nginx.conf, DIRECTIVE added to its server
# block); its PID is in BACKEND_PID.
start_nginx_backend() {
  local dir=$1 root=$2 port=$3 extra=${4:-}
  mkdir -p "$dir/tmp"
  render "$HERE/conf/backend-nginx.conf" "$dir/nginx.conf" DIR="$dir" ROOT="$root" \
    PORT="$port" NOFILE="$NOFILE" WORKER_CONNS=$((NOFILE - 100)) SERVER_EXTRA="$extra" WORKERS=1
  start_bg backend "${LOAD_CPU[@]}" nginx -p "$dir" -e "$dir/error.log" -c "$dir/nginx.conf" \
    -g 'daemon off;'
  BACKEND_PID=$STARTED_PID
}

# resolve_pentaflow: sets PF_BIN (PENTAFLOW_BIN, else target/release/pentaflow,
# else a release build), PF_ARGS (--workers 1 when the binary has it) and
# PF_VERSION; PF_BIN stays empty when there is no usable binary.
resolve_pentaflow() {
  PF_BIN=${PENTAFLOW_BIN:-} PF_ARGS=() PF_VERSION="(not run)"
  local built=${CARGO_TARGET_DIR:-$ROOT/target}/release/pentaflow
  if [[ -z $PF_BIN && -x $built ]]; then PF_BIN=$built; fi
  if [[ -z $PF_BIN ]]; then
    log "building pentaflow: cargo build --release -p pentaflow"
    if (cd "$ROOT" && cargo build --release -p pentaflow >&2); then PF_BIN=$built; fi
  fi
  if [[ -z $PF_BIN || ! -x $PF_BIN ]]; then
    log "pentaflow: no usable binary (${PF_BIN:-none}); its rows are skipped"
    PF_BIN=""
    return 0
  fi
  if "$PF_BIN" serve --help 2>&1 | grep -- '--workers' >/dev/null; then PF_ARGS=(--workers 1); fi
  PF_VERSION="$("$PF_BIN" --version 2>/dev/null | head -1 | sed 's/^pentaflow //' || true) (tree $(git -C "$ROOT" describe --always --dirty 2>/dev/null || echo 'not committed yet'))"
}

# pin_cpus: LOAD_CPU / PROXY_CPU prefixes (taskset) and PIN_NOTE, as run.sh
# does: the server under test alone on CPU 1, load and back-end on CPU 0.
pin_cpus() {
  LOAD_CPU=() PROXY_CPU=() PIN_NOTE="none"
  if [[ ${BENCH_PIN:-1} == 1 ]] && (($(nproc) >= 2)); then
    LOAD_CPU=(taskset -c 0) PROXY_CPU=(taskset -c 1)
    PIN_NOTE="server under test on CPU 1; back-end and load generator on CPU 0"
  fi
}

# timed_run OUT TARGET_PIDS_VAR EXCLUDE_PIDS_VAR CMD...: runs the load
# generator CMD (stdout and stderr to OUT) and sets RUN_WALL (s), RUN_CPU (%
# of one core used by the target's PIDs) and RUN_OTHER (% of one core used by
# every process that is neither the target, the excluded PIDs (back-end) nor
# CMD: a busy neighbour). RUN_RC is CMD's exit status. Every counter is read
# inside [t0, t1], so no share can exceed its true value.
timed_run() {
  local out=$1 t0 t1 c0 c1 x0 x1 m0 m1 w0 w1
  local -n _target=$2 _exclude=$3
  shift 3
  t0=$EPOCHREALTIME
  c0=$(cpu_ticks "${_target[@]}") x0=$(cpu_ticks "${_exclude[@]}") m0=$(machine_busy)
  times >"$WORK/times0"
  RUN_RC=0
  "$@" >"$out" 2>&1 || RUN_RC=$?
  times >"$WORK/times1"
  c1=$(cpu_ticks "${_target[@]}") x1=$(cpu_ticks "${_exclude[@]}") m1=$(machine_busy)
  t1=$EPOCHREALTIME
  w0=$(children_ticks "$WORK/times0") w1=$(children_ticks "$WORK/times1")
  RUN_WALL=$(awk -v a="$t0" -v b="$t1" 'BEGIN {printf "%.3f", b - a}')
  RUN_CPU=$(percent $((c1 - c0)) "$t0" "$t1")
  RUN_OTHER=$(percent $((m1 - m0 - (c1 - c0) - (x1 - x0) - (w1 - w0))) "$t0" "$t1")
}

# copy_results STAMP FILES...: the raw outputs, logs and rendered configs of a
# run into $OUT_DIR/raw-STAMP, so every number can be checked later.
copy_results() {
  local dest=$OUT_DIR/raw-$1
  shift
  mkdir -p "$dest"
  cp -r "$WORK/raw/." "$dest/"
  cp "$@" "$dest/" 2>/dev/null || true
  find "$WORK" -maxdepth 2 \( -name '*.conf' -o -name '*.cfg' -o -name '*.toml' -o -name '*.log' \) \
    -exec sh -c 'd=$(dirname "$1"); if [ "$d" = "$3" ]; then cp "$1" "$2/"; else
      cp "$1" "$2/$(basename "$d")-$(basename "$1")"; fi' _ {} "$dest" "$WORK" \;
}

# machine_line: the machine, for report headers.
machine_line() {
  echo "$(nproc) cores ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)), $(free -g | awk '/^Mem:/ {print $2}') GiB, kernel $(uname -r)"
}

# busy_sample: % of one core the whole machine used over the next second
# (before a run, when none of ours is working: the neighbours' load).
busy_sample() {
  local m0 m1
  m0=$(machine_busy)
  sleep 1
  m1=$(machine_busy)
  echo $(((m1 - m0) * 100 / CLK_TCK))
}

# cleanup: stop every process a script recorded in LIVE, undo the policy-rc.d it made, and
# remove its WORK directory (each script declares LIVE, WORK and MADE_POLICY_RC).
cleanup() {
  local pid
  for pid in "${!LIVE[@]}"; do stop_pid "$pid"; done
  if [[ ${MADE_POLICY_RC:-0} == 1 ]]; then rm -f /usr/sbin/policy-rc.d; fi
  if [[ -n ${WORK:-} && ${BENCH_KEEP_WORK:-0} != 1 ]]; then rm -rf "$WORK"; fi
}
