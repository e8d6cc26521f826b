#!/usr/bin/env bash
# FastPath live (scripts/demo-cluster.sh: two `fastpath run --tap` nodes) side by side with the Linux kernel in the
# same topology (scripts/kernel-cluster.sh: veth + proxy ARP, Flannel-style vxlan, kube-proxy-style nftables DNAT),
# measured in one run, alternating between the two so machine noise hits both: ping round-trip time between pods
# (same node and across nodes) and iperf3 TCP throughput pod → pod and pod → ClusterIP (one backend on the other
# node). Prints a Markdown table for docs/BENCHMARKS.md.
#
#   scripts/bench-live.sh [ROUNDS]      (default 2 rounds; each iperf3 run lasts 5 s)
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
ROUNDS=${1:-2}
export FP_DEMO=fpb FP_KERNEL=fpbk FP_DEMO_DIR=/tmp/fpb
OUT=$(mktemp -d)
cleanup() { "$ROOT/scripts/demo-cluster.sh" down; "$ROOT/scripts/kernel-cluster.sh" down; rm -rf "$OUT"; }
trap cleanup EXIT
"$ROOT/scripts/demo-cluster.sh" up >/dev/null
"$ROOT/scripts/kernel-cluster.sh" up >/dev/null

# ping_avg PREFIX TARGET: average RTT in ms over 200 pings 10 ms apart (after one warm-up ping).
ping_avg() {
  ip netns exec "$1-client" ping -c 1 -W 2 "$2" >/dev/null
  ip netns exec "$1-client" ping -q -c 200 -i 0.01 -W 2 "$2" | awk -F'[/ ]' '/^rtt/ {print $8}'
}
# iperf PREFIX TARGET: Gbit/s received over 5 s.
iperf() {
  ip netns exec "$1-client" iperf3 -c "$2" -t 5 -J --connect-timeout 3000 |
    /usr/bin/python3 -c 'import json,sys; print("%.2f" % (json.load(sys.stdin)["end"]["sum_received"]["bits_per_second"] / 1e9))'
}

tests=("ping|same node|10.244.1.11" "ping|across nodes|10.244.2.11" "iperf|same node|10.244.1.11" "iperf|across nodes|10.244.2.11" "iperf|ClusterIP, across nodes|10.96.0.30")
for round in $(seq "$ROUNDS"); do
  for t in "${tests[@]}"; do
    IFS='|' read -r kind what target <<< "$t"
    for side in "$FP_DEMO" "$FP_KERNEL"; do
      if [ "$kind" = ping ]; then v=$(ping_avg "$side" "$target"); else v=$(iperf "$side" "$target"); fi
      echo "$v" >> "$OUT/$side-$kind-${what// /_}"
    done
  done
done

mean() { awk '{s += $1; n++} END {printf "%.3f", s / n}' "$1"; }
echo "| measurement | FastPath (TAP) | Linux kernel | kernel / FastPath |"
echo "|---|---:|---:|---:|"
for t in "${tests[@]}"; do
  IFS='|' read -r kind what target <<< "$t"
  f=$(mean "$OUT/$FP_DEMO-$kind-${what// /_}")
  k=$(mean "$OUT/$FP_KERNEL-$kind-${what// /_}")
  if [ "$kind" = ping ]; then
    echo "| ping RTT, $what ($target), ms | $f | $k | $(awk -v f="$f" -v k="$k" 'BEGIN {printf "%.2f", k / f}') |"
  else
    echo "| iperf3 TCP, $what ($target), Gbit/s | $f | $k | $(awk -v f="$f" -v k="$k" 'BEGIN {printf "%.2f", k / f}') |"
  fi
done
echo
echo "FastPath status lines during the run:"
tail -n 3 /tmp/fpb/node-a.log
