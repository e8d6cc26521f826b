#!/usr/bin/env bash
# Runs the throughput benchmarks and regenerates docs/bench/ (raw numbers), docs/plot-*.png and the generated
# scenario table in docs/BENCHMARKS.md (between the "generated" markers).
#   scripts/benchmarks.sh          fastpath bench (all scenarios, 1 and 2 workers), Services sweep, Maglev stats
#   scripts/benchmarks.sh --full   also the BenchmarkDotNet conntrack suite (about 10 more minutes)
# DURATION=seconds per measurement (default 2). The machine is shared: run it when it is quiet, and compare numbers of
# one run only.
set -euo pipefail
cd "$(dirname "$0")/.."
DURATION=${DURATION:-2}
DATA=docs/bench
FP=(dotnet src/FastPath/bin/Release/net10.0/fastpath.dll)
mkdir -p "$DATA"

dotnet build FastPath.sln -c Release -nologo -v quiet -clp:ErrorsOnly

echo "== scenarios (RSS queues, 1 and 2 workers)"
"${FP[@]}" bench --workers 1 2 --duration "$DURATION" --json > "$DATA/scenarios-rss.json"
echo "== software dispatch (a port thread + SPSC rings)"
"${FP[@]}" bench -s pod-to-pod clusterip-established --workers 1 2 --dispatch software --duration "$DURATION" --json > "$DATA/scenarios-software.json"

echo "== Services sweep (clusterip-established, Maglev 251 slots so 100k Services fit in memory)"
rm -f "$DATA"/services-*.json
for s in 10 100 1000 10000 100000; do
  "${FP[@]}" bench -s clusterip-established --services "$s" --maglev-size 251 --duration "$DURATION" --json > "$DATA/services-$s.json"
done

echo "== Maglev distribution and disruption"
dotnet run -c Release --no-build --project bench/FastPath.Benchmarks -- maglev-stats > "$DATA/maglev.md"

if [[ "${1:-}" == "--full" ]]; then
  echo "== conntrack vs Dictionary / ConcurrentDictionary (BenchmarkDotNet)"
  dotnet run -c Release --no-build --project bench/FastPath.Benchmarks -- --filter '*ConntrackBenchmarks*' --job short --exporters csv
  dotnet run -c Release --no-build --project bench/FastPath.Plots -- import-conntrack \
    BenchmarkDotNet.Artifacts/results/FastPath.Benchmarks.ConntrackBenchmarks-report.csv "$DATA"
fi
# docs/bench/lpm.csv holds the LpmTable4 / rte_lpm figures of the LPM section (the rte_lpm harness needs DPDK):
# update it from a run of the commands given there.

echo "== plots"
dotnet run -c Release --no-build --project bench/FastPath.Plots -- "$DATA" docs
python3 - "$DATA/scenarios.md" docs/BENCHMARKS.md <<'PY'
import sys
table, doc = open(sys.argv[1]).read(), open(sys.argv[2]).read()
start, end = "<!-- generated: scripts/benchmarks.sh -->\n", "<!-- end generated -->"
a, b = doc.index(start) + len(start), doc.index(end)
open(sys.argv[2], "w").write(doc[:a] + table + doc[b:])
PY
echo "updated docs/BENCHMARKS.md and docs/plot-*.png"
