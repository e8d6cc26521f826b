#!/usr/bin/env bash
# Fuzzes the data plane and control plane inputs through SharpFuzz, for a bounded time (or number of executions) per
# target (not part of scripts/test.sh). Targets: parser, pipeline, manifest (issue 10); virtio (virtio-net header +
# super-frame path), watch (API watch stream decoding and conversion), trace (differential: forwarding vs trace)
# (issue 21).
#   scripts/fuzz.sh [SECONDS_PER_TARGET] [TARGET...]                   AFL++ (afl-fuzz, out-of-process fork server)
#   scripts/fuzz.sh --libfuzzer [--runs N] [SECONDS] [TARGET...]       libFuzzer through libfuzzer-dotnet (in-process
#                                                                      loop, several times AFL's rate), until N runs or
#                                                                      SECONDS, whichever comes first
#   scripts/fuzz.sh --mutate N [--jobs J] [SECONDS] [TARGET...]        N mutations of the libFuzzer corpus, run in
#                                                                      process without coverage (volume; see
#                                                                      fuzz/FastPath.Fuzz/Mutator.cs), up to SECONDS;
#                                                                      --jobs splits N over J processes, each with its
#                                                                      own mutation seed (FUZZ_SEED 21, 22, ...;
#                                                                      FUZZ_SEED_BASE=B starts at B+1, so a later
#                                                                      run tries other inputs)
#   scripts/fuzz.sh --live-diff N [SECONDS]                            differential, replay vs live (root): the
#                                                                      pipeline/trace corpus, then mutations, N fuzz
#                                                                      inputs in all, through `fastpath run` on TAPs
#                                                                      in a namespace of its own (FP_LIVE_PREFIX,
#                                                                      default fplive) and through `fastpath replay`;
#                                                                      every frame out of every port and every drop
#                                                                      must agree (fuzz/FastPath.Fuzz/LiveDiff.cs); a
#                                                                      differing round is kept in FUZZ_WORK/live-diff;
#                                                                      FUZZ_OFFLOADS=off runs `run --offloads off`
# Seeds come from pcaps/external (tcpdump's test captures, see pcaps/external/SOURCES.md), the demo capture and the
# demo and test manifests. Every crash (and libFuzzer timeout) is copied to tests/FastPath.Tests/Fuzz/regressions/
# <target>/, where FuzzRegressionTests replays it on every test run; fix the bug, keep the file. The libFuzzer corpus
# (FUZZ_WORK/corpus-<target>) is kept between runs; `fuzz.sh --libfuzzer --minimize TARGET...` merges it into
# fuzz/corpus/<target> (the small, committed corpus the next run starts from).
set -uo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
engine=afl runs=0 minimize=0 jobs=1
while [ $# -gt 0 ]; do
  case "$1" in
    --libfuzzer) engine=libfuzzer; shift ;;
    --mutate) engine=mutate runs=$2; shift 2 ;;
    --live-diff) engine=livediff runs=$2; shift 2 ;;
    --runs) runs=$2; shift 2 ;;
    --jobs) jobs=$2; shift 2 ;;
    --minimize) minimize=1; shift ;;
    *) break ;;
  esac
done
seconds=${1:-60}
shift || true
targets=("${@:-parser pipeline manifest virtio watch trace}")
read -r -a targets <<< "${targets[*]}"
if [ $engine = mutate ] || [ $engine = livediff ]; then :
elif [ $engine = afl ]; then
  command -v afl-fuzz > /dev/null || apt-get install -y afl++ > /dev/null || { echo "fuzz.sh: needs afl++ (apt-get install afl++)"; exit 1; }
else
  command -v clang++-14 > /dev/null && [ -n "$(ls /usr/lib/llvm-14/lib/clang/*/lib/linux/libclang_rt.fuzzer-x86_64.a 2> /dev/null)" ] \
    || apt-get install -y clang-14 libclang-rt-14-dev > /dev/null || { echo "fuzz.sh: needs clang-14 and libclang-rt-14-dev"; exit 1; }
