#!/usr/bin/env bash
# Builds and tears down, in network namespaces of its own, node-a as a Linux box whose Services are kube-proxy's
# nftables mode and whose off-cluster pod traffic is masqueraded (tests/kernel/kube-proxy-service.nft), for
# tests/FastPath.Tests/Kernel/ServiceKernelDifferentialTests.cs. Every address, MAC and route mirrors the cluster the
# test hands to `fastpath replay`; traffic never leaves the four namespaces.
#
#   service-topology.sh stale            delete fpsk-* namespaces left by a crashed run
#   service-topology.sh up ID            fpsk-ID-client, fpsk-ID-backend, -backend2, -backend3, fpsk-ID-node, fpsk-ID-outside
#   service-topology.sh run ID DIR       send the frames of service_frames.py (DIR/in-<sender>.pcap); the kernel's
#                                        deliveries are DIR/kernel-backend.pcap, kernel-client.pcap, kernel-outside.pcap
#   service-topology.sh run-multi ID DIR connections to the three-endpoint Service, by service_multi_frames.py send:
#                                        DIR/in-<sender>.pcap as sent, DIR/kernel-<receiver>.pcap as delivered
#   service-topology.sh down ID          delete the namespaces (their veths go with them)
#
#   client  (pod 10.244.1.10/32, eth0 02:42:0a:f4:01:0a) ==veth== node pod0 ee:ee:ee:ee:ee:ee, proxy_arp
#   backend (pod 10.244.1.11/32, eth0 02:42:0a:f4:01:0b) ==veth== node pod1 ee:ee:ee:ee:ee:ee, proxy_arp
#   backend2 (10.244.1.12/32, 02:42:0a:f4:01:0c) on pod2, backend3 (10.244.1.13/32, 02:42:0a:f4:01:0d) on pod3: the
#   other endpoints of the three-endpoint Service
#   node: ip_forward, nft rules, uplink 192.168.56.11/24 02:00:00:00:01:01, default via 192.168.56.1
#   node uplink ==veth== outside (eth0 02:00:00:00:00:fe: 192.168.56.1/24 the router, 203.0.113.5/32 the external host)
set -euo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
PY=/usr/bin/python3
CLIENT_MAC=02:42:0a:f4:01:0a
BACKEND_MAC=02:42:0a:f4:01:0b
GATEWAY_MAC=ee:ee:ee:ee:ee:ee   # host side of the pod veths (Calico's), which FastPath also answers ARP with
NODE_MAC=02:00:00:00:01:01
OUTSIDE_MAC=02:00:00:00:00:fe
WAIT=20                          # seconds any capture may take before it is cut off (python starting scapy on a
                                 # loaded machine took more than 5)

cmd=${1:?usage: $0 stale|up|run|down ID [DIR]}

if [ "$cmd" = stale ]; then
  for ns in $(ip netns list | awk '{print $1}' | grep '^fpsk-' || true); do ip netns del "$ns" || true; done
  exit 0
fi

id=${2:?ID required}
C=fpsk-$id-client B=fpsk-$id-backend B2=fpsk-$id-backend2 B3=fpsk-$id-backend3 N=fpsk-$id-node O=fpsk-$id-outside

# Starts tcpdump in namespace $1 on eth0 writing $2 until $3 IPv4 packets arrived (or WAIT seconds passed), and returns
# once it is listening so nothing sent afterwards is missed. Appends its pid to CAPTURE_PIDS.
CAPTURE_PIDS=()
capture() {
  local ns=$1 out=$2 count=$3
  timeout "$WAIT" ip netns exec "$ns" tcpdump -Z root -i eth0 -nn -U -Q in -c "$count" -w "$out" ip 2>"$out.log" &
  CAPTURE_PIDS+=($!)
  for _ in $(seq 50); do
    grep -q 'listening on' "$out.log" 2>/dev/null && return 0
    sleep 0.1
  done
  echo "tcpdump in $ns did not start: $(cat "$out.log")" >&2
  return 1
}

# A pod (or host) namespace that only receives: its own stack must not answer the crafted packets (RST, ICMP port
# unreachable) and disturb the node's conntrack. tcpdump sees packets before this input hook.
sink() {
  ip netns exec "$1" nft -f - <<'NFT'
add table ip sink
add chain ip sink input { type filter hook input priority 0 ; policy drop ; }
NFT
}

