#!/usr/bin/env bash
# bench/l4.sh: the L4 scheduler and the whole array (issue 4, item 8). Root.
#
# Owns: (1) packets/s through the AF_PACKET and the XDP scheduler against the kernel
# forwarding the same packets on the same lab topology, in one run each, by
# the l4_pps example of crates/lab (`cargo build --release -p pentaflow-lab
# --example l4_pps`; this script only runs it, BENCH_RUNS times); (2)
# requests/s through a whole array (`pentaflow lab up --nodes 3`) against one
# node alone (`--nodes 1`), the same 3 web servers, wrk from the client
# namespace, alternated; and the report bench/out/l4-*.md.
# Must not: send traffic outside the lab's namespaces, touch a lab it did not
# make (every lab it makes is torn down by its own prefix, also on failure),
# or leave a process behind.
#
# Settings (environment): BENCH_RUNS=3, BENCH_L4_SECS=3 (seconds per l4_pps
# mode), BENCH_DURATION=5 (s per wrk run), BENCH_CONNS=50, BENCH_WEBS=3,
# BENCH_L4_CASES="pps http", BENCH_QUIET_WAIT=0, PENTAFLOW_BIN, L4_PPS_BIN
# (default target/release/examples/l4_pps, built when missing),
# BENCH_OUT=bench/out, BENCH_KEEP_WORK=1, BENCH_QUICK=1 (1 round, shorter).
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(dirname "$HERE")
# shellcheck source-path=SCRIPTDIR source=common.sh
source "$HERE/common.sh"
export PATH="$PATH:/usr/sbin:/sbin"

if [[ ${BENCH_QUICK:-0} == 1 ]]; then quick_runs=1 quick_dur=2 quick_secs=1
else quick_runs=3 quick_dur=5 quick_secs=3; fi
RUNS=${BENCH_RUNS:-$quick_runs}
DURATION=${BENCH_DURATION:-$quick_dur}
DURATION=${DURATION%s}
L4_SECS=${BENCH_L4_SECS:-$quick_secs}
CONNS=${BENCH_CONNS:-50}
WEBS=${BENCH_WEBS:-3}
CASES=${BENCH_L4_CASES:-pps http}
OUT_DIR=${BENCH_OUT:-$HERE/out}
QUIET_WAIT=${BENCH_QUIET_WAIT:-0}
QUIET_PCT=25
# Where the lab crate keeps one <prefix>.json per lab (with its owner's PID).
LAB_STATE_DIR=/run/pentaflow-lab
# The address every lab array serves on (lab crate: the VIP, port 80).
LAB_URL_PATH=/

declare -A LIVE=()
declare -A LABS=() # prefix of every lab this script made and has not torn down
WORK="" MADE_POLICY_RC=0

