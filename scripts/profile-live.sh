#!/usr/bin/env bash
# Where a live packet's time goes in FastPath: brings up the demo cluster (scripts/demo-cluster.sh) with the given
# `fastpath run` options, runs one iperf3 TCP stream client → web-a (same node) for 8 s, samples node-a's FastPath
# process with `perf record` for 4 s of it, and prints the throughput, the system calls per MB moved (strace -c over
# 2 s) and perf's samples grouped by scripts/perf-categories.py.
#
#   scripts/profile-live.sh "--offloads off"     # before: one read and one write per MTU-sized frame
#   scripts/profile-live.sh "--offloads on"      # after: 64 KB super-frames
#   FP_PROFILE_KEEP=FILE keeps perf's full report (dso, symbol) in FILE.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
export FP_DEMO=fpp FP_DEMO_DIR=/tmp/fpp FP_DEMO_RUN_ARGS="${1:-}"
command -v perf >/dev/null || { DEBIAN_FRONTEND=noninteractive apt-get install -y -qq linux-perf >/dev/null; }
command -v strace >/dev/null || { DEBIAN_FRONTEND=noninteractive apt-get install -y -qq strace >/dev/null; }
OUT=$(mktemp -d)
cleanup() { "$ROOT/scripts/demo-cluster.sh" down >/dev/null 2>&1 || true; [ -n "${FP_PROFILE_KEEP:-}" ] && cp "$OUT/perf.txt" "$FP_PROFILE_KEEP"; rm -rf "$OUT"; }
trap cleanup EXIT
dll=$ROOT/src/FastPath/bin/Release/net10.0/fastpath.dll
FASTPATH="env DOTNET_PerfMapEnabled=1 dotnet $dll" "$ROOT/scripts/demo-cluster.sh" up >/dev/null
pid=$(pgrep -f "fastpath.dll run .*--node node-a" | head -1)
ip netns exec "$FP_DEMO-client" iperf3 -c 10.244.1.11 -t 8 -J > "$OUT/iperf.json" &
sleep 1
strace -c -f -p "$pid" -o "$OUT/strace.txt" & st=$!
sleep 2
kill -INT $st; wait $st 2>/dev/null || true
perf record -F 2000 -g -o "$OUT/perf.data" -p "$pid" -- sleep 4 >/dev/null 2>&1
wait
gbps=$(/usr/bin/python3 -c 'import json,sys; print("%.2f" % (json.load(open(sys.argv[1]))["end"]["sum_received"]["bits_per_second"] / 1e9))' "$OUT/iperf.json")
calls=$(awk '/total/ {print $4}' "$OUT/strace.txt")
echo "run options: ${1:-(defaults)}; iperf3 TCP same node: $gbps Gbit/s (strace slows it while attached)"
echo "system calls in 2 s: $calls ($(awk -v c="$calls" -v g="$gbps" 'BEGIN {printf "%.1f", c / (g * 1e9 / 8 * 2 / 1e6)}') per MB at the unstraced rate)"
grep -E "readv?|writev?|poll" "$OUT/strace.txt" | awk '{print "  " $NF ": " $4}'
perf report -i "$OUT/perf.data" --no-children --sort dso,sym -g none --stdio 2>/dev/null > "$OUT/perf.txt"
echo "share of node-a's FastPath process samples:"
/usr/bin/python3 "$ROOT/scripts/perf-categories.py" "$OUT/perf.txt" | awk -F'\t' '{printf "  %-58s %5s %%\n", $1, $2}'
