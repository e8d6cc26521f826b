#!/bin/sh
# Manifest ingest (issue 17): `fastpath check` on 500 Nodes + 10,000 Services with one 10-endpoint EndpointSlice each,
# as YAML (one document per object) and as JSON (one kind: List per file, what `kubectl get -o json` writes), beside
# PyYAML's libyaml loader (CSafeLoader) and Python's json reading the same files, and optionally an older fastpath
# build (BEFORE=path/to/fastpath.dll) in the same run. Prints one line per tool: seconds (wall), user CPU s, max RSS.
# Usage: bench/manifest-ingest/run.sh [SERVICES] [NODES]
set -eu
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
services=${1:-10000}
nodes=${2:-500}
work=${TMPDIR:-/tmp}/fastpath-ingest-$services
dll=$root/src/FastPath/bin/Release/net10.0/fastpath.dll
[ -f "$dll" ] || dotnet build "$root/src/FastPath/FastPath.csproj" -c Release --nologo -v q
rm -rf "$work"
python3 "$here/generate.py" "$work/yaml" "$services" "$nodes"
python3 "$here/generate.py" "$work/json" "$services" "$nodes" --json
echo "# $(du -sb "$work/yaml" | cut -f1) bytes of YAML, $(du -sb "$work/json" | cut -f1) bytes of JSON; $(nproc) cores"
measure() { # NAME COMMAND...
    name=$1; shift
    /usr/bin/time -f "%e %U %M" -o "$work/time" "$@" > "$work/out" 2>&1 || { echo "$name: failed"; tail -3 "$work/out"; return; }
    set -- $(cat "$work/time")
    printf '%-34s %7.2f s wall %7.2f s user %7d MB max RSS   %s\n' "$name" "$1" "$2" $(($3 / 1024)) "$(tail -1 "$work/out" | cut -c1-60)"
}
measure "fastpath check (YAML)" dotnet "$dll" check --cluster "$work/yaml"
measure "fastpath check (JSON List)" dotnet "$dll" check --cluster "$work/json"
measure "PyYAML CSafeLoader (YAML)" python3 "$here/pyyaml_peer.py" "$work/yaml"
measure "python json.load (JSON List)" python3 "$here/pyyaml_peer.py" "$work/json"
if [ -n "${BEFORE:-}" ]; then
    measure "fastpath check before (YAML)" dotnet "$BEFORE" check --cluster "$work/yaml"
fi
rm -rf "$work"
