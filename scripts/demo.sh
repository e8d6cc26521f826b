#!/usr/bin/env bash
# The main job: replay the bundled demo capture through the bundled demo cluster (node-a) and print what happened.
# Outputs land in ./replay-out (one pcap per egress port, drops.jsonl, summary.json).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
build_log=$(mktemp)
dotnet build src/FastPath/FastPath.csproj -c Release -nologo -v quiet -clp:ErrorsOnly > "$build_log" 2>&1 || { cat "$build_log"; exit 1; }
rm -f "$build_log"
dotnet src/FastPath/bin/Release/net10.0/fastpath.dll replay pcaps/demo/demo.pcapng \
  --cluster pcaps/demo/cluster --node node-a --out replay-out "$@"
