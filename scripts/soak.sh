#!/usr/bin/env bash
# Soak: the two-node demo (scripts/demo-cluster.sh) for MINUTES with mixed live traffic while the cluster changes every
# second, sampling both FastPath processes' memory and conntrack fill. Not part of scripts/test.sh.
#
#   scripts/soak.sh MINUTES            (root; FP_DEMO / FP_DEMO_DIR as for demo-cluster.sh; results in $FP_DEMO_DIR/soak)
#
# Traffic, all between the demo's own namespaces and bounded by the run's length:
#   - two long TCP streams, iperf3 at 20 Mbit/s each for the whole run: client → ClusterIP 10.96.0.30:5201 (DNAT to
#     web-b on the other node, VXLAN) and cart → web-a's pod address (pod to pod across nodes);
#   - short HTTP connections, one every ~0.3 s each: client → ClusterIP 10.96.0.20 (web), the external client → NodePort
#     30080 (DNAT + SNAT), and client → one of the Services the churn adds and removes;
#   - DNS over UDP: cart → 10.96.0.20:53 every ~0.5 s;
#   - ping: client → web-b every 0.2 s.
# Churn, every second, through the manifest directory both `fastpath run` processes watch ($FP_DEMO_DIR/cluster, file
# soak.yaml rewritten atomically): five Services (10.96.1.10-14) come and go, their EndpointSlices move between web-a,
# web-b and both, four pods appear and disappear on both nodes (their TAPs created and deleted), an allow-all ingress
# NetworkPolicy over the web pods (the ones carrying the streams) and a deny-all policy over the churned pods toggle.
# Every 5 s, into soak.csv: from /proc, each node's VmRSS, its anonymous and shared parts (RssAnon; RssShmem is mostly
# JIT code, which the runtime maps twice through a memfd), open file descriptors and threads; from its metrics endpoint,
# conntrack entries, the GC heap, the memory the GC has committed, and the snapshot generation
# (seconds,node,rss_kib,gc_heap_kib,conntrack_entries,generation,gc_committed_kib,rss_anon_kib,rss_shmem_kib,fds,threads).
# RSS growing with GC committed is the managed heap's (or free space the GC keeps); with RssShmem, code; with fds or
# threads, devices or threads not released; with none of them, native memory (malloc, the runtime).
#
# Summary (soak/summary.txt, exit 1 when a check fails): RSS slope per node after warm-up and over the last half
# (least squares, KiB/min), the same for GC heap, GC committed and RssShmem, fds and threads at start and end,
# conntrack maximum, the long streams (iperf3 errors, seconds without a byte), failures of the short connections to
# Services the churn never touches (must be 0; the churned Services' failures are reported, not judged), DNS and ping
# losses, and ERROR/exception lines in the node logs.
set -uo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
MINUTES=${1:?usage: scripts/soak.sh MINUTES}
export FP_DEMO=${FP_DEMO:-fpsoak}
export FP_DEMO_DIR=${FP_DEMO_DIR:-/tmp/$FP_DEMO}
export FP_DEMO_RUN_ARGS="--metrics 127.0.0.1:9101 ${FP_DEMO_RUN_ARGS:-}"
P=$FP_DEMO DIR=$FP_DEMO_DIR OUT=$FP_DEMO_DIR/soak
SECONDS_TOTAL=$((MINUTES * 60))
PY=/usr/bin/python3

"$ROOT/scripts/demo-cluster.sh" up || exit 1
rm -rf "$OUT" && mkdir -p "$OUT"
pids=()
finish() {
  for pid in "${pids[@]}"; do kill "$pid" 2> /dev/null; done
  wait 2> /dev/null
  rm -f "$DIR/cluster/soak.yaml"
  "$ROOT/scripts/demo-cluster.sh" down
}
trap finish EXIT
in_ns() { local ns=$1; shift; ip netns exec "$P-$ns" "$@"; }
start=$(date +%s)
end=$((start + SECONDS_TOTAL))

# The churned objects for second $1.
churn_yaml() {
  local i=$1 k
  for k in 0 1 2 3 4; do
    [ $(((i + k) % 3)) = 0 ] && continue
    local eps
    case $(((i + k) % 3)) in
      1) eps='[{addresses: ["10.244.1.11"], conditions: {ready: true}, nodeName: node-a}, {addresses: ["10.244.2.11"], conditions: {ready: true}, nodeName: node-b}]' ;;
      *) [ $((i % 2)) = 0 ] && eps='[{addresses: ["10.244.1.11"], conditions: {ready: true}, nodeName: node-a}]' \
           || eps='[{addresses: ["10.244.2.11"], conditions: {ready: true}, nodeName: node-b}]' ;;
    esac
    cat <<EOF