fi
command -v sharpfuzz > /dev/null || [ -x "$HOME/.dotnet/tools/sharpfuzz" ] || dotnet tool install --global SharpFuzz.CommandLine --version 2.3.0 > /dev/null
export PATH="$PATH:$HOME/.dotnet/tools"

keep() { # target file: keep a finding (crash, hang or libFuzzer timeout) as a regression input
  local name kind
  kind=$(basename "$2" | sed -E 's/^(crash|hang|timeout).*/\1/; s/^id:.*/crash/')
  name="$kind-$(sha1sum "$2" | cut -c1-12)"
  mkdir -p "tests/FastPath.Tests/Fuzz/regressions/$1"
  cp "$2" "tests/FastPath.Tests/Fuzz/regressions/$1/$name"
  echo "  $1: kept $name (replayed by: dotnet test tests/FastPath.Tests --filter FuzzRegressionTests)"
}

work=${FUZZ_WORK:-/tmp/fastpath-fuzz}
rm -rf "$work/bin" && mkdir -p "$work"
dotnet publish fuzz/FastPath.Fuzz -c Release -o "$work/bin" -nologo -v quiet || exit 1
export FASTPATH_ROOT="$root"
if [ $engine = livediff ]; then
  [ "$(id -u)" = 0 ] || { echo "fuzz.sh: --live-diff needs root (network namespaces, TAPs)"; exit 1; }
  echo "fuzz.sh: live-diff, $runs inputs (at most ${seconds}s)"
  timeout "$seconds" dotnet "$work/bin/FastPath.Fuzz.dll" live-diff "${FP_LIVE_PREFIX:-fplive}" "$runs" "$work/live-diff" \
    fuzz/corpus/pipeline fuzz/corpus/trace
  rc=$?
  [ $rc = 124 ] && echo "fuzz.sh: live-diff stopped at ${seconds}s"
  exit $rc
