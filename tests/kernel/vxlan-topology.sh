#!/usr/bin/env bash
# Builds and tears down, in network namespaces of its own, node-a as a Linux box running Flannel's vxlan backend,
# for tests/FastPath.Tests/Kernel/VxlanKernelDifferentialTests.cs. Every address, MAC and route mirrors the cluster
# the test hands to `fastpath replay`; traffic never leaves the three namespaces.
#
#   vxlan-topology.sh stale                 delete fpkd-* namespaces left by a crashed run
#   vxlan-topology.sh up ID                 fpkd-ID-client, fpkd-ID-node, fpkd-ID-underlay
#   vxlan-topology.sh encap ID DIR          client sends DIR/encap-in.pcap; DIR/kernel-encap.pcap is the underlay's view
#   vxlan-topology.sh decap ID DIR          underlay sends DIR/decap-in.pcap; DIR/kernel-decap.pcap is the pod's view
#   vxlan-topology.sh down ID               delete the namespaces (their veths and the vxlan device go with them)
#
#   client (pod 10.244.1.10/32, eth0 02:42:0a:f4:01:0a) ==veth== node (pod0 ee:ee:ee:ee:ee:ee, proxy_arp)
#   node: flannel.1 vxlan VNI 1 :8472 local 192.168.56.11, uplink 192.168.56.11/24 02:00:00:00:01:01
#   node uplink ==veth== underlay (eth0 192.168.56.12/24 02:00:00:00:02:01, i.e. node-b)
set -euo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
PY=/usr/bin/python3
NODE_A_MAC=02:00:00:00:01:01
NODE_B_MAC=02:00:00:00:02:01
POD_MAC=02:42:0a:f4:01:0a
GATEWAY_MAC=ee:ee:ee:ee:ee:ee   # Calico's host-side veth MAC, which FastPath also answers ARP with
WAIT=20                          # seconds any capture may take before it is cut off (python starting scapy on a
                                 # loaded machine took more than 5)

cmd=${1:?usage: $0 stale|up|encap|decap|down ID [DIR]}

if [ "$cmd" = stale ]; then
  for ns in $(ip netns list | awk '{print $1}' | grep '^fpkd-' || true); do ip netns del "$ns" || true; done
  exit 0
fi

id=${2:?ID required}
C=fpkd-$id-client N=fpkd-$id-node U=fpkd-$id-underlay

# Starts tcpdump in namespace $1 on eth0 writing $2 until $3 packets matched filter $4 (or WAIT seconds passed),
# and returns once it is listening so nothing sent afterwards is missed.
capture() {
  local ns=$1 out=$2 count=$3 filter=$4
  timeout "$WAIT" ip netns exec "$ns" tcpdump -Z root -i eth0 -nn -U -c "$count" -w "$out" "$filter" 2>"$out.log" &
  CAPTURE_PID=$!
  for _ in $(seq 50); do
    grep -q 'listening on' "$out.log" 2>/dev/null && return 0
    sleep 0.1
  done
  echo "tcpdump in $ns did not start: $(cat "$out.log")" >&2
  return 1
}

case "$cmd" in
  up)
    for ns in "$C" "$N" "$U"; do
      ip netns add "$ns"
      ip -n "$ns" link set lo up
      # No IPv6 autoconfiguration chatter (router/neighbor solicitations) on the links this test captures.
      ip netns exec "$ns" sysctl -qw net.ipv6.conf.all.disable_ipv6=1 net.ipv6.conf.default.disable_ipv6=1
    done

    # The pod, as Calico/Flannel CNI wires it: a /32 and a default route via a link-local gateway that the host side
    # of the veth answers by proxy ARP.
    ip -n "$N" link add pod0 address "$GATEWAY_MAC" type veth peer name eth0 netns "$C" address "$POD_MAC"
    ip -n "$C" addr add 10.244.1.10/32 dev eth0
    ip -n "$C" link set eth0 up
    ip -n "$C" route add 169.254.1.1 dev eth0 scope link
    ip -n "$C" route add default via 169.254.1.1 dev eth0 onlink
    ip netns exec "$N" sysctl -qw net.ipv4.ip_forward=1 net.ipv4.conf.pod0.proxy_arp=1
    ip -n "$N" link set pod0 up
    ip -n "$N" route add 10.244.1.10 dev pod0
    # A permanent neighbour so delivery to the pod never waits on ARP inside the test's bounded capture window.
    ip -n "$N" neigh add 10.244.1.10 lladdr "$POD_MAC" dev pod0 nud permanent

    # The underlay: node-a's uplink to node-b (the underlay namespace stands in for node-b).
    ip -n "$N" link add uplink address "$NODE_A_MAC" type veth peer name eth0 netns "$U" address "$NODE_B_MAC"
    ip -n "$N" addr add 192.168.56.11/24 dev uplink
    ip -n "$N" link set uplink up
    ip -n "$U" addr add 192.168.56.12/24 dev eth0
    ip -n "$U" link set eth0 up
    ip -n "$N" neigh add 192.168.56.12 lladdr "$NODE_B_MAC" dev uplink nud permanent
    ip -n "$U" neigh add 192.168.56.11 lladdr "$NODE_A_MAC" dev eth0 nud permanent

    # Exactly what Flannel's vxlan backend installs for node-b (VtepMAC = node-b's MAC), plus srcport so the kernel's
    # outer source port range is FastPath's 49152-65535 (the kernel's max is exclusive, so it uses 49152-65534).
    ip -n "$N" link add flannel.1 address "$NODE_A_MAC" type vxlan id 1 dstport 8472 local 192.168.56.11 dev uplink nolearning srcport 49152 65535
    ip -n "$N" link set flannel.1 up
    ip -n "$N" route add 10.244.2.0/24 via 10.244.2.0 dev flannel.1 onlink
    ip -n "$N" neigh add 10.244.2.0 lladdr "$NODE_B_MAC" dev flannel.1 nud permanent
    ip netns exec "$N" bridge fdb add "$NODE_B_MAC" dev flannel.1 dst 192.168.56.12
    ;;
  encap)
    dir=${3:?DIR required}
    capture "$U" "$dir/kernel-encap.pcap" 3 'udp dst port 8472'
    ip netns exec "$C" "$PY" "$HERE/vxlan_frames.py" encap "$dir/encap-in.pcap"
    wait "$CAPTURE_PID" || true
    ;;
  decap)
    dir=${3:?DIR required}
    capture "$C" "$dir/kernel-decap.pcap" 1 'ip and dst host 10.244.1.10'
    ip netns exec "$U" "$PY" "$HERE/vxlan_frames.py" decap "$dir/decap-in.pcap"
    wait "$CAPTURE_PID" || true
    ;;
  down)
    for ns in "$C" "$N" "$U"; do ip netns del "$ns" 2>/dev/null || true; done
    ;;
  *) echo "unknown command $cmd" >&2; exit 2 ;;
esac