cleanup() {
  local pid prefix
  for pid in "${!LIVE[@]}"; do stop_pid "$pid"; done
  for prefix in "${!LABS[@]}"; do lab_down "$prefix"; done
  if [[ $MADE_POLICY_RC == 1 ]]; then rm -f /usr/sbin/policy-rc.d; fi
  if [[ -n $WORK && ${BENCH_KEEP_WORK:-0} != 1 ]]; then rm -rf "$WORK"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

lab_down() {
  "$PF_BIN" lab down "$1" >&2 || log "lab down $1 failed"
  unset "LABS[$1]"
}

# labs_owned_by PID: prefixes of labs whose state names PID as their owner
# (the l4_pps example's lab, should it have been killed before its teardown).
labs_owned_by() {
  python3 - "$LAB_STATE_DIR" "$1" <<'EOF'
import glob, json, os, sys
for path in glob.glob(os.path.join(sys.argv[1], "*.json")):
    try:
        state = json.load(open(path))
    except (OSError, ValueError):
        continue
    if str(state.get("owner_pid")) == sys.argv[2]:
        print(state["prefix"])
EOF
}

# l4_pps_bounded: the example in the background (its PID is needed to find
# its lab if it dies before tearing the lab down), killed after a deadline.
l4_pps_bounded() {
  local deadline=$((SECONDS + L4_SECS * 2 + 60)) rc=0 prefix
  "$L4_BIN" "$L4_SECS" &
  L4_PID=$!
  LIVE[$L4_PID]=l4_pps
  while alive "$L4_PID" && ((SECONDS < deadline)); do sleep 0.2; done
  alive "$L4_PID" && log "l4_pps still running after its deadline; stopping it"
  # stop_pid reaps it; its exit status is lost, so take it first when done.
  if ! alive "$L4_PID"; then wait "$L4_PID" || rc=$?; unset "LIVE[$L4_PID]"; else stop_pid "$L4_PID"; rc=124; fi
  for prefix in $(labs_owned_by "$L4_PID"); do
    log "l4_pps left lab $prefix behind; tearing it down"
    lab_down "$prefix"
  done
  return "$rc"
}

# l4_pps_run ROUND: one run of the example (kernel, then scheduler).
l4_pps_run() {
  local round=$1
  # shellcheck disable=SC2034  # `none` is read by timed_run (nameref)
  local raw=$WORK/raw/pps-$round.txt none=() parsed kernel sched per_cpu cpu noise
  local k_lost s_lost xdp x_lost x_ns k_busy s_busy x_busy
  # "other" during the run would count the kernel's forwarding work (softirq
  # threads are not our children): the neighbours are sampled just before.
  noise=$(busy_sample)
  timed_run "$raw" none none l4_pps_bounded
  if ((RUN_RC != 0)); then log "l4_pps exited with $RUN_RC; see $raw"; return 0; fi
  parsed=$(python3 "$HERE/suites.py" l4pps --secs "$L4_SECS" "$raw") || { log "l4_pps: unparsable output"; return 0; }
  read -r kernel sched per_cpu k_lost s_lost xdp x_lost x_ns k_busy s_busy x_busy <<<"$parsed"
  # The scheduler thread's CPU over the run, % of one core: pps / (frames per CPU-s).
  cpu=$(awk -v r="$sched" -v p="$per_cpu" 'BEGIN {if (p > 0) printf "%.1f", 100 * r / p; else print "-"}')
  printf 'pps\tkernel\t%s\t%s\t-\t-\t%s\t%s\n' "$round" "$kernel" "$noise" "$k_lost" >>"$WORK/runs.tsv"
  printf 'pps\tscheduler\t%s\t%s\t-\t%s\t%s\t%s\n' "$round" "$sched" "$cpu" "$noise" "$s_lost" \
    >>"$WORK/runs.tsv"
  # The XDP program runs in softirq context: no thread CPU to show (its ns per packet and
  # the whole machine's frames per busy CPU-second are in the log and the raw output).
  if [[ $xdp != - ]]; then
    printf 'pps\txdp\t%s\t%s\t-\t-\t%s\t%s\n' "$round" "$xdp" "$noise" "$x_lost" >>"$WORK/runs.tsv"
  fi
  log "round $round pps: kernel $kernel/s (lost $k_lost), scheduler $sched/s (lost $s_lost;" \
    "$per_cpu frames per CPU-s), XDP $xdp/s (lost $x_lost; $x_ns ns per packet in the program);" \
    "frames per busy machine CPU-s: kernel $k_busy, AF_PACKET $s_busy, XDP $x_busy;" \
    "neighbours just before: $noise% of a core"
}

# http_run TARGET ROUND: a fresh lab (array-3: 3 nodes, node-1: 1 node), wrk
# from client1 to the VIP, the lab torn down again.
http_run() {
  local target=$1 round=$2 nodes prefix raw parsed tpids=() bpids=() vip
  nodes=${target#*-}
  "$PF_BIN" lab up --nodes "$nodes" --webs "$WEBS" >"$WORK/up.txt" 2>&1 || {
    log "lab up --nodes $nodes failed:"; cat "$WORK/up.txt" >&2; return 0; }
  prefix=$(sed -n 's/^  down: *pentaflow lab down \(pf[0-9a-f]*\)$/\1/p' "$WORK/up.txt")
  [[ -n $prefix ]] || die "no lab prefix in the output of lab up"
  LABS[$prefix]=1
  vip=$(sed -n 's/^lab [^ ]* (VIP \([0-9.]*\))$/\1/p' "$WORK/up.txt" | head -1)
  "$PF_BIN" lab status "$prefix" >"$WORK/status.txt"
    # shellcheck disable=SC2034  # read by timed_run (nameref)
    mapfile -t tpids < <(awk '$1 ~ /^node/ && $2 == "pid" {print $3}' "$WORK/status.txt")
  # shellcheck disable=SC2034  # read by timed_run (nameref)
  mapfile -t bpids < <(awk '$1 ~ /^web/ && $2 == "pid" {print $3}' "$WORK/status.txt")
  # Warm-up: pools to the web servers, the bucket table's first assignments.
  "$PF_BIN" lab exec --lab "$prefix" client1 -- wrk -t1 -c"$CONNS" -d1s "http://$vip$LAB_URL_PATH" \
    >/dev/null 2>&1 || true
  wait_quiet
  raw=$WORK/raw/http-$target-$round.txt
  timed_run "$raw" tpids bpids "$PF_BIN" lab exec --lab "$prefix" client1 -- \
    wrk -t1 -c"$CONNS" -d"${DURATION}s" --latency "http://$vip$LAB_URL_PATH"
  lab_down "$prefix"
  parsed=$(python3 "$HERE/suites.py" wrk "$raw") || parsed="0 - 1"
  read -r rate p99 errors <<<"$parsed"
  printf 'http\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$target" "$round" "$rate" "$p99" "$RUN_CPU" \
    "$RUN_OTHER" "$errors" >>"$WORK/runs.tsv"
  log "round $round http $target: $rate req/s, p99 $p99 ms, errors $errors," \
    "pentaflow CPU (all nodes) $RUN_CPU%, other $RUN_OTHER%"
}

main() {
  [[ $(id -u) == 0 ]] || die "bench/l4.sh needs root (network namespaces, AF_PACKET)"
  ensure_packages wrk nft
  CLK_TCK=$(getconf CLK_TCK)
  LOAD_BEFORE=$(cut -d' ' -f1-3 /proc/loadavg)
  WORK=$(mktemp -d /tmp/pfbench-l4.XXXXXX)
  mkdir -p "$WORK/raw" "$OUT_DIR"
  : >"$WORK/runs.tsv"
  resolve_pentaflow
  [[ -n $PF_BIN ]] || die "pentaflow binary needed (lab verbs)"
  L4_BIN=${L4_PPS_BIN:-${CARGO_TARGET_DIR:-$ROOT/target}/release/examples/l4_pps}
  if [[ " $CASES " == *" pps "* && ! -x $L4_BIN ]]; then
    log "building: cargo build --release -p pentaflow-lab --example l4_pps"
    (cd "$ROOT" && cargo build --release -p pentaflow-lab --example l4_pps >&2) ||
      die "l4_pps did not build"
  fi
  local round target
  for ((round = 1; round <= RUNS; round++)); do
    if [[ " $CASES " == *" pps "* ]]; then wait_quiet; l4_pps_run "$round"; fi
    if [[ " $CASES " == *" http "* ]]; then
      for target in array-3 node-1; do http_run "$target" "$round"; done
    fi
  done
  local stamp
  stamp=$(date -u +%Y-%m-%d-%H%M%S)
  {
    echo "# L4 scheduler and array side by side, $(date -u +'%Y-%m-%d %H:%M UTC')"
    echo
    echo "- machine: $(machine_line); load average before: $LOAD_BEFORE, after: $(cut -d' ' -f1-3 /proc/loadavg)"
    echo "- versions: pentaflow $PF_VERSION, $(wrk -v 2>&1 | head -1 | cut -d' ' -f1-2 || true); $RUNS rounds; no pinning (the lab's namespaces share both cores)"
    echo "- pps: \`$L4_BIN $L4_SECS\` (crates/lab/examples/l4_pps.rs): UDP 64-byte frames from client1, 64 source ports, through the router to node1, which forwards to node2/node3 as the kernel (IP forwarding), then as the pentaflow scheduler (AF_PACKET, MAC rewrite, node1 weight 0), then as the XDP scheduler (data_plane = xdp, generic mode on veth); counted by nftables at node2/node3 ingress. rate = delivered frames/s; CPU % = the scheduler thread; errors = frames sent but not delivered; other CPU % = the machine's load in the second before the run (during it, the kernel's forwarding threads would count)"
    echo "- http: \`pentaflow lab up --nodes 3|1 --webs $WEBS\`, then \`pentaflow lab exec client1 -- wrk -t1 -c$CONNS -d${DURATION}s --latency http://VIP$LAB_URL_PATH\` (python3 web servers of the lab); a fresh lab per run; CPU % = every node's pentaflow together; other = neither pentaflow, the web servers nor wrk"
  } >"$WORK/header.md"
  python3 "$HERE/suites.py" summary --suite l4 --runs "$WORK/runs.tsv" --header "$WORK/header.md" \
    --quiet-pct "$QUIET_PCT" >"$OUT_DIR/l4-$stamp.md"
  copy_results "l4-$stamp" "$WORK/runs.tsv" "$WORK/header.md"
  cat "$OUT_DIR/l4-$stamp.md"
  log "report: $OUT_DIR/l4-$stamp.md"
}

main "$@"
