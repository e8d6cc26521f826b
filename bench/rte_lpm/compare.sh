#!/usr/bin/env bash
# LpmTable4 against DPDK rte_lpm, alternating the two processes ROUNDS times on the same files (issue 16):
#   bench/rte_lpm/compare.sh [DIR] [ROUNDS] [ROUTES]      (defaults /tmp/fastpath-lpm, 5, 100000)
# With LPM_BEFORE=FOLDER (a copy of export/bin/Release/net10.0 holding an older FastPath.DataPlane.dll) that build
# runs in every sitting too, as "before-single"/"before-batch", for a before/after of a change in the same run.
# Both sides time the same way (warm-up, 5 runs × 8 passes over 262,144 addresses, median thread-CPU ns/lookup, so
# time descheduled on a shared machine does not count) and print the
# same checksums. Prints every sitting, then per traffic and method the median of the sittings' medians, and the
# ratio rte_lpm lookup_bulk / LpmTable4 batch (> 1: LpmTable4 is faster). Runs under nice -n 19.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
dir=${1:-/tmp/fastpath-lpm}; rounds=${2:-5}; n=${3:-100000}
[ -x "$here/rte_lpm_bench" ] || "$here/build.sh"
nice -n 19 dotnet build -c Release -nologo -v quiet "$here/export" >/dev/null
dll=$(ls "$here"/export/bin/Release/net*/LpmExport.dll | head -1)
[ -f "$dir/v4-$n-Zipf.addrs" ] || nice -n 19 dotnet "$dll" "$dir" >/dev/null
log=$(mktemp)
for r in $(seq 1 "$rounds"); do
  echo "== sitting $r: rte_lpm" | tee -a "$log"
  nice -n 19 "$here/rte_lpm_bench" "$dir" "$n" | tee -a "$log"
  echo "== sitting $r: LpmTable4" | tee -a "$log"
  nice -n 19 dotnet "$dll" time "$dir" "$n" | tee -a "$log"
  if [ -n "${LPM_BEFORE:-}" ]; then
    echo "== sitting $r: LpmTable4 before" | tee -a "$log"
    nice -n 19 dotnet "$LPM_BEFORE/LpmExport.dll" time "$dir" "$n" | sed 's/fp-/before-/' | tee -a "$log"
  fi
done
python3 - "$log" <<'PY'
import re, sys, statistics
traffic = None; acc = {}
for line in open(sys.argv[1]):
    m = re.match(r" (Random|Zipf), ", line)
    if m: traffic = m.group(1); continue
    m = re.match(r"\s+(\S+)\s+([\d.]+) ns/lookup", line)
    if m and traffic: acc.setdefault((traffic, m.group(1)), []).append(float(m.group(2)))
print(f"\n{'traffic':8} {'method':10} {'median ns':>10} {'M/s':>7}  sittings")
for (t, k), v in sorted(acc.items()):
    med = statistics.median(v)
    print(f"{t:8} {k:10} {med:10.2f} {1e3/med:7.1f}  {' '.join(f'{x:.2f}' for x in v)}")
for t in ("Random", "Zipf"):
    if (t, "bulk64") in acc and (t, "fp-batch") in acc:
        b, f = statistics.median(acc[(t, "bulk64")]), statistics.median(acc[(t, "fp-batch")])
        s, fs = statistics.median(acc[(t, "single")]), statistics.median(acc[(t, "fp-single")])
        print(f"{t}: LpmTable4 batch vs rte_lpm lookup_bulk {b/f:.2f}x; single vs rte_lpm_lookup {s/fs:.2f}x (>1 = LpmTable4 faster)")
    if (t, "before-batch") in acc and (t, "fp-batch") in acc:
        bb, f = statistics.median(acc[(t, "before-batch")]), statistics.median(acc[(t, "fp-batch")])
        bs, fs = statistics.median(acc[(t, "before-single")]), statistics.median(acc[(t, "fp-single")])
        print(f"{t}: LpmTable4 after/before: batch {f/bb:.2f}, single {fs/bs:.2f} (<1 = faster)")
PY
rm -f "$log"
