#!/usr/bin/env bash
# bench/failover_faults.sh: keepalived/VRRP under the faults of issue 17 items 11-12, in the
# same namespace lab as pentaflow's chaos tests, for BENCHMARKS.md's side-by-side table. Root.
#
# Owns: installing keepalived from Debian when missing, one lab (`pentaflow lab up --nodes 3`,
# its pentaflow nodes stopped with `lab kill` so only keepalived runs), keepalived (VRRPv3,
# state BACKUP + nopreempt, priorities 200/150/100, advert_int BENCH_FAULTS_ADVERT) in the three
# node namespaces holding 10.77.1.50, nftables faults on VRRP (IP protocol 112) in and out —
# 20 % and 40 % random loss on every node for BENCH_FAULTS_SECS, then the master and then a
# backup cut off for 3 s — and the report on stdout: takeovers ("Entering MASTER STATE" in
# keepalived's logs) per fault and, during a cut, the share of 0.1 s samples in which two nodes
# held the VIP.
#
# Must not: touch a lab it did not make, signal a PID it did not start, or leave a process or
# a lab behind (the exit trap stops keepalived by PID and takes the lab down).
#
# Usage: bench/failover_faults.sh      (PENTAFLOW_BIN=path to use a built binary)
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(dirname "$HERE")
ADVERT=${BENCH_FAULTS_ADVERT:-0.05}
SECS=${BENCH_FAULTS_SECS:-12}
VIP=10.77.1.50
BIN=${PENTAFLOW_BIN:-$ROOT/target/debug/pentaflow}

[[ $(id -u) == 0 ]] || { echo "bench/failover_faults.sh: needs root (namespaces)" >&2; exit 1; }
command -v keepalived >/dev/null || apt-get install -y keepalived >&2
command -v nft >/dev/null || apt-get install -y nftables >&2
[[ -x $BIN ]] || cargo build -p pentaflow --manifest-path "$ROOT/Cargo.toml" >&2

WORK=$(mktemp -d /tmp/pentaflow-faults.XXXXXX)
PREFIX=""
PIDS=()
cleanup() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  sleep 0.5
  [[ -n $PREFIX ]] && "$BIN" lab down "$PREFIX" >/dev/null 2>&1 || true
  rm -rf "$WORK"
}
trap cleanup EXIT

"$BIN" lab up --nodes 3 --webs 1 >"$WORK/up.txt"
PREFIX=$(grep -oP 'pentaflow lab down \K\S+' "$WORK/up.txt")
for n in node1 node2 node3; do "$BIN" lab kill --lab "$PREFIX" "$n" >/dev/null; done

declare -A PRIO=([1]=200 [2]=150 [3]=100)
for i in 1 2 3; do
  cat >"$WORK/ka$i.conf" <<EOF
global_defs {
  router_id node$i-faults
  vrrp_version 3
}
vrrp_instance faults {
  state BACKUP
  nopreempt
  interface eth0
  virtual_router_id 77
  priority ${PRIO[$i]}
  advert_int $ADVERT
  virtual_ipaddress {
    $VIP/32 dev eth0
  }
}
EOF
  ip netns exec "$PREFIX-node$i" keepalived -n -P -l -D -f "$WORK/ka$i.conf" \
    -p "$WORK/ka$i.pid" -r "$WORK/ka$i.vpid" >"$WORK/ka$i.log" 2>&1 &
  PIDS+=($!)
done
sleep 4

takeovers() { cat "$WORK"/ka*.log | grep -c "Entering MASTER" || true; }
holders() {
  local c=0 i
  for i in 1 2 3; do
    c=$((c + $(ip netns exec "$PREFIX-node$i" ip -4 addr show dev eth0 | grep -c "$VIP" || true)))
  done
  echo "$c"
}
# fault NODE RULE: VRRP in and out of NODE matched by RULE (`drop`, or a numgen drop).
fault() {
  printf 'table inet pffaults {\n chain in { type filter hook input priority 0; meta l4proto vrrp %s; }\n chain out { type filter hook output priority 0; meta l4proto vrrp %s; }\n}\n' \
    "$2" "$2" >"$WORK/rule.nft"
  ip netns exec "$PREFIX-node$1" nft -f "$WORK/rule.nft"
}
unfault() { ip netns exec "$PREFIX-node$1" nft delete table inet pffaults; }

echo "keepalived $(keepalived --version 2>&1 | head -1 | cut -d' ' -f2), advert_int $ADVERT s, 3 nodes"
for pct in 20 40; do
  before=$(takeovers)
  for i in 1 2 3; do fault "$i" "numgen random mod 100 < $pct drop"; done
  sleep "$SECS"
  for i in 1 2 3; do unfault "$i"; done
  sleep 2
  echo "$pct % VRRP loss for $SECS s: $(($(takeovers) - before)) takeovers; VIP holders after: $(holders)"
done
for who in "1 master" "3 backup"; do
  set -- $who
  before=$(takeovers) both=0
  fault "$1" drop
  for _ in $(seq 30); do
    [[ $(holders) -ge 2 ]] && both=$((both + 1))
    sleep 0.1
  done
  unfault "$1"
  sleep 2
  echo "$2 node$1 cut off for 3 s: two VIP holders in $both of 30 samples; $(($(takeovers) - before)) takeovers"
done
