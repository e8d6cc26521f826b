#!/usr/bin/env bash
# Runs the whole test suite (unit, property, golden-capture, tshark, conformance and allocation tests) and prints
# the totals as one line: "N passed, N failed, N skipped".
set -uo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh || exit 1
build_log=$(mktemp)
dotnet build FastPath.sln -c Release -nologo -v quiet -clp:ErrorsOnly > "$build_log" 2>&1 || { cat "$build_log"; echo "0 passed, 1 failed (build)"; exit 1; }
rm -f "$build_log"
log=$(mktemp)
dotnet test tests/FastPath.Tests/FastPath.Tests.csproj -c Release --no-build -nologo 2>&1 | tee "$log"
status=${PIPESTATUS[0]}
line=$(grep -E '(Passed|Failed)!.*Total:' "$log" | tail -1)
num() { echo "$line" | grep -oE "$1: *[0-9]+" | grep -oE '[0-9]+' || echo 0; }
passed=$(num Passed); failed=$(num Failed); skipped=$(num Skipped)
if [ "$failed" != 0 ]; then echo "failed tests:"; grep -E '^\s+Failed [A-Za-z]' "$log" | sed 's/^ */  /'; fi
rm -f "$log"
if [ -z "$line" ]; then echo "0 passed, 1 failed (the test run did not report totals)"; exit 1; fi
echo "$passed passed, $failed failed, $skipped skipped"
[ "$status" -eq 0 ] && [ "$failed" -eq 0 ] && [ "$passed" -gt 0 ]