# pod NS HOST_IF POD_IP POD_MAC: the pod as Calico/Flannel CNI wires it, a /32 and a default route via a link-local
# gateway that the host side of the veth answers by proxy ARP; a permanent neighbour on the node so delivery never
# waits on ARP inside the bounded capture window.
pod() {
  local ns=$1 host_if=$2 ip=$3 mac=$4
  ip -n "$N" link add "$host_if" address "$GATEWAY_MAC" type veth peer name eth0 netns "$ns" address "$mac"
  ip -n "$ns" addr add "$ip/32" dev eth0
  ip -n "$ns" link set eth0 up
  ip -n "$ns" route add 169.254.1.1 dev eth0 scope link
  ip -n "$ns" route add default via 169.254.1.1 dev eth0 onlink
  ip netns exec "$N" sysctl -qw "net.ipv4.conf.$host_if.proxy_arp=1"
  ip -n "$N" link set "$host_if" up
  ip -n "$N" route add "$ip" dev "$host_if"
  ip -n "$N" neigh add "$ip" lladdr "$mac" dev "$host_if" nud permanent
  sink "$ns"
}

case "$cmd" in
  up)
    for ns in "$C" "$B" "$B2" "$B3" "$N" "$O"; do
      ip netns add "$ns"
      ip -n "$ns" link set lo up
      # No IPv6 autoconfiguration chatter (router/neighbor solicitations) on the links this test captures.
      ip netns exec "$ns" sysctl -qw net.ipv6.conf.all.disable_ipv6=1 net.ipv6.conf.default.disable_ipv6=1
    done
    ip netns exec "$N" sysctl -qw net.ipv4.ip_forward=1
    pod "$C" pod0 10.244.1.10 "$CLIENT_MAC"
    pod "$B" pod1 10.244.1.11 "$BACKEND_MAC"
    pod "$B2" pod2 10.244.1.12 02:42:0a:f4:01:0c
    pod "$B3" pod3 10.244.1.13 02:42:0a:f4:01:0d

    # The uplink: the outside namespace is both the underlay router (192.168.56.1) and the external host 203.0.113.5.
    ip -n "$N" link add uplink address "$NODE_MAC" type veth peer name eth0 netns "$O" address "$OUTSIDE_MAC"
    ip -n "$N" addr add 192.168.56.11/24 dev uplink
    ip -n "$N" link set uplink up
    ip -n "$N" route add default via 192.168.56.1 dev uplink
    ip -n "$N" neigh add 192.168.56.1 lladdr "$OUTSIDE_MAC" dev uplink nud permanent
    ip -n "$O" addr add 192.168.56.1/24 dev eth0
    ip -n "$O" addr add 203.0.113.5/32 dev eth0
    ip -n "$O" link set eth0 up
    ip -n "$O" neigh add 192.168.56.11 lladdr "$NODE_MAC" dev eth0 nud permanent
    sink "$O"

    ip netns exec "$N" nft -f "$HERE/kube-proxy-service.nft"
    ;;
  run)
    dir=${3:?DIR required}
    capture "$B" "$dir/kernel-backend.pcap" 3   # SYN, ACK, UDP query
    capture "$C" "$dir/kernel-client.pcap" 3    # SYN-ACK, UDP reply, off-cluster SYN-ACK
    capture "$O" "$dir/kernel-outside.pcap" 1   # the masqueraded SYN
    "$PY" "$HERE/service_frames.py" "$dir" "$C" "$B" "$O"
    for pid in "${CAPTURE_PIDS[@]}"; do wait "$pid" || true; done
    echo "node conntrack after the run:"
    ip netns exec "$N" conntrack -L 2>/dev/null || ip netns exec "$N" cat /proc/net/nf_conntrack 2>/dev/null || true
    ;;
  run-multi)
    dir=${3:?DIR required}
    "$PY" "$HERE/service_multi_frames.py" send "$dir" "$C" "$B" "$B2" "$B3"
    ;;
  down)
    for ns in "$C" "$B" "$B2" "$B3" "$N" "$O"; do ip netns del "$ns" 2>/dev/null || true; done
    ;;
  *) echo "unknown command $cmd" >&2; exit 2 ;;
esac
