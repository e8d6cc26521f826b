#!/usr/bin/env bash
# Fuzzes the packet parser, the whole pipeline from raw frames and the manifest loader with AFL++ through SharpFuzz,
# for a bounded time per target (not part of scripts/test.sh). Usage: scripts/fuzz.sh [SECONDS_PER_TARGET] [TARGET...]
# Seeds come from pcaps/external (tcpdump's test captures, see pcaps/external/SOURCES.md) and the demo and test
# manifests. Every crash is copied to tests/FastPath.Tests/Fuzz/regressions/<target>/, where FuzzRegressionTests
# replays it on every test run; fix the bug, keep the file.
set -uo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
seconds=${1:-60}
shift || true
targets=("${@:-parser pipeline manifest}")
read -r -a targets <<< "${targets[*]}"
command -v afl-fuzz > /dev/null || apt-get install -y afl++ > /dev/null || { echo "fuzz.sh: needs afl++ (apt-get install afl++)"; exit 1; }
command -v sharpfuzz > /dev/null || [ -x "$HOME/.dotnet/tools/sharpfuzz" ] || dotnet tool install --global SharpFuzz.CommandLine --version 2.3.0 > /dev/null
export PATH="$PATH:$HOME/.dotnet/tools"

work=${FUZZ_WORK:-/tmp/fastpath-fuzz}
rm -rf "$work/bin" && mkdir -p "$work"
dotnet publish fuzz/FastPath.Fuzz -c Release -o "$work/bin" -nologo -v quiet || exit 1
export FASTPATH_ROOT="$root"
rm -rf "$work/seeds" && dotnet "$work/bin/FastPath.Fuzz.dll" seeds "$work/seeds" pcaps/external/*.pcap* pcaps/demo/demo.pcapng || exit 1
# Then instrument the code under test (not the harness, not the framework) for AFL's edge coverage. Instrumented
# code only runs under afl-fuzz (it writes AFL's shared coverage map), so seeds are made before this.
for dll in FastPath.DataPlane.dll FastPath.ControlPlane.dll; do sharpfuzz "$work/bin/$dll" > /dev/null || exit 1; done

export AFL_SKIP_BIN_CHECK=1 AFL_NO_UI=1 AFL_I_DONT_CARE_ABOUT_MISSING_CRASHES=1 AFL_SKIP_CPUFREQ=1 AFL_NO_AFFINITY=1
for t in "${targets[@]}"; do
  out="$work/findings-$t"
  rm -rf "$out"
  echo "fuzz.sh: $t for ${seconds}s"
  afl-fuzz -i "$work/seeds/$t" -o "$out" -t 10000 -m none -V "$seconds" -- dotnet "$work/bin/FastPath.Fuzz.dll" "$t" > "$work/afl-$t.log" 2>&1
  stats="$out/default/fuzzer_stats"
  [ -f "$stats" ] && grep -E '^(execs_done|execs_per_sec|corpus_count|saved_crashes|saved_hangs) ' "$stats" | sed "s/^/  $t: /"
  mkdir -p "tests/FastPath.Tests/Fuzz/regressions/$t"
  for c in "$out"/default/crashes/id:*; do
    [ -f "$c" ] || continue
    name="crash-$(sha1sum "$c" | cut -c1-12)"
    cp "$c" "tests/FastPath.Tests/Fuzz/regressions/$t/$name"
    echo "  $t: kept $name (replayed by: dotnet test tests/FastPath.Tests --filter FuzzRegressionTests)"
  done
done
