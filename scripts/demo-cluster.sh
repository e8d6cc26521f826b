#!/usr/bin/env bash
# A two-node cluster whose data plane is FastPath, built entirely inside network namespaces this script creates:
#
#   scripts/demo-cluster.sh up       build it, start one `fastpath run --tap` per node, start the pods' servers
#   scripts/demo-cluster.sh test     pods and the external client reach each other and the Services, with real tools
#   scripts/demo-cluster.sh down     stop FastPath (its TAP devices go with it) and delete every namespace
#   scripts/demo-cluster.sh restart NODE term|kill   restart one node's FastPath (with FP_DEMO_STATE_DIR: hitless)
#
#   ext (192.168.56.1, the underlay router and external client; LoadBalancer IPs 192.168.57.0/24 routed via node-a)
#    │ veth
#   underlay: bridge br0 ── ul-a (node-a's uplink TAP)  ── fastpath run --node node-a  ── TAPs ── client, web-a
#                       └── ul-b (node-b's uplink TAP)  ── fastpath run --node node-b  ── TAPs ── web-b, cart
#
# Each FastPath runs in its node's namespace and creates its TAPs there; this script then moves every pod's TAP into
# the pod's namespace (renamed eth0, the pod's MAC, IPv4 /32 and IPv6 /128, default routes via the gateway FastPath
# answers ARP/ND for, MTU 1450 for the VXLAN overhead) and the uplink TAPs into the underlay namespace. The cluster
# manifests are written to $FP_DEMO_DIR/cluster. Pod TAP names: "fp" + the first 12 hex digits of
# sha1("namespace/pod"), as `fastpath run` names them.
#
# With FP_DEMO_PORTS=veth the pods sit on veth pairs, as real CNIs put them: each FastPath runs with
# `--attach ul-X --cni-socket $FP_DEMO_DIR/node-X.sock` (its uplink a veth onto the bridge, attached in
# FP_DEMO_ATTACH_MODE, default auto), and every pod is created by the `fastpath-cni` plugin, invoked exactly as a
# container runtime does (CNI_* environment, the network configuration on stdin, host-local IPAM asked for the pod's
# addresses through runtimeConfig "ips"); `down` runs the plugin's DEL for each pod. The CNI results are kept in
# $FP_DEMO_DIR/<pod>.cni.json.
#
# Environment: FP_DEMO (namespace prefix, default fpd), FP_DEMO_DIR (manifests, logs, pids; default /tmp/$FP_DEMO),
# FP_DEMO_TUNNEL (vxlan, the default, or direct: pod frames cross the underlay unencapsulated, to the peer node's MAC),
# FASTPATH (the command; default: dotnet on the Release build, built when missing), FP_DEMO_RUN_ARGS (more options for
# both `fastpath run` processes, e.g. "--workers 2" or "--offloads off"),
# FP_DEMO_STATE_DIR (each node's `run` gets --state-dir FP_DEMO_STATE_DIR/NODE: conntrack in state files, persistent
# TAPs, so `demo-cluster.sh restart NODE term|kill` keeps the node's connections),
# FP_DEMO_PODS (a file of other pods on the same two nodes, one "node namespace pod ipv4 ipv6 mac role" line each, as
# in PODS below; the caller then writes the manifests into $FP_DEMO_DIR/cluster itself, and a pod's namespace is
# $FP_DEMO-NAMESPACE-POD. The live NetworkPolicy truth table writes both from tests/FastPath.Tests/Policy/PolicyCluster.cs:
# namespaces x, y, z with pods a, b, c each, role policy).
# Pod roles: client (no server), web (scripts/demo-backend.py on TCP 8080 and UDP 5353, and iperf3), policy
# (demo-backend.py on TCP 80 and 81 and UDP 53 and 80, the truth table's ports; ICMP echo sockets allowed for root;
# ephemeral ports 61000-65000, leaving the ports below to probes that pick their own).
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
P=${FP_DEMO:-fpd}
TUNNEL=${FP_DEMO_TUNNEL:-vxlan}
PORTS=${FP_DEMO_PORTS:-tap}
ATTACH_MODE=${FP_DEMO_ATTACH_MODE:-auto}
DIR=${FP_DEMO_DIR:-/tmp/$P}
PY=/usr/bin/python3
GATEWAY_MAC=ee:ee:ee:ee:ee:ee
EXT_MAC=02:00:00:00:00:fe
# node  underlay-ip    mac                uplink-tap
NODES="node-a 192.168.56.11 02:00:00:00:01:01 ul-a
node-b 192.168.56.12 02:00:00:00:02:01 ul-b"
# node  namespace pod  ipv4         ipv6               mac                role
PODS="node-a default client 10.244.1.10 fd00:10:244:1::a 02:42:0a:f4:01:0a client
node-a shop web-a 10.244.1.11 fd00:10:244:1::b 02:42:0a:f4:01:0b web
node-b shop web-b 10.244.2.11 fd00:10:244:2::b 02:42:0a:f4:02:0b web
node-b shop cart 10.244.2.12 fd00:10:244:2::c 02:42:0a:f4:02:0c client"
[ -z "${FP_DEMO_PODS:-}" ] || PODS=$(cat "$FP_DEMO_PODS")

