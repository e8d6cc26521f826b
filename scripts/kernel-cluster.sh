#!/usr/bin/env bash
# The demo cluster of scripts/demo-cluster.sh with the Linux kernel as the data plane instead of FastPath, for
# side-by-side measurements (scripts/bench-live.sh): the same namespaces, addresses, MACs and MTUs, but each node is a
# Linux router (ip_forward) with
#   - a veth per pod, host side ee:ee:ee:ee:ee:ee with proxy ARP (Calico's wiring; the pod sees the same /32 and
#     gateway 169.254.1.1 as with FastPath, pinned as a permanent neighbour) and a /32 route to the pod,
#   - a Flannel-style vxlan device flannel.1 (VNI 1, UDP 8472, MTU 1450) with the peer's VTEP MAC, neighbour and FDB
#     entries configured statically, as flanneld does, and a route to the peer's podCIDR through it,
#   - kube-proxy-style nftables DNAT for the ClusterIP 10.96.0.30:5201 → web-b:5201 (the Service bench-live measures),
#   - an uplink veth on the underlay bridge.
#
#   scripts/kernel-cluster.sh up|down      environment: FP_KERNEL (namespace prefix, default fpk)
set -euo pipefail

P=${FP_KERNEL:-fpk}
UL=$P-underlay
# node  underlay-ip    mac                vtep-mac           podCIDR
NODES="node-a 192.168.56.11 02:00:00:00:01:01 0a:00:00:00:01:01 1
node-b 192.168.56.12 02:00:00:00:02:01 0a:00:00:00:02:01 2"
# node  pod    ipv4         mac
PODS="node-a client 10.244.1.10 02:42:0a:f4:01:0a
node-a web-a 10.244.1.11 02:42:0a:f4:01:0b
node-b web-b 10.244.2.11 02:42:0a:f4:02:0b
node-b cart 10.244.2.12 02:42:0a:f4:02:0c"

new_ns() {
  ip netns add "$1"
  ip -n "$1" link set lo up
  ip netns exec "$1" sysctl -qw net.ipv6.conf.all.disable_ipv6=1 net.ipv6.conf.default.disable_ipv6=1
}

down() {
  for f in /tmp/"$P"-*-iperf3.pid; do
    [ -e "$f" ] || continue
    kill "$(cat "$f")" 2>/dev/null || true
    rm -f "$f"
  done
  while read -r _ pod _; do ip netns del "$P-$pod" 2>/dev/null || true; done <<< "$PODS"
  while read -r node _; do ip netns del "$P-$node" 2>/dev/null || true; done <<< "$NODES"
  ip netns del "$UL" 2>/dev/null || true
}

up() {
  new_ns "$UL"
  ip -n "$UL" link add br0 type bridge
  ip -n "$UL" link set br0 up
  while read -r node ip mac vtep sub; do
    local n=$P-$node
    new_ns "$n"
    ip netns exec "$n" sysctl -qw net.ipv4.ip_forward=1
    ip -n "$n" link add uplink address "$mac" type veth peer name "ul-${node#node-}" netns "$UL"
    ip -n "$UL" link set "ul-${node#node-}" master br0 up
    ip -n "$n" addr add "$ip/24" dev uplink
    ip -n "$n" link set uplink up
    ip -n "$n" link add flannel.1 address "$vtep" type vxlan id 1 dev uplink local "$ip" dstport 8472 nolearning
    ip -n "$n" link set flannel.1 mtu 1450 up
    ip -n "$n" addr add "10.244.$sub.0/32" dev flannel.1
  done <<< "$NODES"
  # Each node knows the other's VTEP as flanneld programs it: route via the peer's .0 on flannel.1, a permanent
  # neighbour for it with the peer's VTEP MAC, and an FDB entry sending that MAC to the peer's underlay address.
  while read -r node _ _ _ sub; do
    while read -r peer pip _ pvtep psub; do
      [ "$peer" = "$node" ] && continue
      ip -n "$P-$node" route add "10.244.$psub.0/24" via "10.244.$psub.0" dev flannel.1 onlink
      ip -n "$P-$node" neigh add "10.244.$psub.0" lladdr "$pvtep" dev flannel.1 nud permanent
      ip netns exec "$P-$node" bridge fdb append "$pvtep" dev flannel.1 dst "$pip"
    done <<< "$NODES"
  done <<< "$NODES"

  local i=0
  while read -r node pod ip mac; do
    local pns=$P-$pod n=$P-$node host_if=pod$i
    i=$((i + 1))
    new_ns "$pns"
    ip -n "$n" link add "$host_if" address ee:ee:ee:ee:ee:ee type veth peer name eth0 netns "$pns" address "$mac"
    ip -n "$pns" link set eth0 mtu 1450 up
    ip -n "$pns" addr add "$ip/32" dev eth0
    ip -n "$pns" route add 169.254.1.1 dev eth0 scope link
    ip -n "$pns" route add default via 169.254.1.1 dev eth0
    # Proxy ARP only answers for addresses the node routes elsewhere, and these nodes have no default route.
    ip -n "$pns" neigh add 169.254.1.1 lladdr ee:ee:ee:ee:ee:ee dev eth0 nud permanent
    ip netns exec "$n" sysctl -qw "net.ipv4.conf.$host_if.proxy_arp=1"
    ip -n "$n" link set "$host_if" mtu 1450 up
    ip -n "$n" route add "$ip" dev "$host_if"
    case "$pod" in web-*)
      ip netns exec "$pns" iperf3 -s -D --pidfile "/tmp/$P-$pod-iperf3.pid" ;;
    esac
  done <<< "$PODS"

  # kube-proxy nftables mode, reduced to the one Service measured: ClusterIP 10.96.0.30:5201/TCP → 10.244.2.11:5201,
  # on both nodes (prerouting DNAT where the client's packets enter).
  while read -r node _; do
    ip netns exec "$P-$node" nft -f - <<'NFT'
add table ip kube-proxy
add map ip kube-proxy service-ips { type ipv4_addr . inet_proto . inet_service : verdict ; }
add chain ip kube-proxy services
add chain ip kube-proxy nat-prerouting { type nat hook prerouting priority -100 ; }
add rule ip kube-proxy nat-prerouting jump services
add rule ip kube-proxy services ip daddr . meta l4proto . th dport vmap @service-ips
add chain ip kube-proxy service-iperf
add rule ip kube-proxy service-iperf meta l4proto tcp dnat to 10.244.2.11:5201
add element ip kube-proxy service-ips { 10.96.0.30 . tcp . 5201 : goto service-iperf }
NFT
  done <<< "$NODES"
  for _ in $(seq 50); do
    ip netns exec "$P-web-b" ss -ltn 2>/dev/null | grep -q ':5201' && break
    sleep 0.1
  done
  echo "kernel cluster $P is up"
}

case "${1:-}" in
  up)
    down
    trap 'echo "kernel-cluster: up failed, tearing down" >&2; down' ERR
    up
    ;;
  down) down ;;
  *) echo "usage: $0 up|down" >&2; exit 2 ;;
esac