fi
rm -rf "$work/seeds" && dotnet "$work/bin/FastPath.Fuzz.dll" seeds "$work/seeds" pcaps/external/*.pcap* pcaps/demo/demo.pcapng || exit 1
rm -rf "$work/bin-plain" && cp -r "$work/bin" "$work/bin-plain"
if [ $engine = mutate ]; then
  status=0
  for t in "${targets[@]}"; do
    echo "fuzz.sh: $t, $runs in-process mutations (at most ${seconds}s$([ "$jobs" -gt 1 ] && echo ", $jobs processes"))"
    pids=()
    for j in $(seq 1 "$jobs"); do
      share=$(( runs / jobs + (j <= runs % jobs ? 1 : 0) ))
      FUZZ_SEED=$((${FUZZ_SEED_BASE:-20} + j)) timeout "$seconds" dotnet "$work/bin-plain/FastPath.Fuzz.dll" mutate "$t" "$share" "$work/mutate-$t" \
        "$work/corpus-$t" "fuzz/corpus/$t" "$work/seeds/$t" > "$work/mutate-$t-$j.log" 2>&1 &
      pids+=($!)
    done
    for j in $(seq 1 "$jobs"); do
      wait "${pids[$((j - 1))]}"
      rc=$?
      log="$work/mutate-$t-$j.log"
      [ $rc = 124 ] && echo "  $t/$j: stopped at ${seconds}s before its share of $runs executions"
      [ $rc != 0 ] && [ $rc != 124 ] && status=1
      grep -v ' executions in .* s$' "$log" | head -c 3000 | sed "s/^/  $t\/$j: /"
      [ $rc = 124 ] && tail -1 "$log" | sed "s/^/  $t\/$j: /"
    done
    for c in "$work/mutate-$t"/crash-* "$work/mutate-$t"/hang-*; do [ -f "$c" ] && keep "$t" "$c"; done
  done
  exit $status
fi
# Then instrument the code under test (not the harness, not the framework) for AFL's edge coverage. Instrumented
# code only runs under a fuzzer (it writes the shared coverage map), so seeds are made before this.
# fastpath.dll holds the trace report (trace target); KubernetesClient.dll the watch stream reader (watch target).
for dll in FastPath.DataPlane.dll FastPath.ControlPlane.dll fastpath.dll KubernetesClient.dll; do sharpfuzz "$work/bin/$dll" > /dev/null || exit 1; done

if [ $engine = libfuzzer ]; then
  driver="$work/libfuzzer-dotnet"
  clang++-14 -O2 -fsanitize=fuzzer fuzz/libfuzzer-dotnet/libfuzzer-dotnet.cc -o "$driver" || exit 1
  for t in "${targets[@]}"; do
    corpus="$work/corpus-$t" out="$work/findings-$t"
    mkdir -p "$corpus" && rm -rf "$out" && mkdir -p "$out"
    [ -d "fuzz/corpus/$t" ] && cp -n fuzz/corpus/"$t"/* "$corpus"/ 2> /dev/null
    if [ $minimize = 1 ]; then
      rm -rf "fuzz/corpus/$t" && mkdir -p "fuzz/corpus/$t"
      "$driver" --target_path="$work/bin/FastPath.Fuzz" --target_arg="$t" -merge=1 -max_len=66000 "fuzz/corpus/$t" "$corpus" "$work/seeds/$t" > "$work/merge-$t.log" 2>&1
      echo "  $t: minimized corpus $(ls "fuzz/corpus/$t" | wc -l) files, $(du -sk "fuzz/corpus/$t" | cut -f1) KiB"
      continue
    fi
    echo "fuzz.sh: $t (libFuzzer) for ${seconds}s$([ "$runs" -gt 0 ] && echo " or $runs runs")"
    max_len=4096; [ "$t" = virtio ] && max_len=66000; [ "$t" = manifest ] || [ "$t" = watch ] && max_len=16384
    "$driver" --target_path="$work/bin/FastPath.Fuzz" --target_arg="$t" "$corpus" "$work/seeds/$t" \
      -runs="$([ "$runs" -gt 0 ] && echo "$runs" || echo -1)" -max_total_time="$seconds" -timeout=10 -max_len=$max_len \
      -rss_limit_mb=0 -print_final_stats=1 -artifact_prefix="$out/" > "$work/libfuzzer-$t.log" 2>&1
    grep -E '^stat::(number_of_executed_units|average_exec_per_sec|new_units_added)' "$work/libfuzzer-$t.log" | sed "s/^/  $t: /"
    echo "  $t: crashes $(ls "$out" | grep -c '^crash-') hangs $(ls "$out" | grep -c '^timeout-')"
    for c in "$out"/crash-* "$out"/timeout-*; do [ -f "$c" ] && keep "$t" "$c"; done
  done
  exit 0
fi

export AFL_SKIP_BIN_CHECK=1 AFL_NO_UI=1 AFL_I_DONT_CARE_ABOUT_MISSING_CRASHES=1 AFL_SKIP_CPUFREQ=1 AFL_NO_AFFINITY=1
for t in "${targets[@]}"; do
  out="$work/findings-$t"
  rm -rf "$out"
  echo "fuzz.sh: $t for ${seconds}s"
  afl-fuzz -i "$work/seeds/$t" -o "$out" -t 10000 -m none -V "$seconds" -- dotnet "$work/bin/FastPath.Fuzz.dll" "$t" > "$work/afl-$t.log" 2>&1
  stats="$out/default/fuzzer_stats"
  [ -f "$stats" ] && grep -E '^(execs_done|execs_per_sec|corpus_count|saved_crashes|saved_hangs) ' "$stats" | sed "s/^/  $t: /"
  for c in "$out"/default/crashes/id:*; do [ -f "$c" ] && keep "$t" "$c"; done
done