ns_node() { echo "$P-$1"; }
# ns_pod NAMESPACE POD: the pod's network namespace ($P-POD for the demo's pods, whose names are unique).
ns_pod() { if [ -n "${FP_DEMO_PODS:-}" ]; then echo "$P-$1-$2"; else echo "$P-$2"; fi; }
UL=$P-underlay
EXT=$P-ext

tap_name() { printf 'fp%s' "$(printf '%s' "$1/$2" | sha1sum | cut -c1-12)"; }

fastpath_cmd() {
  if [ -n "${FASTPATH:-}" ]; then echo "$FASTPATH"; return; fi
  local dll=$ROOT/src/FastPath/bin/Release/net10.0/fastpath.dll
  if [ ! -f "$dll" ]; then
    dotnet build "$ROOT/src/FastPath/FastPath.csproj" -c Release -nologo -v quiet -clp:ErrorsOnly >&2
  fi
  echo "dotnet $dll"
}

# The CNI plugin directory (CNI_PATH's first entry): fastpath-cni (FASTPATH_CNI, or the Release build's apphost) and
# Debian's host-local (containernetworking-plugins).
cni_bin() {
  local bin=$DIR/cni-bin app=${FASTPATH_CNI:-}
  mkdir -p "$bin"
  if [ -z "$app" ]; then
    app=$ROOT/src/FastPath.Cni/bin/Release/net10.0/fastpath-cni
    [ -x "$app" ] || dotnet build "$ROOT/src/FastPath.Cni/FastPath.Cni.csproj" -c Release -nologo -v quiet -clp:ErrorsOnly >&2
  fi
  printf '#!/bin/sh\nexec %s "$@"\n' "$app" > "$bin/fastpath-cni"
  chmod +x "$bin/fastpath-cni"
  echo "$bin:/usr/lib/cni:/opt/cni/bin"
}

# cni_config NODE IPV4 IPV6: the network configuration a runtime on NODE passes the plugin (one plugin of the
# conflist), with the pod's addresses as runtimeConfig "ips" (the CNI "ips" capability host-local honours).
cni_config() {
  local sub=1
  [ "$1" = node-b ] && sub=2
  printf '{"cniVersion": "1.0.0", "name": "fastpath", "type": "fastpath-cni", "socket": "%s", "mtu": 1450,
 "ipam": {"type": "host-local", "dataDir": "%s",
          "ranges": [[{"subnet": "10.244.%s.0/24"}], [{"subnet": "fd00:10:244:%s::/64"}]]},
 "runtimeConfig": {"ips": ["%s", "%s"]}}\n' \
    "$DIR/$1.sock" "$DIR/ipam-$1" "$sub" "$sub" "$2" "$3" | if [ -n "${4:-}" ]; then
      # CHECK: the result ADD returned goes in as prevResult.
      "$PY" -c 'import json,sys; c=json.load(sys.stdin); c["prevResult"]=json.load(open(sys.argv[1])); print(json.dumps(c))' "$4"
    else cat; fi
}

# cni COMMAND NODE NAMESPACE POD IPV4 IPV6 MAC [PREVRESULT-FILE]: runs fastpath-cni in the node's namespace as a
# runtime would (also `demo-cluster.sh cni ...`, for the live tests).
cni() {
  local command=$1 node=$2 ns=$3 pod=$4 ip4=$5 ip6=$6 mac=$7 pns
  pns=$(ns_pod "$ns" "$pod")
  cni_config "$node" "$ip4" "$ip6" "${8:-}" | ip netns exec "$(ns_node "$node")" env CNI_COMMAND="$command" CNI_CONTAINERID="$pns" \
    CNI_NETNS="/var/run/netns/$pns" CNI_IFNAME=eth0 CNI_PATH="$CNI_PATH" \
    CNI_ARGS="IgnoreUnknown=1;K8S_POD_NAMESPACE=$ns;K8S_POD_NAME=$pod;MAC=$mac" \
    "${CNI_PATH%%:*}/fastpath-cni"
}

