#!/usr/bin/env bash
# FastPath live (scripts/demo-cluster.sh: two `fastpath run --tap` nodes, TAPs with offloads, `--workers 2`) side by
# side with the Linux kernel in the same topology (scripts/kernel-cluster.sh: veth + proxy ARP, Flannel-style vxlan,
# kube-proxy-style nftables DNAT), measured in one run, alternating between the two so machine noise hits both: ping
# round-trip time between pods (same node and across nodes), iperf3 TCP throughput pod → pod and pod → ClusterIP (one
# backend on the other node), 8 parallel streams across nodes, and a flood of 64-byte UDP datagrams pod → pod
# (datagrams per second received). Prints a Markdown table for docs/BENCHMARKS.md and writes the means as CSV to
# $FP_BENCH_CSV when set (bench/FastPath.Plots draws docs/plot-live.png from it). Beside the TAP cluster, the same demo
# with pods on veths made by fastpath-cni (FP_DEMO_PORTS=veth) is measured once per attach mode, AF_XDP, AF_PACKET
# (TPACKET_V3) and libpcap, each its own cluster ($FP_BENCH_PREFIX + x / v / p), in the same run.
#
#   scripts/bench-live.sh [ROUNDS]      (default 2 rounds; each iperf3 run lasts 5 s)
#   FP_BENCH_RUN_ARGS="--workers 1" scripts/bench-live.sh   (other `fastpath run` options for the FastPath side)
#   FP_BENCH_PREFIX=fpb (namespace prefix of every cluster), FP_BENCH_ATTACH="xdp packet pcap" (veth sides; "" for none)
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
ROUNDS=${1:-2}
B=${FP_BENCH_PREFIX:-fpb}
export FP_DEMO=$B FP_KERNEL=${B}k FP_DEMO_DIR=/tmp/$B
export FP_DEMO_RUN_ARGS=${FP_BENCH_RUN_ARGS:---workers 2 --busy-poll 20000}
ATTACH=${FP_BENCH_ATTACH-xdp packet pcap}
# side: prefix|column|FP_DEMO_PORTS|attach mode|run options (pcap has one queue: one worker)
SIDES=("$FP_DEMO|FastPath (TAP)|tap|auto|$FP_DEMO_RUN_ARGS")
for mode in $ATTACH; do
  case $mode in
    xdp) SIDES+=("${B}x|FastPath (veth, AF_XDP)|veth|xdp|") ;; # a veth has one queue: one worker
    packet) SIDES+=("${B}v|FastPath (veth, AF_PACKET)|veth|packet|$FP_DEMO_RUN_ARGS") ;;
    pcap) SIDES+=("${B}p|FastPath (veth, pcap)|veth|pcap|") ;;
  esac
done
OUT=$(mktemp -d)
demo() { # demo SIDE COMMAND
  local prefix label ports mode args
  IFS='|' read -r prefix label ports mode args <<< "$1"
  FP_DEMO=$prefix FP_DEMO_DIR=/tmp/$prefix FP_DEMO_PORTS=$ports FP_DEMO_ATTACH_MODE=$mode FP_DEMO_RUN_ARGS=$args \
    "$ROOT/scripts/demo-cluster.sh" "$2"
}
cleanup() { for side in "${SIDES[@]}"; do demo "$side" down; done; "$ROOT/scripts/kernel-cluster.sh" down; rm -rf "$OUT"; }
trap cleanup EXIT
for side in "${SIDES[@]}"; do demo "$side" up >/dev/null; done
"$ROOT/scripts/kernel-cluster.sh" up >/dev/null
PREFIXES=()
for side in "${SIDES[@]}"; do PREFIXES+=("${side%%|*}"); done
PREFIXES+=("$FP_KERNEL")