---
apiVersion: v1
kind: Service
metadata: {name: soak-$k, namespace: shop}
spec: {clusterIP: 10.96.1.1$k, selector: {app: web}, ports: [{name: http, port: 80, targetPort: 8080, protocol: TCP}]}
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: {name: soak-$k-v4, namespace: shop, labels: {kubernetes.io/service-name: soak-$k}}
addressType: IPv4
ports: [{name: http, port: 8080, protocol: TCP}]
endpoints: $eps
EOF
  done
  for k in 0 1 2 3; do
    [ $(((i + k) % 2)) = 0 ] || continue
    local node=node-a sub=1
    [ $((k % 2)) = 1 ] && node=node-b sub=2
    cat <<EOF
---
apiVersion: v1
kind: Pod
metadata: {name: soak-pod-$k, namespace: shop, labels: {app: soak}, annotations: {fastpath.io/mac: "02:42:0a:f4:0$sub:6$k"}}
spec: {nodeName: $node, containers: [{name: c, image: demo}]}
status: {podIP: 10.244.$sub.10$k, podIPs: [{ip: 10.244.$sub.10$k}]}
EOF
  done
  [ $((i % 2)) = 0 ] && cat <<'EOF'
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: soak-allow-web, namespace: shop}
spec: {podSelector: {matchLabels: {app: web}}, policyTypes: [Ingress], ingress: [{}]}
EOF
  [ $((i % 3)) = 0 ] && cat <<'EOF'
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: soak-deny, namespace: shop}
spec: {podSelector: {matchLabels: {app: soak}}, policyTypes: [Ingress, Egress]}
EOF
  return 0
}

churn() {
  local i=0
  while [ "$(date +%s)" -lt "$end" ]; do
    churn_yaml $i > "$DIR/soak.yaml.tmp" && mv "$DIR/soak.yaml.tmp" "$DIR/cluster/soak.yaml"
    i=$((i + 1))
    sleep 1
  done
  echo "$i" > "$OUT/churn-rounds"
}

# http NAME NS URL: one short connection per ~0.3 s until the end; one "ok"/"fail" line each.
http() {
  while [ "$(date +%s)" -lt "$end" ]; do
    if ip netns exec "$2" curl -sS -m 5 -o /dev/null "${3/K/$((RANDOM % 5))}" 2>> "$OUT/$1.err"; then echo ok; else echo fail; fi
    sleep 0.3
  done > "$OUT/$1.txt"
}

dns() {
  while [ "$(date +%s)" -lt "$end" ]; do
    if [ -n "$(in_ns cart dig +short +time=2 +tries=1 @10.96.0.20 web.shop.svc.cluster.local 2>/dev/null)" ]; then echo ok; else echo fail; fi
    sleep 0.5
  done > "$OUT/dns.txt"
}

# metric TEXT NAME: the value of an unlabelled series in a Prometheus scrape.
metric() { echo "$1" | awk -v n="$2" '$1 == n {printf "%.0f", $2}'; }