HTTP='{name: http, port: 8080, protocol: TCP}'

# endpoint_slice NAME SERVICE ADDRESS-TYPE PORTS ADDRESS@NODE...: a shop EndpointSlice with ready endpoints, one line
# each (the live tests remove web-b from web-v4 by deleting its line).
endpoint_slice() {
  local name=$1 service=$2 type=$3 ports=$4 e
  shift 4
  cat <<EOF
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: {name: $name, namespace: shop, labels: {kubernetes.io/service-name: $service}}
addressType: $type
ports: [$ports]
endpoints:
EOF
  for e in "$@"; do echo "  - {addresses: [\"${e%@*}\"], conditions: {ready: true}, nodeName: ${e#*@}}"; done
}

write_manifests() {
  mkdir -p "$DIR/cluster"
  {
    cat <<EOF
# Written by scripts/demo-cluster.sh: the demo cluster both FastPath processes run.
apiVersion: fastpath.io/v1alpha1
kind: FastPathConfiguration
clusterCIDRs: [10.244.0.0/16, "fd00:10:244::/56"]
serviceCIDRs: [10.96.0.0/12, "fd00:10:96::/112"]
tunnel: $TUNNEL
mtu: 1500
gatewayMAC: "ee:ee:ee:ee:ee:ee"
# The underlay router by address: each FastPath resolves its MAC by ARP on its uplink.
uplinkGateway: 192.168.56.1
---
apiVersion: v1
kind: Namespace
metadata: {name: shop}
EOF
    while read -r node ip mac _; do
      local n=${node#node-} sub=1
      [ "$n" = b ] && sub=2
      cat <<EOF
---
apiVersion: v1
kind: Node
metadata:
  name: $node
  annotations: {fastpath.io/mac: "$mac"}
spec: {podCIDR: 10.244.$sub.0/24, podCIDRs: [10.244.$sub.0/24, "fd00:10:244:$sub::/64"]}
status: {addresses: [{type: InternalIP, address: $ip}]}
EOF
    done <<< "$NODES"
    while read -r node ns pod ip4 ip6 mac role; do
      cat <<EOF
---
apiVersion: v1
kind: Pod
metadata:
  name: $pod
  namespace: $ns
  labels: {app: $role}
  annotations: {fastpath.io/mac: "$mac"}
spec: {nodeName: $node, containers: [{name: c, image: demo}]}
status: {podIP: $ip4, podIPs: [{ip: $ip4}, {ip: "$ip6"}]}
EOF
    done <<< "$PODS"
    cat <<'EOF'
---
# ClusterIP, dual-stack: web-a on node-a and web-b on node-b.
apiVersion: v1
kind: Service
metadata: {name: web, namespace: shop}
spec:
  clusterIP: 10.96.0.20
  clusterIPs: [10.96.0.20, "fd00:10:96::20"]
  ipFamilies: [IPv4, IPv6]
  selector: {app: web}
  ports: [{name: http, port: 80, targetPort: 8080, protocol: TCP}, {name: dns, port: 53, targetPort: 5353, protocol: UDP}]
---
# iperf3 through a ClusterIP whose only backend is on the other node from the client.
apiVersion: v1
kind: Service
metadata: {name: iperf, namespace: shop}
spec:
  clusterIP: 10.96.0.30
  ports: [{name: iperf, port: 5201, targetPort: 5201, protocol: TCP}]
EOF
    local dns='{name: dns, port: 5353, protocol: UDP}'
    endpoint_slice web-v4 web IPv4 "$HTTP, $dns" 10.244.1.11@node-a 10.244.2.11@node-b
    endpoint_slice web-v6 web IPv6 "$HTTP, $dns" fd00:10:244:1::b@node-a fd00:10:244:2::b@node-b
    endpoint_slice iperf-v4 iperf IPv4 '{name: iperf, port: 5201, protocol: TCP}' 10.244.2.11@node-b
    # NodePort and LoadBalancer Services over the web pods: Cluster (client SNATed to the node) and Local (client
    # address kept, only the receiving node's endpoints).
    local name cip np lb policy
    while read -r name cip np lb policy; do
      local type=NodePort status=""
      if [ "$lb" != - ]; then type=LoadBalancer; status="status: {loadBalancer: {ingress: [{ip: $lb}]}}"; fi
      cat <<EOF
---
apiVersion: v1
kind: Service
metadata: {name: $name, namespace: shop}
spec:
  type: $type
  clusterIP: $cip
  externalTrafficPolicy: $policy
  selector: {app: web}
  ports: [{name: http, port: 80, targetPort: 8080, nodePort: $np, protocol: TCP}]
$status
EOF
      endpoint_slice "$name-v4" "$name" IPv4 "$HTTP" 10.244.1.11@node-a 10.244.2.11@node-b
    done <<'EOF'
web-nodeport 10.96.0.40 30080 - Cluster
web-nodeport-local 10.96.0.41 30081 - Local
web-lb 10.96.0.42 30082 192.168.57.10 Cluster
web-lb-local 10.96.0.43 30083 192.168.57.11 Local
EOF
    # A LoadBalancer Service with traffic policy Local whose only endpoint is web-a: its health check node port answers
    # 200 on node-a and 503 on node-b, as kube-proxy's does, so a cloud load balancer would send traffic to node-a only.
    cat <<'EOF'
---
apiVersion: v1
kind: Service
metadata: {name: web-lb-local-a, namespace: shop}
spec:
  type: LoadBalancer
  clusterIP: 10.96.0.44
  externalTrafficPolicy: Local
  healthCheckNodePort: 32084
  selector: {app: web}
  ports: [{name: http, port: 80, targetPort: 8080, nodePort: 30084, protocol: TCP}]
status: {loadBalancer: {ingress: [{ip: 192.168.57.12}]}}
EOF
    endpoint_slice web-lb-local-a-v4 web-lb-local-a IPv4 "$HTTP" 10.244.1.11@node-a
  } > "$DIR/cluster/cluster.yaml"
}

# Waits until a server in namespace $1 listens on TCP port $2 (its log is $DIR/$3.log).
wait_listening() {
  for _ in $(seq 100); do
    ip netns exec "$1" ss -ltn 2>/dev/null | grep -q ":$2 " && return 0
    sleep 0.1
  done
  echo "demo-cluster: nothing listens on TCP $2 in $1 (see $DIR/$3.log)" >&2
  return 1
}

# Waits until `ip -n NS link show DEV` succeeds (FastPath created the TAP).
wait_link() {
  for _ in $(seq 150); do
    ip -n "$1" link show "$2" >/dev/null 2>&1 && return 0
    sleep 0.1
  done
  echo "demo-cluster: $2 did not appear in $1 (see $DIR/$3.log)" >&2
  return 1
}

# Waits until FILE exists (FastPath opened its CNI socket).
wait_file() {
  for _ in $(seq 150); do
    [ -e "$1" ] && return 0
    sleep 0.1
  done
  echo "demo-cluster: $1 did not appear (see $DIR/$2.log)" >&2
  return 1
}

new_ns() {
  ip netns add "$1"
  ip -n "$1" link set lo up
}

# start_tap_node NODE UPLINK FASTPATH: one `fastpath run --tap` in the node's namespace, its output appended to
# $DIR/NODE.log, its pid in $DIR/NODE.pid. With FP_DEMO_STATE_DIR it keeps its state (conntrack, persistent TAPs) in
# FP_DEMO_STATE_DIR/NODE, so `restart` keeps the node's connections.
start_tap_node() {
  local node=$1 uplink=$2 fastpath=$3 state=()
  [ -z "${FP_DEMO_STATE_DIR:-}" ] || state=(--state-dir "$FP_DEMO_STATE_DIR/$node" ${4:-})
  ip netns exec "$(ns_node "$node")" setsid $fastpath run --cluster "$DIR/cluster" --node "$node" --tap --uplink-tap "$uplink" \
    --host-tap fp-host --status-interval 5 --flow-log "$DIR/$node.flows.jsonl" "${state[@]}" ${FP_DEMO_RUN_ARGS:-} >> "$DIR/$node.log" 2>&1 < /dev/null &
  echo $! > "$DIR/$node.pid"
}

# restart NODE term|kill|takeover: stops the node's `fastpath run` with SIGTERM (a clean shutdown: state saved) or
# SIGKILL (a crash), waits for it to exit (10 s at most), starts a new one with the same options, and waits until it
# forwards (its "forwarding:" line; 30 s at most). takeover starts the new one first, with --takeover: it asks the old
# one to hand over once it is ready. Meant for FP_DEMO_STATE_DIR clusters: without it the TAPs go with the process.
restart() {
  local node=$1 how=$2 pid uplink fastpath before
  pid=$(cat "$DIR/$node.pid")
  uplink=$(awk -v n="$node" '$1 == n { print $4 }' <<< "$NODES")
  fastpath=$(fastpath_cmd)
  before=$(grep -c '^forwarding:' "$DIR/$node.log" || true)
  case "$how" in
    term) kill -TERM "$pid" ;;
    kill) kill -KILL "$pid" ;;
    takeover) echo "--- restart ($how) at $(date +%s%N)" >> "$DIR/$node.log"; start_tap_node "$node" "$uplink" "$fastpath" --takeover ;;
    *) echo "restart: term, kill or takeover, not $how" >&2; return 2 ;;
  esac
  for _ in $(seq 300); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  if kill -0 "$pid" 2>/dev/null; then echo "restart: $node (pid $pid) did not exit" >&2; return 1; fi
  if [ "$how" != takeover ]; then
    echo "--- restart ($how) at $(date +%s%N)" >> "$DIR/$node.log"
    start_tap_node "$node" "$uplink" "$fastpath"
  fi
  for _ in $(seq 300); do
    [ "$(grep -c '^forwarding:' "$DIR/$node.log" || true)" -gt "$before" ] && { echo "restarted $node"; return 0; }
    kill -0 "$(cat "$DIR/$node.pid")" 2>/dev/null || break
    sleep 0.1
  done
  echo "restart: $node did not start forwarding (see $DIR/$node.log)" >&2
  return 1
}

