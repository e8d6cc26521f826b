#!/usr/bin/env bash
# Interleaved before/after comparison of two fastpath builds in one sitting (docs/BENCHMARKS.md, issue 16):
#   scripts/bench-ab.sh BEFORE_DIR AFTER_DIR [ROUNDS] [bench options...]
# Runs `fastpath bench --workers 1` from each build folder in turn (before, after, before, after, ...), then prints
# per scenario the mean CPU ns/packet of each build and the ratio after/before. Each build's own l2-forward row is
# its floor. Everything under nice -n 19 (shared machine).
set -euo pipefail
before=$1; after=$2; rounds=${3:-3}; shift 3 || shift $#
opts=("$@"); [ ${#opts[@]} -eq 0 ] && opts=(--duration 3)
out=$(mktemp -d)
for r in $(seq 1 "$rounds"); do
  for side in before after; do
    dir=$before; [ "$side" = after ] && dir=$after
    nice -n 19 dotnet "$dir/fastpath.dll" bench --workers 1 --json "${opts[@]}" > "$out/$side-$r.json"
  done
done
python3 - "$out" "$rounds" <<'PY'
import json, sys, statistics, glob
out, rounds = sys.argv[1], int(sys.argv[2])
def rows(side):
    acc = {}
    for r in range(1, rounds + 1):
        data = json.load(open(f"{out}/{side}-{r}.json"))
        for row in (data["results"] if isinstance(data, dict) else data):
            acc.setdefault(row["scenario"], []).append(row["cpu_ns_per_packet"])
    return acc
b, a = rows("before"), rows("after")
print(f"{'scenario':24} {'before cpu-ns':>14} {'after cpu-ns':>13} {'after/before':>13}  (mean of {rounds}, interleaved)")
for s in b:
    if s not in a: continue
    mb, ma = statistics.mean(b[s]), statistics.mean(a[s])
    print(f"{s:24} {mb:14.1f} {ma:13.1f} {ma/mb:13.2f}")
PY