# ping_avg PREFIX TARGET: average RTT in ms over 200 pings 10 ms apart, after 50 warm-up pings (the first ones after a
# cluster comes up meet cold caches, neighbour and flow-steering tables, on both sides).
ping_avg() {
  ip netns exec "$1-client" ping -q -c 50 -i 0.01 -W 2 "$2" >/dev/null
  ip netns exec "$1-client" ping -q -c 200 -i 0.01 -W 2 "$2" | awk -F'[/ ]' '/^rtt/ {print $8}'
}
# iperf PREFIX TARGET [OPTIONS]: Gbit/s received over 5 s.
iperf() {
  local side=$1 target=$2; shift 2
  ip netns exec "$side-client" iperf3 -c "$target" -t 5 -J --connect-timeout 3000 "$@" |
    /usr/bin/python3 -c 'import json,sys; print("%.2f" % (json.load(sys.stdin)["end"]["sum_received"]["bits_per_second"] / 1e9))'
}
# udp_pps PREFIX TARGET: 64-byte UDP datagrams per second the server received over 5 s (iperf3 -u -b 0: as fast as
# the client can send).
udp_pps() {
  ip netns exec "$1-client" iperf3 -c "$2" -u -l 64 -b 0 -t 5 -J --connect-timeout 3000 |
    /usr/bin/python3 -c 'import json,sys; s=json.load(sys.stdin)["end"]["sum"]; print("%.0f" % ((s["packets"] - s["lost_packets"]) / s["seconds"]))'
}

tests=("ping|same node|10.244.1.11" "ping|across nodes|10.244.2.11" "iperf|same node|10.244.1.11" "iperf|across nodes|10.244.2.11"
       "iperf|ClusterIP, across nodes|10.96.0.30" "iperf8|8 streams, across nodes|10.244.2.11" "udp|64-byte UDP flood, same node|10.244.1.11")
for round in $(seq "$ROUNDS"); do
  for t in "${tests[@]}"; do
    IFS='|' read -r kind what target <<< "$t"
    for side in "${PREFIXES[@]}"; do
      case $kind in
        ping) v=$(ping_avg "$side" "$target") ;;
        iperf) v=$(iperf "$side" "$target") ;;
        iperf8) v=$(iperf "$side" "$target" -P 8) ;;
        udp) v=$(udp_pps "$side" "$target") ;;
      esac
      echo "$v" >> "$OUT/$side-$kind-${what// /_}"
    done
  done
done

mean() { awk '{s += $1; n++} END {printf "%.3f", s / n}' "$1"; }
header="| measurement |" rule="|---|"
for side in "${SIDES[@]}"; do IFS='|' read -r _ label _ <<< "$side"; header+=" $label |"; rule+="---:|"; done
echo "$header Linux kernel | FastPath (TAP) / kernel |"
echo "$rule---:|---:|"
[ -z "${FP_BENCH_CSV:-}" ] || echo "measurement,unit,fastpath,kernel" > "$FP_BENCH_CSV"
for t in "${tests[@]}"; do
  IFS='|' read -r kind what target <<< "$t"
  f=$(mean "$OUT/$FP_DEMO-$kind-${what// /_}")
  k=$(mean "$OUT/$FP_KERNEL-$kind-${what// /_}")
  attached=""
  for side in "${SIDES[@]:1}"; do attached+=" $(mean "$OUT/${side%%|*}-$kind-${what// /_}") |"; done
  case $kind in
    ping) label="ping RTT, $what ($target), ms"; unit=ms; ratio=$(awk -v f="$f" -v k="$k" 'BEGIN {printf "%.2f", f / k}') ;;
    udp) label="$what ($target), datagrams/s"; unit=pps; ratio=$(awk -v f="$f" -v k="$k" 'BEGIN {printf "%.2f", f / k}') ;;
    *) label="iperf3 TCP, $what ($target), Gbit/s"; unit=Gbit/s; ratio=$(awk -v f="$f" -v k="$k" 'BEGIN {printf "%.2f", f / k}') ;;
  esac
  echo "| $label | $f |$attached $k | $ratio |"
  [ -z "${FP_BENCH_CSV:-}" ] || echo "\"$label\",$unit,$f,$k" >> "$FP_BENCH_CSV"
done
echo
echo "FastPath side: fastpath run $FP_DEMO_RUN_ARGS; status lines during the run:"
tail -n 3 "/tmp/$FP_DEMO/node-a.log"