up() {
  mkdir -p "$DIR"
  [ -n "${FP_DEMO_PODS:-}" ] || write_manifests
  local fastpath
  fastpath=$(fastpath_cmd)
  $fastpath check --cluster "$DIR/cluster" >/dev/null

  new_ns "$UL"
  ip netns exec "$UL" sysctl -qw net.ipv6.conf.all.disable_ipv6=1 net.ipv6.conf.default.disable_ipv6=1
  ip -n "$UL" link add br0 type bridge
  ip -n "$UL" link set br0 up

  new_ns "$EXT"
  ip -n "$UL" link add ext type veth peer name eth0 netns "$EXT" address "$EXT_MAC"
  ip -n "$UL" link set ext master br0 up
  ip -n "$EXT" addr add 192.168.56.1/24 dev eth0
  ip -n "$EXT" link set eth0 up
  # On veths a peer's checksum offload reaches the attached end as partial checksums, which libpcap cannot tell
  # (AF_PACKET can: TP_STATUS_CSUMNOTREADY); a NIC never hands them over. The external client sends complete ones.
  [ "$PORTS" != veth ] || ip netns exec "$EXT" ethtool -K eth0 tx off >/dev/null
  # ARP for the node addresses would reach each node's host TAP only through FastPath: pin them. LoadBalancer IPs
  # are routed to node-a, as a BGP or L2 announcement would.
  while read -r node ip mac _; do
    ip -n "$EXT" neigh replace "$ip" lladdr "$mac" dev eth0 nud permanent
  done <<< "$NODES"
  ip -n "$EXT" route add 192.168.57.0/24 via 192.168.56.11

  [ "$PORTS" = veth ] && CNI_PATH=$(cni_bin)
  while read -r node ip mac uplink; do
    local nns
    nns=$(ns_node "$node")
    new_ns "$nns"
    if [ "$PORTS" = veth ]; then
      # The node's NIC: a veth onto the underlay bridge. The node's own kernel keeps out of the way: no IPv6
      # (no link-local chatter), no addresses on the attached interfaces.
      ip netns exec "$nns" sysctl -qw net.ipv6.conf.all.disable_ipv6=1 net.ipv6.conf.default.disable_ipv6=1
      ip -n "$UL" link add "$uplink" type veth peer name "$uplink" netns "$nns"
      ip -n "$UL" link set "$uplink" master br0 up
      ip -n "$nns" link set "$uplink" up
      ip netns exec "$nns" setsid $fastpath run --cluster "$DIR/cluster" --node "$node" --attach "$uplink" \
        --attach-mode "$ATTACH_MODE" --cni-socket "$DIR/$node.sock" \
        --status-interval 5 --flow-log "$DIR/$node.flows.jsonl" ${FP_DEMO_RUN_ARGS:-} > "$DIR/$node.log" 2>&1 < /dev/null &
      echo $! > "$DIR/$node.pid"
      wait_file "$DIR/$node.sock" "$node"
      continue
    fi
    : > "$DIR/$node.log"
    start_tap_node "$node" "$uplink" "$fastpath"
    wait_link "$nns" "$uplink" "$node"
    ip -n "$nns" link set "$uplink" netns "$UL"
    ip -n "$UL" link set "$uplink" master br0 up
    # The node's own stack: its address on the host TAP (with the node's MAC, which FastPath sends the node's traffic
    # to), so the health check node ports and /healthz that `fastpath run` serves in this namespace are reachable.
    wait_link "$nns" fp-host "$node"
    ip netns exec "$nns" sysctl -qw net.ipv6.conf.all.disable_ipv6=1 net.ipv6.conf.default.disable_ipv6=1
    ip -n "$nns" link set fp-host address "$mac" up
    ip -n "$nns" addr add "$ip/24" dev fp-host
  done <<< "$NODES"

  local servers=()
  while read -r node ns pod ip4 ip6 mac role; do
    local pns nns tap id
    pns=$(ns_pod "$ns" "$pod") nns=$(ns_node "$node") tap=$(tap_name "$ns" "$pod")
    id=${pns#"$P"-}
    new_ns "$pns"
    if [ "$PORTS" = veth ]; then
      cni ADD "$node" "$ns" "$pod" "$ip4" "$ip6" "$mac" > "$DIR/$id.cni.json" \
        || { echo "demo-cluster: fastpath-cni ADD $ns/$pod failed: $(cat "$DIR/$id.cni.json")" >&2; return 1; }
    else
    wait_link "$nns" "$tap" "$node"
    ip -n "$nns" link set "$tap" netns "$pns"
    ip -n "$pns" link set "$tap" name eth0
    ip -n "$pns" link set eth0 address "$mac" mtu 1450 up
    ip -n "$pns" addr add "$ip4/32" dev eth0
    ip -n "$pns" addr add "$ip6/128" dev eth0 nodad
    ip -n "$pns" route add 169.254.1.1 dev eth0 scope link
    ip -n "$pns" route add default via 169.254.1.1 dev eth0
    ip -n "$pns" -6 route add default via fe80::1 dev eth0
    fi
    local tcp=8080 udp=5353
    case $role in
      web) ip netns exec "$pns" setsid iperf3 -s -D --logfile "$DIR/$id-iperf3.log" --pidfile "$DIR/$id-iperf3.pid" ;;
      policy)
        tcp=80,81 udp=53,80
        ip netns exec "$pns" sysctl -qw "net.ipv4.ping_group_range=0 0" "net.ipv4.ip_local_port_range=61000 65000" ;;
      *) continue ;;
    esac
    ip netns exec "$pns" setsid "$PY" "$ROOT/scripts/demo-backend.py" "$id" "$ip4" "$tcp" "$udp" > "$DIR/$id.log" 2>&1 < /dev/null &
    echo $! > "$DIR/$id.pid"
    servers+=("$pns ${tcp%%,*} $id")
  done <<< "$PODS"
  local server
  for server in "${servers[@]}"; do
    read -r pns tcp id <<< "$server"
    wait_listening "$pns" "$tcp" "$id"
  done
  echo "demo cluster $P is up: manifests in $DIR/cluster, FastPath logs in $DIR/node-*.log"
  echo "  try: ip netns exec $(ns_pod - client) curl -s http://10.96.0.20/"
}