sample() {
  echo "seconds,node,rss_kib,gc_heap_kib,conntrack_entries,generation,gc_committed_kib,rss_anon_kib,rss_shmem_kib,fds,threads" > "$OUT/soak.csv"
  while [ "$(date +%s)" -lt "$end" ]; do
    local t=$(($(date +%s) - start)) node
    for node in node-a node-b; do
      local pid status m heap committed fds
      pid=$(cat "$DIR/$node.pid")
      # VmRSS,RssAnon,RssShmem,Threads
      status=$(awk '$1 == "VmRSS:" {r = $2} $1 == "RssAnon:" {a = $2} $1 == "RssShmem:" {s = $2} $1 == "Threads:" {t = $2}
        END {print r "," a "," s "," t}' "/proc/$pid/status" 2> /dev/null)
      fds=$(ls "/proc/$pid/fd" 2> /dev/null | wc -l)
      m=$(ip netns exec "$P-$node" curl -s -m 3 http://127.0.0.1:9101/metrics/)
      heap=$(metric "$m" fastpath_gc_heap_bytes) committed=$(metric "$m" fastpath_gc_committed_bytes)
      IFS=, read -r rss anon shmem threads <<< "$status"
      echo "$t,$node,${rss:-},$((${heap:-0} / 1024)),$(metric "$m" fastpath_conntrack_entries),$(metric "$m" fastpath_snapshot_generation),$((${committed:-0} / 1024)),${anon:-},${shmem:-},$fds,${threads:-}" >> "$OUT/soak.csv"
    done
    sleep 5
  done
}

echo "soak: $MINUTES min on demo cluster $P, results in $OUT"
# Started without a shell function around them, so the pids are the tools' own (ip netns exec execs them) and an
# interrupted soak stops them too.
ip netns exec "$P-client" iperf3 -c 10.96.0.30 -t "$SECONDS_TOTAL" -b 20M --json > "$OUT/iperf-clusterip.json" 2>&1 & pids+=($!)
ip netns exec "$P-cart" iperf3 -c 10.244.1.11 -t "$SECONDS_TOTAL" -b 20M --json > "$OUT/iperf-pod.json" 2>&1 & pids+=($!)
ip netns exec "$P-client" ping -q -i 0.2 -W 2 -c $((SECONDS_TOTAL * 5)) 10.244.2.11 > "$OUT/ping.txt" 2>&1 & pids+=($!)
http http-clusterip "$P-client" http://10.96.0.20/ & pids+=($!)
http http-nodeport "$P-ext" http://192.168.56.11:30080/ & pids+=($!)
http http-churned "$P-client" http://10.96.1.1K/ & pids+=($!)
dns & pids+=($!)
churn & pids+=($!)
sample & pids+=($!)
wait "${pids[@]}"
pids=()

"$PY" - "$OUT" "$DIR" "$SECONDS_TOTAL" <<'EOF' | tee "$OUT/summary.txt"
import csv, json, re, sys
out, d, total = sys.argv[1], sys.argv[2], int(sys.argv[3])
failed = []
warm = min(max(60, total // 5), total // 2)
rows = list(csv.DictReader(open(f"{out}/soak.csv")))
rounds = int(open(f"{out}/churn-rounds").read())
print(f"soak: {total // 60} min, {rounds} churn rounds ({total / max(rounds, 1):.1f} s apart), warm-up {warm} s excluded from the slopes")
for node in ("node-a", "node-b"):
    r = [x for x in rows if x["node"] == node and x["rss_kib"] and x["conntrack_entries"] and x["rss_anon_kib"]]
    late = [x for x in r if int(x["seconds"]) >= warm]
    half = [x for x in r if int(x["seconds"]) >= total // 2]
    def slope(key, over=late):
        xs = [int(x["seconds"]) / 60 for x in over]; ys = [float(x[key]) for x in over]
        n = len(xs); mx = sum(xs) / n; my = sum(ys) / n
        return sum((a - mx) * (b - my) for a, b in zip(xs, ys)) / sum((a - mx) ** 2 for a in xs)
    def mib(key): return f"{int(r[0][key]) / 1024:.1f} → {int(r[-1][key]) / 1024:.1f} MiB"
    def slopes(key): return f"{slope(key):+.1f} / {slope(key, half):+.1f} KiB/min"
    rss = [int(x["rss_kib"]) for x in r]
    ct = max(int(x["conntrack_entries"]) for x in r)
    gens = [int(x["generation"]) for x in r if x["generation"]]
    print(f"  {node}: RSS {mib('rss_kib')} (max {max(rss) / 1024:.1f}), slope after warm-up / over the last half {slopes('rss_kib')}; "
          f"GC heap {mib('gc_heap_kib')}, {slopes('gc_heap_kib')}; GC committed {mib('gc_committed_kib')}, {slopes('gc_committed_kib')}; "
          f"RssShmem (code) {mib('rss_shmem_kib')}, {slopes('rss_shmem_kib')}; fds {r[0]['fds']} → {r[-1]['fds']} (max {max(int(x['fds']) for x in r)}), "
          f"threads {r[0]['threads']} → {r[-1]['threads']} (max {max(int(x['threads']) for x in r)}); "
          f"conntrack entries max {ct}; snapshot generations {gens[0]} → {gens[-1]}; {len(r)} samples")
for name in ("iperf-clusterip", "iperf-pod"):
    try:
        j = json.load(open(f"{out}/{name}.json"))
    except ValueError:
        failed.append(name); print(f"  {name}: no iperf3 JSON"); continue
    stalls = sum(1 for i in j.get("intervals", []) if i["sum"]["bytes"] == 0)
    end = j.get("end", {}).get("sum_sent", {})
    err = j.get("error")
    secs = len(j.get("intervals", []))
    print(f"  {name}: {'ERROR ' + err if err else 'no error'}, {secs} s of {total}, {end.get('bytes', 0) / 1e6:.0f} MB sent, "
          f"{end.get('retransmits', 0)} retransmits, {stalls} one-second intervals without a byte")
    if err or stalls or secs < total - 2: failed.append(name)
for name, judged in (("http-clusterip", True), ("http-nodeport", True), ("http-churned", False), ("dns", True)):
    lines = open(f"{out}/{name}.txt").read().split()
    bad = lines.count("fail")
    print(f"  {name}: {len(lines)} requests, {bad} failed{'' if judged else ' (Services the churn adds and removes: not judged)'}")
    if judged and bad: failed.append(name)
ping = open(f"{out}/ping.txt").read()
m = re.search(r"(\d+) packets transmitted, (\d+) received", ping)
lost = int(m.group(1)) - int(m.group(2)) if m else -1
print(f"  ping: {m.group(0) if m else 'no result'}")
if lost != 0: failed.append("ping")
for node in ("node-a", "node-b"):
    log = open(f"{d}/{node}.log", errors="replace").read().splitlines()
    errors = [l for l in log if re.search(r"\berror\b|exception|unhandled", l, re.I)]
    applied = sum(1 for l in log if "applied" in l)
    print(f"  {node} log: {applied} 'applied' lines, {len(errors)} error lines" + (f", first: {errors[0][:200]}" if errors else ""))
    if errors: failed.append(f"{node} log")
print("soak: " + ("PASS" if not failed else "FAIL: " + ", ".join(failed)))
sys.exit(1 if failed else 0)
EOF