down() {
  # Pods on veths leave as a runtime removes them: the plugin's DEL while the node still runs (idempotent, so a pod
  # that was never added is fine).
  if [ "$PORTS" = veth ] && [ -x "$DIR/cni-bin/fastpath-cni" ]; then
    CNI_PATH=$DIR/cni-bin:/usr/lib/cni:/opt/cni/bin
    while read -r node ns pod ip4 ip6 mac _; do
      [ -e "/var/run/netns/$(ns_node "$node")" ] && cni DEL "$node" "$ns" "$pod" "$ip4" "$ip6" "$mac" >/dev/null 2>&1 || true
    done <<< "$PODS"
  fi
  for f in "$DIR"/*.pid; do
    [ -e "$f" ] || continue
    local pid
    pid=$(cat "$f")
    kill "$pid" 2>/dev/null || true
    for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$pid" 2>/dev/null || true
    rm -f "$f"
  done
  while read -r _ ns pod _; do ip netns del "$(ns_pod "$ns" "$pod")" 2>/dev/null || true; done <<< "$PODS"
  while read -r node _; do ip netns del "$(ns_node "$node")" 2>/dev/null || true; done <<< "$NODES"
  ip netns del "$EXT" 2>/dev/null || true
  ip netns del "$UL" 2>/dev/null || true
  rm -rf "$DIR/ipam-node-a" "$DIR/ipam-node-b" "$DIR"/node-*.sock
  [ -z "${FP_DEMO_STATE_DIR:-}" ] || rm -rf "$FP_DEMO_STATE_DIR/node-a" "$FP_DEMO_STATE_DIR/node-b"
}

in_pod() { local pod=$1; shift; ip netns exec "$(ns_pod - "$pod")" "$@"; }

check() {
  local what=$1; shift
  if out=$("$@" 2>&1); then echo "ok    $what: $(echo "$out" | tail -1)"; else echo "FAIL  $what: $out"; failures=$((failures + 1)); fi
}

# health_check NODE-IP CODE: the external client's GET of web-lb-local-a's healthCheckNodePort answers CODE.
health_check() {
  local out code
  out=$(ip netns exec "$EXT" curl -sS -m 5 -w ' %{http_code}' "http://$1:32084/") || return 1
  code=${out##* }
  echo "$out"
  [ "$code" = "$2" ]
}

demo_test() {
  failures=0
  check "pod to pod, same node, ping IPv4"       in_pod client ping -c 2 -i 0.2 -W 2 10.244.1.11
  check "pod to pod, across nodes, ping IPv4"    in_pod client ping -c 2 -i 0.2 -W 2 10.244.2.11
  check "pod to pod, across nodes, ping IPv6"    in_pod client ping -6 -c 2 -i 0.2 -W 2 fd00:10:244:2::b
  check "pod to pod, across nodes, HTTP"         in_pod client curl -sS -m 5 http://10.244.2.11:8080/
  check "pod to Service ClusterIP, HTTP"         in_pod client curl -sS -m 5 http://10.96.0.20/
  check "pod to Service ClusterIP, IPv6 HTTP"    in_pod client curl -sS -m 5 "http://[fd00:10:96::20]/"
  check "pod to Service ClusterIP, DNS"          in_pod cart dig +short +time=2 +tries=2 @10.96.0.20 web.shop.svc.cluster.local
  check "external to NodePort (Cluster)"         ip netns exec "$EXT" curl -sS -m 5 http://192.168.56.11:30080/
  check "external to LoadBalancer (Local)"       ip netns exec "$EXT" curl -sS -m 5 http://192.168.57.11/
  check "pod to outside the cluster (uplinkGateway, ARP)" in_pod client ping -c 3 -i 0.2 -W 2 192.168.56.1
  check "health check node port, node-a: 200"    health_check 192.168.56.11 200
  check "health check node port, node-b: 503"    health_check 192.168.56.12 503
  echo "$failures failed"
  [ "$failures" = 0 ]
}

case "${1:-}" in
  up)
    [ "$(id -u)" = 0 ] || { echo "demo-cluster: needs root (network namespaces, TAP devices)" >&2; exit 1; }
    [ -e /dev/net/tun ] || { echo "demo-cluster: /dev/net/tun is missing (modprobe tun)" >&2; exit 1; }
    "$ROOT/scripts/install-deps.sh"
    down
    trap 'echo "demo-cluster: up failed, tearing down" >&2; down' ERR
    up
    ;;
  down) down ;;
  test) demo_test ;;
  restart) shift; restart "$@" ;;
  cni) shift; CNI_PATH=$DIR/cni-bin:/usr/lib/cni:/opt/cni/bin; cni "$@" ;;
  *) echo "usage: $0 up|down|test|restart NODE term|kill|cni COMMAND NODE NAMESPACE POD IPV4 IPV6 MAC [PREVRESULT]" >&2; exit 2 ;;
esac
