#!/usr/bin/python3
"""Generates FastPath's own conformance cases under cases/, in the format of ../../../shared/conformance
(see its README): case.json + cluster/ + input.pcap, input packet i at timestamp 1000 + i.

Run with Debian's python3 (scapy). tests/FastPath.Tests/Conformance runs every case with the shared run.py.
"""
import json, os

from scapy.all import ARP, ICMP, IP, IPv6, TCP, UDP, Dot1Q, Dot1AD, Ether, Raw, wrpcap
from scapy.layers.vxlan import VXLAN
from scapy.layers.inet6 import ICMPv6DestUnreach, ICMPv6ND_NS, ICMPv6NDOptSrcLLAddr, IPv6ExtHdrHopByHop, IPv6ExtHdrDestOpt, IPv6ExtHdrFragment

HERE = os.path.dirname(os.path.abspath(__file__))
GW = "ee:ee:ee:ee:ee:ee"
CLIENT_MAC, WEB1_MAC, NODE_B_MAC = "02:42:0a:f4:01:0a", "02:42:0a:f4:01:0b", "02:00:00:00:02:01"
WEB2_MAC = "02:42:0a:f4:01:0c"
NODE_A_MAC, ROUTER_MAC = "02:00:00:00:01:01", "02:00:00:00:00:fe"
NODE_A, NODE_B = "192.168.56.11", "192.168.56.12"

CONFIG = """\
apiVersion: fastpath.io/v1alpha1
kind: FastPathConfiguration
clusterCIDRs: [10.244.0.0/16, "fd00:10:244::/56"]
serviceCIDRs: [10.96.0.0/12]
uplinkGatewayMAC: "02:00:00:00:00:fe"
{extra}---
"""

CLUSTER = """\
apiVersion: v1
kind: Node
metadata:
  name: node-a
  annotations: {fastpath.io/mac: "02:00:00:00:01:01"}
spec: {podCIDR: 10.244.1.0/24, podCIDRs: [10.244.1.0/24, "fd00:10:244:1::/64"]}
status: {addresses: [{type: InternalIP, address: 192.168.56.11}, {type: InternalIP, address: "fd00:56::11"}]}
---
apiVersion: v1
kind: Node
metadata:
  name: node-b
  annotations: {fastpath.io/mac: "02:00:00:00:02:01"}
spec: {podCIDR: 10.244.2.0/24, podCIDRs: [10.244.2.0/24, "fd00:10:244:2::/64"]}
status: {addresses: [{type: InternalIP, address: 192.168.56.12}, {type: InternalIP, address: "fd00:56::12"}]}
---
apiVersion: v1
kind: Pod
metadata:
  name: client
  namespace: default
  annotations: {fastpath.io/mac: "02:42:0a:f4:01:0a"}
spec: {nodeName: node-a, containers: [{name: c, image: busybox}]}
status: {podIP: 10.244.1.10, podIPs: [{ip: 10.244.1.10}, {ip: "fd00:10:244:1::a"}]}
---
apiVersion: v1
kind: Pod
metadata:
  name: web-1
  namespace: default
  annotations: {fastpath.io/mac: "02:42:0a:f4:01:0b"}
spec: {nodeName: node-a, containers: [{name: web, image: nginx}]}
status: {podIP: 10.244.1.11, podIPs: [{ip: 10.244.1.11}, {ip: "fd00:10:244:1::b"}]}
"""


def client(l3):
    return Ether(src=CLIENT_MAC, dst=GW) / l3


def write_case(name, feature, why, packets, expect, inputs=None, config="", cluster=CLUSTER):
    d = os.path.join(HERE, "cases", name)
    os.makedirs(os.path.join(d, "cluster"), exist_ok=True)
    with open(os.path.join(d, "cluster", "cluster.yaml"), "w") as f:
        f.write(config + cluster)
    for i, p in enumerate(packets, 1):
        p.time = 1000 + i
    wrpcap(os.path.join(d, "input.pcap"), packets)
    spec = {"feature": feature, "why": why, "node": "node-a", "inputs": inputs or ["input.pcap"],
            "packets": len(packets), "expect": expect}
    with open(os.path.join(d, "case.json"), "w") as f:
        json.dump(spec, f, indent=2)
        f.write("\n")


def main():
    write_case(
        "proxy-arp", "same-node neighbor",
        "Pods resolve every address to the gateway MAC (proxy ARP, as Calico); probes and announcements stay unanswered (RFC 5227).",
        [Ether(src=CLIENT_MAC, dst="ff:ff:ff:ff:ff:ff") / ARP(op=1, hwsrc=CLIENT_MAC, psrc="10.244.1.10", pdst="10.244.1.1"),
         Ether(src=CLIENT_MAC, dst="ff:ff:ff:ff:ff:ff") / ARP(op=1, hwsrc=CLIENT_MAC, psrc="0.0.0.0", pdst="10.244.1.10"),
         Ether(src=CLIENT_MAC, dst="ff:ff:ff:ff:ff:ff") / ARP(op=1, hwsrc=CLIENT_MAC, psrc="10.244.1.10", pdst="10.244.1.10")],
        [{"packet": 1, "emits": [{"port": "default/client", "checks": {
            "eth.dst": CLIENT_MAC, "eth.src": GW, "arp.op": 2, "arp.psrc": "10.244.1.1", "arp.pdst": "10.244.1.10", "arp.hwsrc": GW}}]},
         {"packet": 2, "drop": "consumed"},
         {"packet": 3, "drop": "consumed"}])

    write_case(
        "proxy-ndp", "same-node neighbor ipv6",
        "IPv6 pods get a Neighbor Advertisement with the gateway MAC for any target (RFC 4861 §7.2.4).",
        [client(IPv6(src="fe80::a", dst="ff02::1:ff00:1", hlim=255) / ICMPv6ND_NS(tgt="fe80::1") / ICMPv6NDOptSrcLLAddr(lladdr=CLIENT_MAC))],
        [{"packet": 1, "emits": [{"port": "default/client", "checks": {
            "eth.dst": CLIENT_MAC, "ip.src": "fe80::1", "ip.dst": "fe80::a", "ip.ttl": 255, "icmp.type": 136}}]}])

    syn6 = TCP(sport=40000, dport=8080, flags="S")
    write_case(
        "same-node-ipv6", "same-node ipv6",
        "IPv6 pods on one node reach each other without NAT; the router decrements the hop limit (RFC 8200 §3).",
        [client(IPv6(src="fd00:10:244:1::a", dst="fd00:10:244:1::b") / syn6),
         client(IPv6(src="fd00:10:244:1::a", dst="fd00:10:244:1::b") / IPv6ExtHdrHopByHop() / IPv6ExtHdrDestOpt() / UDP(sport=5000, dport=5001) / Raw(b"x" * 10)),
         client(IPv6(src="fd00:10:244:1::a", dst="fd00:10:244:1::b") / IPv6ExtHdrFragment(offset=0, m=1, id=9) / UDP(sport=5000, dport=5001) / Raw(b"y" * 16)),
         client(IPv6(src="fd00:10:244:1::a", dst="fd00:10:244:1::b") / IPv6ExtHdrFragment(offset=2, m=0, id=9) / Raw(b"z" * 8))],
        [{"packet": i, "emits": [{"port": "default/web-1", "checks": {
            "ip.src": "fd00:10:244:1::a", "ip.dst": "fd00:10:244:1::b", "ip.ttl": 63, "eth.dst": WEB1_MAC, "eth.src": GW}}]}
         for i in (1, 2, 3, 4)])

    write_case(
        "ttl-expired", "icmp ttl",
        "A packet whose TTL / hop limit would reach zero is dropped and answered with time exceeded quoting it (RFC 1812 §5.3.1, RFC 4443 §3.3).",
        [client(IP(src="10.244.1.10", dst="10.244.1.11", ttl=1) / UDP(sport=33434, dport=33434)),
         client(IPv6(src="fd00:10:244:1::a", dst="fd00:10:244:1::b", hlim=1) / UDP(sport=33435, dport=33435)),
         client(IP(src="10.244.1.10", dst="10.244.1.11", ttl=1) / ICMP(type=3, code=3) / IP(src="10.244.1.11", dst="10.244.1.10") / UDP(sport=1, dport=2))],
        [{"packet": 1, "drop": "ttl-exceeded", "emits": [{"port": "default/client", "checks": {
            "ip.src": "192.168.56.11", "ip.dst": "10.244.1.10", "icmp.type": 11, "icmp.code": 0,
            "icmp.inner.ip.src": "10.244.1.10", "icmp.inner.ip.dst": "10.244.1.11", "icmp.inner.l4.dport": 33434}}]},
         {"packet": 2, "drop": "ttl-exceeded", "emits": [{"port": "default/client", "checks": {
             "ip.src": "fd00:56::11", "ip.dst": "fd00:10:244:1::a", "icmp.type": 3, "icmp.code": 0,
             "icmp.inner.ip.dst": "fd00:10:244:1::b", "icmp.inner.l4.dport": 33435}}]},
         {"packet": 3, "drop": "ttl-exceeded", "emits": []}])

    write_case(
        "spoofed-source", "same-node security",
        "A pod may only send from its own addresses (anti-spoofing, as Calico and Cilium enforce).",
        [client(IP(src="10.244.1.11", dst="10.244.1.10") / UDP(sport=1, dport=2)),
         client(IPv6(src="fd00:10:244:1::b", dst="fd00:10:244:1::a") / UDP(sport=1, dport=2)),
         client(IP(src="10.244.1.10", dst="10.244.1.11") / UDP(sport=1, dport=2))],
        [{"packet": 1, "drop": "spoofed-source"},
         {"packet": 2, "drop": "spoofed-source"},
         {"packet": 3, "emits": [{"port": "default/web-1", "checks": {"ip.src": "10.244.1.10"}}]}],
        inputs=["default/client=input.pcap"])

    write_case(
        "vlan-and-host", "same-node l2 host",
        "VLAN tags are stripped on the way to a pod; traffic to the node's own address goes to the host port unchanged.",
        [Ether(src=CLIENT_MAC, dst=GW) / Dot1AD(vlan=10) / Dot1Q(vlan=100) / IP(src="10.244.1.10", dst="10.244.1.11") / UDP(sport=1, dport=2),
         client(IP(src="10.244.1.10", dst="192.168.56.11") / TCP(sport=40000, dport=10250, flags="S")),
         Ether(src=NODE_B_MAC, dst="02:00:00:00:01:01") / IP(src="192.168.56.12", dst="10.244.1.11") / TCP(sport=50000, dport=8080, flags="S"),
         Ether(src=NODE_B_MAC, dst="02:00:00:00:01:01") / IP(src="192.168.56.12", dst="203.0.113.9") / UDP(sport=1, dport=2)],
        [{"packet": 1, "emits": [{"port": "default/web-1", "checks": {"eth.dst": WEB1_MAC, "ip.ttl": 63}}]},
         {"packet": 2, "emits": [{"port": "host", "checks": {"ip.dst": "192.168.56.11", "ip.ttl": 64}}]},
         {"packet": 3, "emits": [{"port": "default/web-1", "checks": {"ip.src": "192.168.56.12", "ip.ttl": 63}}]},
         {"packet": 4, "drop": "not-for-node"}])

    good = client(IP(src="10.244.1.10", dst="10.244.1.11") / TCP(sport=40000, dport=8080, flags="S"))
    raw = bytes(good)
    bad_sum = bytearray(raw); bad_sum[24] ^= 0xFF                          # IPv4 header checksum
    bad_ver = bytearray(raw); bad_ver[14] = 0x65                           # version 6 in an IPv4 EtherType
    short_tcp = bytes(client(IP(src="10.244.1.10", dst="10.244.1.11", proto=6) / Raw(b"\x9c\x40\x1f\x90")))
    bad_opt = bytes(client(IP(src="10.244.1.10", dst="10.244.1.11", options=[]) / UDP()))
    bad_opt = bytearray(bad_opt[:14] + bytes([0x46]) + bad_opt[15:])       # IHL 6 with an option of length 0
    bad_opt[16:18] = (len(bad_opt) - 14 + 4).to_bytes(2, "big")
    bad_opt = bad_opt[:34] + bytes([0x07, 0x00, 0x00, 0x00]) + bad_opt[34:]
    write_case(
        "malformed-more", "malformed",
        "Bad checksums, versions, truncated transport headers and broken options are dropped with a reason; the rest flows.",
        [Ether(bytes(bad_sum)), Ether(bytes(bad_ver)), Ether(short_tcp), Ether(bytes(bad_opt)),
         Ether(src=CLIENT_MAC, dst=GW, type=0x88CC) / Raw(b"\x02\x07\x04" + b"\x00" * 40), good.copy()],
        [{"packet": 1, "drop": "bad-checksum"},
         {"packet": 2, "drop": "malformed"},
         {"packet": 3, "drop": "malformed"},
         {"packet": 4, "drop": True},
         {"packet": 5, "drop": "unsupported-protocol"},
         {"packet": 6, "emits": [{"port": "default/web-1", "checks": {"ip.ttl": 63}}]}],
        inputs=["default/client=input.pcap"])

    cross_node()
    services()
    external_services()
    icmp_errors_about_nat()
    affinity()
    services_ipv6()
    external_services_ipv6()
    icmp_errors_about_nat_ipv6()
    affinity_ipv6()
    network_policy()
    endpoint_selection()
    sctp()


SERVICES = """\
---
apiVersion: v1
kind: Pod
metadata: {name: web-2, namespace: default, annotations: {fastpath.io/mac: "02:42:0a:f4:01:0c"}}
spec: {nodeName: node-a, containers: [{name: web, image: nginx}]}
status: {podIP: 10.244.1.12, podIPs: [{ip: 10.244.1.12}]}
---
apiVersion: v1
kind: Pod
metadata: {name: web-3, namespace: default}
spec: {nodeName: node-b, containers: [{name: web, image: nginx}]}
status: {podIP: 10.244.2.13, podIPs: [{ip: 10.244.2.13}, {ip: "fd00:10:244:2::d"}]}
---
apiVersion: v1
kind: Service
metadata: {name: web, namespace: default}
spec:
  clusterIP: 10.96.0.10
  clusterIPs: [10.96.0.10, "fd00:10:96::10"]
  ipFamilies: [IPv4, IPv6]
  ports: [{name: http, port: 80, targetPort: 8080, protocol: TCP}, {name: dns, port: 53, targetPort: 5353, protocol: UDP}]
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: {name: web-v4, namespace: default, labels: {kubernetes.io/service-name: web}}
addressType: IPv4
ports: [{name: http, port: 8080, protocol: TCP}, {name: dns, port: 5353, protocol: UDP}]
endpoints:
  - addresses: [10.244.1.11]
    conditions: {ready: true}
  - addresses: [10.244.1.12]
  - addresses: [10.244.2.13]
    conditions: {ready: false, serving: true, terminating: true}
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: {name: web-v6, namespace: default, labels: {kubernetes.io/service-name: web}}
addressType: IPv6
ports: [{name: http, port: 8080, protocol: TCP}]
endpoints:
  - addresses: ["fd00:10:244:1::b"]
---
apiVersion: v1
kind: Service
metadata: {name: empty, namespace: default}
spec:
  clusterIP: 10.96.0.11
  ports: [{port: 443, targetPort: 8443}]
"""


def services():
    backends4 = ["10.244.1.11:8080", "10.244.1.12:8080"]
    local = ["default/web-1", "default/web-2"]
    write_case(
        "clusterip-dual-stack", "service clusterip ipv6 udp",
        "ClusterIP (v4 and v6, TCP and UDP) is DNATed to a ready endpoint chosen by Maglev and the flow keeps it; "
        "replies are reverse-NATed; a Service without endpoints, or a port the Service lacks, is rejected with ICMP "
        "port unreachable (kube-proxy's REJECT); not-ready endpoints are never chosen.",
        [client(IP(src="10.244.1.10", dst="10.96.0.10") / TCP(sport=41000, dport=80, flags="S")),
         client(IP(src="10.244.1.10", dst="10.96.0.10") / TCP(sport=41000, dport=80, flags="A")),
         client(IP(src="10.244.1.10", dst="10.96.0.10") / UDP(sport=41001, dport=53) / Raw(b"\x00" * 12)),
         client(IPv6(src="fd00:10:244:1::a", dst="fd00:10:96::10") / TCP(sport=41002, dport=80, flags="S")),
         Ether(src=WEB1_MAC, dst=GW) / IPv6(src="fd00:10:244:1::b", dst="fd00:10:244:1::a") / TCP(sport=8080, dport=41002, flags="SA"),
         client(IP(src="10.244.1.10", dst="10.96.0.11") / TCP(sport=41003, dport=443, flags="S")),
         client(IP(src="10.244.1.10", dst="10.96.0.10") / TCP(sport=41004, dport=8080, flags="S")),
         client(IP(src="10.244.1.10", dst="10.96.0.10") / TCP(sport=41005, dport=80, flags="S")),
         client(IP(src="10.244.1.10", dst="10.96.0.10") / TCP(sport=41006, dport=80, flags="S")),
         client(IP(src="10.244.1.10", dst="10.96.0.10") / TCP(sport=41007, dport=80, flags="S"))],
        [{"packet": 1, "emits": [{"port": local, "backend_in": backends4}]},
         {"packet": 2, "emits": [{"port": local, "same_backend_as": 1}]},
         {"packet": 3, "emits": [{"port": local, "backend_in": ["10.244.1.11:5353", "10.244.1.12:5353"]}]},
         {"packet": 4, "emits": [{"port": "default/web-1", "checks": {"ip.dst": "fd00:10:244:1::b", "l4.dport": 8080, "ip.src": "fd00:10:244:1::a"}}]},
         {"packet": 5, "emits": [{"port": "default/client", "checks": {"ip.src": "fd00:10:96::10", "l4.sport": 80, "tcp.flags": "SA"}}]},
         {"packet": 6, "drop": "no-endpoints", "emits": [{"port": "default/client", "checks": {"icmp.type": 3, "icmp.code": 3, "icmp.inner.ip.dst": "10.96.0.11"}}]},
         {"packet": 7, "drop": "unknown-service-port", "emits": [{"port": "default/client", "checks": {"icmp.type": 3, "icmp.code": 3}}]},
         {"packet": 8, "emits": [{"port": local, "backend_in": backends4}]},
         {"packet": 9, "emits": [{"port": local, "backend_in": backends4}]},
         {"packet": 10, "emits": [{"port": local, "backend_in": backends4}]}],
        config=CONFIG.format(extra="") + SERVICES.lstrip("-\n") + "---\n")


def endpoint_slices(address_type, slices):
    """One EndpointSlice of port 8080/TCP per (Service name, YAML lines of its endpoints)."""
    return "".join(f"""---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: {{name: {svc}-1, namespace: default, labels: {{kubernetes.io/service-name: {svc}}}}}
addressType: {address_type}
ports: [{{port: 8080, protocol: TCP}}]
endpoints:
{eps}""" for svc, eps in slices)


EXTERNAL = """\
apiVersion: v1
kind: Pod
metadata: {name: web-3, namespace: default}
spec: {nodeName: node-b, containers: [{name: web, image: nginx}]}
status: {podIP: 10.244.2.13, podIPs: [{ip: 10.244.2.13}]}
---
apiVersion: v1
kind: Service
metadata: {name: np, namespace: default}
spec: {type: NodePort, clusterIP: 10.96.0.30, ports: [{port: 80, targetPort: 8080, nodePort: 30080}]}
---
apiVersion: v1
kind: Service
metadata: {name: npl, namespace: default}
spec: {type: NodePort, clusterIP: 10.96.0.31, externalTrafficPolicy: Local, ports: [{port: 80, targetPort: 8080, nodePort: 30081}]}
---
apiVersion: v1
kind: Service
metadata: {name: npr, namespace: default}
spec: {type: NodePort, clusterIP: 10.96.0.32, externalTrafficPolicy: Local, ports: [{port: 80, targetPort: 8080, nodePort: 30082}]}
---
apiVersion: v1
kind: Service
metadata: {name: lb, namespace: default}
spec:
  type: LoadBalancer
  clusterIP: 10.96.0.33
  loadBalancerSourceRanges: [198.51.100.0/24]
  externalIPs: [203.0.113.101]
  ports: [{port: 443, targetPort: 8080, nodePort: 30443}]
status: {loadBalancer: {ingress: [{ip: 203.0.113.100}]}}
---
apiVersion: v1
kind: Service
metadata: {name: itp, namespace: default}
spec: {clusterIP: 10.96.0.34, internalTrafficPolicy: Local, ports: [{port: 80, targetPort: 8080}]}
---
apiVersion: v1
kind: Service
metadata: {name: term, namespace: default}
spec: {type: NodePort, clusterIP: 10.96.0.35, externalTrafficPolicy: Local, ports: [{port: 80, targetPort: 8080, nodePort: 30085}]}
""" + endpoint_slices("IPv4", [
    ("np", "  - {addresses: [10.244.1.11], nodeName: node-a}\n"),
    ("npl", "  - {addresses: [10.244.1.11], nodeName: node-a}\n  - {addresses: [10.244.2.13], nodeName: node-b}\n"),
    ("npr", "  - {addresses: [10.244.2.13], nodeName: node-b}\n"),
    ("lb", "  - {addresses: [10.244.1.11], nodeName: node-a}\n"),
    ("itp", "  - {addresses: [10.244.2.13], nodeName: node-b}\n"),
    ("term", "  - {addresses: [10.244.1.11], nodeName: node-a, conditions: {ready: false, serving: true, terminating: true}}\n"
             "  - {addresses: [10.244.2.13], nodeName: node-b, conditions: {ready: false, serving: true, terminating: true}}\n"),
])


def external_services():
    ext, denied = "198.51.100.7", "192.0.2.9"

    def from_outside(src, dst, dport, sport=50000, flags="S"):
        return Ether(src=ROUTER_MAC, dst=NODE_A_MAC) / IP(src=src, dst=dst) / TCP(sport=sport, dport=dport, flags=flags)

    write_case(
        "service-external-policies", "service nodeport loadbalancer externalip policy hairpin",
        "NodePort with externalTrafficPolicy Cluster SNATs the client to the node and reverse-NATs the reply; Local keeps "
        "the client address, uses only this node's endpoints (terminating ones when no ready one is left, KEP-1669) and "
        "drops when there is none; LoadBalancer ingress honours loadBalancerSourceRanges; externalIPs work; "
        "internalTrafficPolicy Local; a pod reaching itself through its Service is SNATed (hairpin).",
        [from_outside(ext, NODE_A, 30080),
         Ether(src=WEB1_MAC, dst=GW) / IP(src="10.244.1.11", dst=NODE_A) / TCP(sport=8080, dport=50000, flags="SA"),
         from_outside(ext, NODE_A, 30081, sport=50001),
         from_outside(ext, NODE_A, 30082, sport=50002),
         from_outside(ext, "203.0.113.100", 443, sport=50003),
         from_outside(denied, "203.0.113.100", 443, sport=50004),
         from_outside(denied, "203.0.113.101", 443, sport=50005),
         client(IP(src="10.244.1.10", dst="10.96.0.34") / TCP(sport=41000, dport=80, flags="S")),
         from_outside(ext, NODE_A, 30085, sport=50006),
         Ether(src=WEB1_MAC, dst=GW) / IP(src="10.244.1.11", dst="10.96.0.30") / TCP(sport=41001, dport=80, flags="S")],
        [{"packet": 1, "emits": [{"port": "default/web-1", "checks": {
            "ip.src": NODE_A, "ip.dst": "10.244.1.11", "l4.dport": 8080, "l4.sport": 50000}}]},
         {"packet": 2, "emits": [{"port": "uplink", "checks": {
             "eth.dst": ROUTER_MAC, "ip.src": NODE_A, "l4.sport": 30080, "ip.dst": ext, "l4.dport": 50000, "tcp.flags": "SA"}}]},
         {"packet": 3, "emits": [{"port": "default/web-1", "checks": {"ip.src": ext, "ip.dst": "10.244.1.11"}}]},
         {"packet": 4, "drop": "no-local-endpoints"},
         {"packet": 5, "emits": [{"port": "default/web-1", "checks": {"ip.src": NODE_A, "ip.dst": "10.244.1.11"}}]},
         {"packet": 6, "drop": "policy-denied"},
         {"packet": 7, "emits": [{"port": "default/web-1", "checks": {"ip.dst": "10.244.1.11", "l4.dport": 8080}}]},
         {"packet": 8, "drop": "no-local-endpoints"},
         {"packet": 9, "emits": [{"port": "default/web-1", "checks": {"ip.src": ext, "ip.dst": "10.244.1.11"}}]},
         {"packet": 10, "emits": [{"port": "default/web-1", "checks": {"ip.src": NODE_A, "ip.dst": "10.244.1.11", "l4.dport": 8080}}]}],
        config=CONFIG.format(extra="") + EXTERNAL + "---\n")

    # A bridge floods a frame for a MAC it has not learned yet to every port: the peer node sees it too.
    flooded = from_outside(ext, NODE_A, 30080, sport=50010)
    flooded[Ether].dst = NODE_B_MAC
    flooded_lb = from_outside(ext, "203.0.113.100", 443, sport=50011)
    flooded_lb[Ether].dst = "02:00:00:00:03:01"
    write_case(
        "uplink-other-station", "service nodeport loadbalancer l2",
        "A unicast frame on the uplink addressed to another station's MAC is not the node's, whatever it carries (Linux "
        "drops PACKET_OTHERHOST frames): a bridge floods frames for a MAC it has not learned to every port, and serving "
        "them would answer a client's SYN from two nodes at once. The same packet to the node's MAC is served.",
        [flooded, flooded_lb, from_outside(ext, NODE_A, 30080, sport=50010)],
        [{"packet": 1, "drop": "not-for-node"},
         {"packet": 2, "drop": "not-for-node"},
         {"packet": 3, "emits": [{"port": "default/web-1", "checks": {
             "ip.src": NODE_A, "ip.dst": "10.244.1.11", "l4.dport": 8080, "l4.sport": 50010}}]}],
        inputs=["uplink=input.pcap"],  # arrived on the uplink (a capture's port guessed from addresses says nothing of MACs)
        config=CONFIG.format(extra="") + EXTERNAL + "---\n")


def icmp_errors_about_nat():
    ext = "203.0.113.5"
    query = IP(src="10.244.1.10", dst="10.244.1.12") / UDP(sport=41100, dport=5353)  # web-2: Maglev's pick for this flow / Raw(b"\x00" * 12)
    out = IP(src=NODE_A, dst=ext, ttl=1) / TCP(sport=40100, dport=443, flags="S")
    write_case(
        "icmp-error-revnat", "icmp nat service masquerade",
        "ICMP errors about translated connections are translated too (RFC 5508 §4.2, as Linux does): a backend's "
        "port unreachable reaches the client from the Service address quoting the Service address and port; a router's "
        "time exceeded about a masqueraded packet reaches the pod quoting its own address and port.",
        [client(IP(src="10.244.1.10", dst="10.96.0.10") / UDP(sport=41100, dport=53) / Raw(b"\x00" * 12)),
         Ether(src=WEB2_MAC, dst=GW) / IP(src="10.244.1.12", dst="10.244.1.10") / ICMP(type=3, code=3) / bytes(query)[:28],
         client(IP(src="10.244.1.10", dst=ext) / TCP(sport=40100, dport=443, flags="S")),
         Ether(src=ROUTER_MAC, dst=NODE_A_MAC) / IP(src="192.168.56.1", dst=NODE_A) / ICMP(type=11, code=0) / bytes(out)[:28]],
        [{"packet": 1, "emits": [{"port": "default/web-2", "checks": {"l4.dport": 5353}}]},
         {"packet": 2, "emits": [{"port": "default/client", "checks": {
             "ip.src": "10.96.0.10", "ip.dst": "10.244.1.10", "icmp.type": 3, "icmp.code": 3,
             "icmp.inner.ip.src": "10.244.1.10", "icmp.inner.ip.dst": "10.96.0.10", "icmp.inner.l4.dport": 53}}]},
         {"packet": 3, "emits": [{"port": "uplink", "checks": {"ip.src": NODE_A, "l4.sport": 40100}}]},
         {"packet": 4, "emits": [{"port": "default/client", "checks": {
             "ip.src": "192.168.56.1", "ip.dst": "10.244.1.10", "icmp.type": 11,
             "icmp.inner.ip.src": "10.244.1.10", "icmp.inner.l4.sport": 40100, "icmp.inner.ip.dst": ext}}]}],
        config=CONFIG.format(extra="") + SERVICES.lstrip("-\n") + "---\n")


def affinity():
    sticky = SERVICES.replace("name: web, namespace: default}\nspec:\n", "name: web, namespace: default}\nspec:\n  sessionAffinity: ClientIP\n"
                              "  sessionAffinityConfig: {clientIP: {timeoutSeconds: 600}}\n", 1)
    assert sticky != SERVICES
    write_case(
        "session-affinity", "service affinity",
        "sessionAffinity: ClientIP sends every new connection of a client to the backend it used last (Maglev alone "
        "would spread these ten connections over both backends).",
        [client(IP(src="10.244.1.10", dst="10.96.0.10") / TCP(sport=42000 + i, dport=80, flags="S")) for i in range(10)],
        [{"packet": 1, "emits": [{"port": ["default/web-1", "default/web-2"], "backend_in": ["10.244.1.11:8080", "10.244.1.12:8080"]}]}] +
        [{"packet": i, "emits": [{"port": ["default/web-1", "default/web-2"], "same_backend_as": 1}]} for i in range(2, 11)],
        config=CONFIG.format(extra="") + sticky.lstrip("-\n") + "---\n")



# IPv6 twins of the Service cases above: single-stack IPv6 Services (ipFamilies [IPv6]) over IPv6 EndpointSlices, so
# every behaviour of issue 5's golden list has a v4 and a v6 case. UDP uses unassigned ports with a text payload so
# tshark has no protocol to misread it as.
SERVICES6 = """\
apiVersion: v1
kind: Pod
metadata: {name: web-2, namespace: default, annotations: {fastpath.io/mac: "02:42:0a:f4:01:0c"}}
spec: {nodeName: node-a, containers: [{name: web, image: nginx}]}
status: {podIP: 10.244.1.12, podIPs: [{ip: 10.244.1.12}, {ip: "fd00:10:244:1::c"}]}
---
apiVersion: v1
kind: Service
metadata: {name: web6, namespace: default}
spec:
  clusterIP: "fd00:10:96::20"
  clusterIPs: ["fd00:10:96::20"]
  ipFamilies: [IPv6]
  ports: [{name: http, port: 80, targetPort: 8080, protocol: TCP}, {name: echo, port: 7000, targetPort: 7007, protocol: UDP}]
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: {name: web6-1, namespace: default, labels: {kubernetes.io/service-name: web6}}
addressType: IPv6
ports: [{name: http, port: 8080, protocol: TCP}, {name: echo, port: 7007, protocol: UDP}]
endpoints:
  - addresses: ["fd00:10:244:1::b"]
    conditions: {ready: true}
  - addresses: ["fd00:10:244:1::c"]
  - addresses: ["fd00:10:244:2::d"]
    conditions: {ready: false}
---
apiVersion: v1
kind: Service
metadata: {name: empty6, namespace: default}
spec: {clusterIP: "fd00:10:96::21", clusterIPs: ["fd00:10:96::21"], ipFamilies: [IPv6], ports: [{port: 443, targetPort: 8443}]}
"""


def client6(dst, l4):
    return client(IPv6(src="fd00:10:244:1::a", dst=dst) / l4)


def services_ipv6():
    backends = ["fd00:10:244:1::b:8080", "fd00:10:244:1::c:8080"]
    local = ["default/web-1", "default/web-2"]
    vip = "fd00:10:96::20"
    write_case(
        "clusterip-ipv6", "service clusterip ipv6 udp",
        "An IPv6 ClusterIP is DNATed to a ready IPv6 endpoint chosen by Maglev (a not-ready one never), later packets of "
        "the flow keep it, replies are reverse-NATed to the ClusterIP; a Service without endpoints or a port it lacks "
        "is rejected with ICMPv6 port unreachable (kube-proxy's REJECT).",
        [client6(vip, TCP(sport=43000, dport=80, flags="S", seq=1000)),
         client6(vip, TCP(sport=43000, dport=80, flags="A", seq=1001, ack=5001)),
         client6(vip, UDP(sport=43001, dport=7000) / Raw(b"fastpath-echo")),
         client6(vip, UDP(sport=43001, dport=7000) / Raw(b"fastpath-echo")),
         client6("fd00:10:96::21", TCP(sport=43002, dport=443, flags="S")),
         client6(vip, TCP(sport=43003, dport=8080, flags="S"))] +
        [client6(vip, TCP(sport=43010 + i, dport=80, flags="S")) for i in range(6)] +
        [Ether(src=WEB2_MAC, dst=GW) / IPv6(src="fd00:10:244:1::c", dst="fd00:10:244:1::a") / TCP(sport=8080, dport=43000, flags="SA", seq=5000, ack=1001)],
        [{"packet": 1, "emits": [{"port": "default/web-2", "checks": {"ip.src": "fd00:10:244:1::a", "l4.sport": 43000, "ip.ttl": 63}}]},  # packet 13 replies from it
         {"packet": 2, "emits": [{"port": local, "same_backend_as": 1}]},
         {"packet": 3, "emits": [{"port": local, "backend_in": ["fd00:10:244:1::b:7007", "fd00:10:244:1::c:7007"]}]},
         {"packet": 4, "emits": [{"port": local, "same_backend_as": 3}]},
         {"packet": 5, "drop": "no-endpoints", "emits": [{"port": "default/client", "checks": {
             "ip.src": "fd00:56::11", "icmp.type": 1, "icmp.code": 4, "icmp.inner.ip.dst": "fd00:10:96::21", "icmp.inner.l4.dport": 443}}]},
         {"packet": 6, "drop": "unknown-service-port", "emits": [{"port": "default/client", "checks": {"icmp.type": 1, "icmp.code": 4}}]}] +
        [{"packet": 7 + i, "emits": [{"port": local, "backend_in": backends}]} for i in range(6)] +
        [{"packet": 13, "emits": [{"port": "default/client", "checks": {
            "ip.src": vip, "ip.dst": "fd00:10:244:1::a", "l4.sport": 80, "l4.dport": 43000, "tcp.flags": "SA"}}]}],
        config=CONFIG.format(extra="") + SERVICES6 + "---\n")


EXTERNAL6 = """\
apiVersion: v1
kind: Pod
metadata: {name: web-3, namespace: default}
spec: {nodeName: node-b, containers: [{name: web, image: nginx}]}
status: {podIP: 10.244.2.13, podIPs: [{ip: 10.244.2.13}, {ip: "fd00:10:244:2::d"}]}
""" + "".join(f"""---
apiVersion: v1
kind: Service
metadata: {{name: {name}, namespace: default}}
spec:
  clusterIP: "{vip}"
  clusterIPs: ["{vip}"]
  ipFamilies: [IPv6]
{spec}""" for name, vip, spec in [
    ("np6", "fd00:10:96::30", "  type: NodePort\n  ports: [{port: 80, targetPort: 8080, nodePort: 30090}]\n"),
    ("npl6", "fd00:10:96::31", "  type: NodePort\n  externalTrafficPolicy: Local\n  ports: [{port: 80, targetPort: 8080, nodePort: 30091}]\n"),
    ("npr6", "fd00:10:96::32", "  type: NodePort\n  externalTrafficPolicy: Local\n  ports: [{port: 80, targetPort: 8080, nodePort: 30092}]\n"),
    ("lb6", "fd00:10:96::33", "  type: LoadBalancer\n  loadBalancerSourceRanges: [\"2001:db8:100::/64\"]\n  externalIPs: [\"2001:db8:ff::101\"]\n"
                              "  ports: [{port: 443, targetPort: 8080, nodePort: 30443}]\nstatus: {loadBalancer: {ingress: [{ip: \"2001:db8:ff::100\"}]}}\n"),
    ("itp6", "fd00:10:96::34", "  internalTrafficPolicy: Local\n  ports: [{port: 80, targetPort: 8080}]\n"),
    ("term6", "fd00:10:96::35", "  type: NodePort\n  externalTrafficPolicy: Local\n  ports: [{port: 80, targetPort: 8080, nodePort: 30095}]\n"),
]) + endpoint_slices("IPv6", [
    ("np6", "  - {addresses: [\"fd00:10:244:1::b\"], nodeName: node-a}\n"),
    ("npl6", "  - {addresses: [\"fd00:10:244:1::b\"], nodeName: node-a}\n  - {addresses: [\"fd00:10:244:2::d\"], nodeName: node-b}\n"),
    ("npr6", "  - {addresses: [\"fd00:10:244:2::d\"], nodeName: node-b}\n"),
    ("lb6", "  - {addresses: [\"fd00:10:244:1::b\"], nodeName: node-a}\n"),
    ("itp6", "  - {addresses: [\"fd00:10:244:2::d\"], nodeName: node-b}\n"),
    ("term6", "  - {addresses: [\"fd00:10:244:1::b\"], nodeName: node-a, conditions: {ready: false, serving: true, terminating: true}}\n"
              "  - {addresses: [\"fd00:10:244:2::d\"], nodeName: node-b, conditions: {ready: false, serving: true, terminating: true}}\n"),
])


def external_services_ipv6():
    node6, web1 = "fd00:56::11", "fd00:10:244:1::b"
    ext, denied = "2001:db8:100::7", "2001:db8:200::9"

    def from_outside(src, dst, dport, sport=50000, flags="S", seq=1000, ack=0):
        return Ether(src=ROUTER_MAC, dst=NODE_A_MAC) / IPv6(src=src, dst=dst) / TCP(sport=sport, dport=dport, flags=flags, seq=seq, ack=ack)

    write_case(
        "service-external-policies-ipv6", "service nodeport loadbalancer externalip policy hairpin ipv6",
        "The IPv6 twin of service-external-policies: NodePort on the node's IPv6 address with externalTrafficPolicy "
        "Cluster SNATs the client to the node's IPv6 address and reverse-NATs the reply; Local keeps the client address, "
        "uses only this node's endpoints (terminating ones when no ready one is left, KEP-1669) and drops when there is "
        "none; LoadBalancer ingress honours IPv6 loadBalancerSourceRanges; externalIPs work; internalTrafficPolicy "
        "Local; a pod reaching itself through its Service is SNATed (hairpin).",
        [from_outside(ext, node6, 30090),
         Ether(src=WEB1_MAC, dst=GW) / IPv6(src=web1, dst=node6) / TCP(sport=8080, dport=50000, flags="SA", seq=5000, ack=1001),
         from_outside(ext, node6, 30091, sport=50001),
         from_outside(ext, node6, 30092, sport=50002),
         from_outside(ext, "2001:db8:ff::100", 443, sport=50003),
         from_outside(denied, "2001:db8:ff::100", 443, sport=50004),
         from_outside(denied, "2001:db8:ff::101", 443, sport=50005),
         client6("fd00:10:96::34", TCP(sport=41000, dport=80, flags="S")),
         from_outside(ext, node6, 30095, sport=50006),
         Ether(src=WEB1_MAC, dst=GW) / IPv6(src=web1, dst="fd00:10:96::30") / TCP(sport=41001, dport=80, flags="S"),
         from_outside(ext, node6, 30090, sport=50000, flags="A", seq=1001, ack=5001)],
        [{"packet": 1, "emits": [{"port": "default/web-1", "checks": {
            "ip.src": node6, "ip.dst": web1, "l4.dport": 8080, "l4.sport": 50000, "ip.ttl": 63}}]},
         {"packet": 2, "emits": [{"port": "uplink", "checks": {
             "eth.dst": ROUTER_MAC, "ip.src": node6, "l4.sport": 30090, "ip.dst": ext, "l4.dport": 50000, "tcp.flags": "SA"}}]},
         {"packet": 3, "emits": [{"port": "default/web-1", "checks": {"ip.src": ext, "ip.dst": web1, "l4.sport": 50001}}]},
         {"packet": 4, "drop": "no-local-endpoints"},
         {"packet": 5, "emits": [{"port": "default/web-1", "checks": {"ip.src": node6, "ip.dst": web1, "l4.dport": 8080}}]},
         {"packet": 6, "drop": "policy-denied"},
         {"packet": 7, "emits": [{"port": "default/web-1", "checks": {"ip.dst": web1, "l4.dport": 8080}}]},
         {"packet": 8, "drop": "no-local-endpoints"},
         {"packet": 9, "emits": [{"port": "default/web-1", "checks": {"ip.src": ext, "ip.dst": web1}}]},
         {"packet": 10, "emits": [{"port": "default/web-1", "checks": {"ip.src": node6, "ip.dst": web1, "l4.dport": 8080}}]},
         {"packet": 11, "emits": [{"port": "default/web-1", "checks": {"ip.src": node6, "ip.dst": web1, "l4.sport": 50000, "tcp.flags": "A"}}]}],
        config=CONFIG.format(extra="") + EXTERNAL6 + "---\n")


def icmp_errors_about_nat_ipv6():
    ext = "2001:db8::5"
    vip = "fd00:10:96::20"
    web2, me = "fd00:10:244:1::c", "fd00:10:244:1::a"  # web-2: Maglev's pick for this flow
    query = IPv6(src=me, dst=web2) / UDP(sport=43100, dport=7007) / Raw(b"fastpath-echo")
    write_case(
        "icmp-error-revnat-ipv6", "icmp nat service ipv6",
        "The IPv6 twin of icmp-error-revnat for Services: a backend's ICMPv6 port unreachable about a DNATed datagram "
        "reaches the client from the Service address, quoting the Service address and port (RFC 5508 §4.2 applied to "
        "ICMPv6, as Linux's nf_nat_icmpv6_reply_translation does); an error about no connection passes unchanged.",
        [client6(vip, UDP(sport=43100, dport=7000) / Raw(b"fastpath-echo")),
         Ether(src=WEB2_MAC, dst=GW) / IPv6(src=web2, dst=me) / ICMPv6DestUnreach(code=4) / bytes(query)],
        [{"packet": 1, "emits": [{"port": "default/web-2", "checks": {"l4.dport": 7007}}]},
         {"packet": 2, "emits": [{"port": "default/client", "checks": {
             "ip.src": vip, "ip.dst": me, "icmp.type": 1, "icmp.code": 4,
             "icmp.inner.ip.src": me, "icmp.inner.ip.dst": vip, "icmp.inner.l4.dport": 7000, "icmp.inner.l4.sport": 43100}}]}],
        config=CONFIG.format(extra="") + SERVICES6 + "---\n")


def affinity_ipv6():
    sticky = SERVICES6.replace("  ipFamilies: [IPv6]\n  ports: [{name: http",
                               "  ipFamilies: [IPv6]\n  sessionAffinity: ClientIP\n"
                               "  sessionAffinityConfig: {clientIP: {timeoutSeconds: 600}}\n  ports: [{name: http", 1)
    assert sticky != SERVICES6
    write_case(
        "session-affinity-ipv6", "service affinity ipv6",
        "sessionAffinity: ClientIP on an IPv6 Service sends every new connection of a client to the backend it used "
        "last (Maglev alone would spread these ten connections over both backends).",
        [client6("fd00:10:96::20", TCP(sport=44000 + i, dport=80, flags="S")) for i in range(10)],
        [{"packet": 1, "emits": [{"port": ["default/web-1", "default/web-2"], "backend_in": ["fd00:10:244:1::b:8080", "fd00:10:244:1::c:8080"]}]}] +
        [{"packet": i, "emits": [{"port": ["default/web-1", "default/web-2"], "same_backend_as": 1}]} for i in range(2, 11)],
        config=CONFIG.format(extra="") + sticky + "---\n")

def vxlan_from(node_ip, inner, vni=1, dport=8472):
    return (Ether(src=NODE_B_MAC, dst=NODE_A_MAC) / IP(src=NODE_B, dst=node_ip) /
            UDP(sport=50001, dport=dport) / VXLAN(vni=vni, flags=0x08) / Ether(src=NODE_B_MAC, dst=NODE_A_MAC) / inner)


def cross_node():
    vx = {"src": NODE_A, "dst": NODE_B, "dport": 8472, "vni": 1}
    write_case(
        "cross-node-vxlan-dual-stack", "cross-node vxlan ipv6",
        "IPv4 and IPv6 pods on other nodes are reached by pod IP without NAT over the VXLAN overlay (IPv4 underlay).",
        [client(IPv6(src="fd00:10:244:1::a", dst="fd00:10:244:2::b") / TCP(sport=40000, dport=8080, flags="S")),
         client(IP(src="10.244.1.10", dst="10.244.2.11") / UDP(sport=5000, dport=5001) / Raw(b"q" * 32)),
         client(IP(src="10.244.1.10", dst="10.244.2.11") / ICMP(type=8, id=3, seq=1))],
        [{"packet": 1, "emits": [{"port": "uplink", "encap": vx, "checks": {
            "ip.src": "fd00:10:244:1::a", "ip.dst": "fd00:10:244:2::b", "ip.ttl": 63, "l4.dport": 8080}}]},
         {"packet": 2, "emits": [{"port": "uplink", "encap": vx, "checks": {"ip.src": "10.244.1.10", "ip.ttl": 63, "l4.dport": 5001}}]},
         {"packet": 3, "emits": [{"port": "uplink", "encap": vx, "checks": {"ip.dst": "10.244.2.11", "icmp.type": 8}}]}],
        config=CONFIG.format(extra=""))

    inner4 = IP(src="10.244.2.11", dst="10.244.1.11") / TCP(sport=8080, dport=40000, flags="SA")
    inner6 = IPv6(src="fd00:10:244:2::b", dst="fd00:10:244:1::b") / UDP(sport=5000, dport=5001) / Raw(b"r" * 8)
    write_case(
        "vxlan-decap", "cross-node vxlan decap",
        "VXLAN for this node's address, port and VNI is decapsulated and the inner packet delivered to the pod; "
        "another VNI or another node's address is dropped.",
        [vxlan_from(NODE_A, inner4), vxlan_from(NODE_A, inner6), vxlan_from(NODE_A, inner4, vni=2),
         vxlan_from("192.168.56.13", inner4), vxlan_from(NODE_A, inner4, dport=4789)],
        [{"packet": 1, "emits": [{"port": "default/web-1", "checks": {
            "eth.dst": WEB1_MAC, "eth.src": GW, "ip.src": "10.244.2.11", "ip.dst": "10.244.1.11", "ip.ttl": 63, "tcp.flags": "SA"}}]},
         {"packet": 2, "emits": [{"port": "default/web-1", "checks": {"ip.src": "fd00:10:244:2::b", "ip.ttl": 63, "l4.dport": 5001}}]},
         {"packet": 3, "drop": "unknown-vni"},
         {"packet": 4, "drop": "not-for-node"},
         {"packet": 5, "emits": [{"port": "host", "checks": {"ip.dst": NODE_A, "ip.proto": 17}}]}],  # not our VXLAN port: the host's business
        inputs=["uplink=input.pcap"], config=CONFIG.format(extra=""))

    write_case(
        "direct-routing", "cross-node direct",
        "With tunnel: direct, packets for another node's pods leave the uplink unencapsulated, addressed to that node's MAC.",
        [client(IP(src="10.244.1.10", dst="10.244.2.11") / TCP(sport=40000, dport=8080, flags="S")),
         client(IPv6(src="fd00:10:244:1::a", dst="fd00:10:244:2::b") / UDP(sport=1, dport=2)),
         client(IP(src="10.244.1.10", dst="10.244.2.11", flags="DF") / UDP(sport=1, dport=2) / Raw(b"d" * (1500 - 28)))],
        [{"packet": 1, "emits": [{"port": "uplink", "checks": {
            "eth.dst": NODE_B_MAC, "eth.src": NODE_A_MAC, "ip.src": "10.244.1.10", "ip.dst": "10.244.2.11", "ip.ttl": 63}}]},
         {"packet": 2, "emits": [{"port": "uplink", "checks": {"eth.dst": NODE_B_MAC, "ip.dst": "fd00:10:244:2::b", "ip.ttl": 63}}]},
         {"packet": 3, "emits": [{"port": "uplink", "checks": {"ip.dst": "10.244.2.11"}}]}],
        config=CONFIG.format(extra="tunnel: direct\n"))

    big = b"m" * (1480 - 28)
    write_case(
        "mtu-exceeded", "cross-node mtu icmp",
        "A packet that no longer fits the uplink MTU once encapsulated: IPv4+DF gets fragmentation needed with the "
        "next-hop MTU (RFC 1191), IPv6 packet too big (RFC 8201); IPv4 without DF is dropped and counted.",
        [client(IP(src="10.244.1.10", dst="10.244.2.11", flags="DF") / UDP(sport=7, dport=7) / big),
         client(IP(src="10.244.1.10", dst="10.244.2.11", flags=0) / UDP(sport=7, dport=7) / big),
         client(IPv6(src="fd00:10:244:1::a", dst="fd00:10:244:2::b") / UDP(sport=7, dport=7) / Raw(b"m" * 1440)),
         client(IP(src="10.244.1.10", dst="10.244.2.11", flags="DF") / UDP(sport=7, dport=7) / Raw(b"m" * (1450 - 28)))],
        [{"packet": 1, "drop": "mtu-exceeded", "emits": [{"port": "default/client", "checks": {
            "ip.src": NODE_A, "ip.dst": "10.244.1.10", "icmp.type": 3, "icmp.code": 4, "icmp.inner.ip.dst": "10.244.2.11"}}]},
         {"packet": 2, "drop": "mtu-exceeded", "emits": []},
         {"packet": 3, "drop": "mtu-exceeded", "emits": [{"port": "default/client", "checks": {"icmp.type": 2, "icmp.code": 0}}]},
         {"packet": 4, "emits": [{"port": "uplink", "encap": vx, "checks": {"ip.dst": "10.244.2.11"}}]}],
        config=CONFIG.format(extra=""))

    write_case(
        "no-route", "routing icmp unreachable",
        "Addresses nothing owns are answered with destination unreachable: net for a cluster range no node holds, host "
        "for an unused address of the node's own pod CIDR, net for anything off-cluster without a default gateway.",
        [client(IP(src="10.244.1.10", dst="10.244.7.7") / UDP(sport=1, dport=2)),
         client(IP(src="10.244.1.10", dst="10.244.1.99") / UDP(sport=1, dport=2)),
         client(IP(src="10.244.1.10", dst="203.0.113.5") / TCP(sport=40000, dport=443, flags="S")),
         client(IPv6(src="fd00:10:244:1::a", dst="2001:db8::5") / UDP(sport=1, dport=2))],
        [{"packet": 1, "drop": "no-route", "emits": [{"port": "default/client", "checks": {"icmp.type": 3, "icmp.code": 0, "ip.src": NODE_A}}]},
         {"packet": 2, "drop": "no-route", "emits": [{"port": "default/client", "checks": {"icmp.type": 3, "icmp.code": 1}}]},
         {"packet": 3, "drop": "no-route", "emits": [{"port": "default/client", "checks": {
             "icmp.type": 3, "icmp.code": 0, "icmp.inner.ip.dst": "203.0.113.5", "icmp.inner.l4.dport": 443}}]},
         {"packet": 4, "drop": "no-route", "emits": [{"port": "default/client", "checks": {"icmp.type": 1, "icmp.code": 0}}]}])

    ext = "203.0.113.5"
    write_case(
        "masquerade", "egress masquerade snat conntrack",
        "Pod traffic leaving the cluster is masqueraded to the node's address (source port kept when free); replies "
        "are translated back to the pod by connection tracking.",
        [client(IP(src="10.244.1.10", dst=ext) / TCP(sport=40000, dport=443, flags="S", seq=1)),
         Ether(src=ROUTER_MAC, dst=NODE_A_MAC) / IP(src=ext, dst=NODE_A) / TCP(sport=443, dport=40000, flags="SA", seq=9, ack=2),
         client(IP(src="10.244.1.10", dst=ext) / TCP(sport=40000, dport=443, flags="A", seq=2, ack=10)),
         client(IP(src="10.244.1.10", dst=ext) / ICMP(type=8, id=77, seq=1)),
         Ether(src=ROUTER_MAC, dst=NODE_A_MAC) / IP(src=ext, dst=NODE_A) / ICMP(type=0, id=77, seq=1),
         Ether(src=ROUTER_MAC, dst=NODE_A_MAC) / IP(src=ext, dst=NODE_A) / TCP(sport=443, dport=40001, flags="SA")],
        [{"packet": 1, "emits": [{"port": "uplink", "checks": {
            "eth.dst": ROUTER_MAC, "eth.src": NODE_A_MAC, "ip.src": NODE_A, "ip.dst": ext, "l4.sport": 40000, "ip.ttl": 63}}]},
         {"packet": 2, "emits": [{"port": "default/client", "checks": {
             "ip.src": ext, "ip.dst": "10.244.1.10", "l4.dport": 40000, "tcp.flags": "SA", "ip.ttl": 63}}]},
         {"packet": 3, "emits": [{"port": "uplink", "checks": {"ip.src": NODE_A, "l4.sport": 40000}}]},
         {"packet": 4, "emits": [{"port": "uplink", "checks": {"ip.src": NODE_A, "icmp.type": 8}}]},
         {"packet": 5, "emits": [{"port": "default/client", "checks": {"ip.dst": "10.244.1.10", "icmp.type": 0}}]},
         {"packet": 6, "emits": [{"port": "host", "checks": {"ip.dst": NODE_A, "l4.dport": 40001}}]}],
        inputs=["input.pcap"], config=CONFIG.format(extra=""))


POLICY = """\
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: only-client-8080, namespace: default}
spec:
  podSelector: {}
  ingress: [{from: [{ipBlock: {cidr: 10.244.1.10/32}}], ports: [{port: 8080}]}]
---
"""


def network_policy():
    web1 = lambda l3: Ether(src=WEB1_MAC, dst=GW) / l3
    write_case(
        "network-policy", "networkpolicy ingress stateful",
        "Every pod of the namespace is isolated for ingress and only client may reach TCP 8080 (ipBlock, IPv4 only): "
        "other ports, UDP, IPv6 and web-1's own new connections are dropped with policy-denied; the reply of the "
        "allowed connection passes by connection tracking although client is isolated too.",
        [client(IP(src="10.244.1.10", dst="10.244.1.11") / TCP(sport=40000, dport=8080, flags="S", seq=1)),
         web1(IP(src="10.244.1.11", dst="10.244.1.10") / TCP(sport=8080, dport=40000, flags="SA", seq=9, ack=2)),
         client(IP(src="10.244.1.10", dst="10.244.1.11") / TCP(sport=40001, dport=9090, flags="S")),
         client(IP(src="10.244.1.10", dst="10.244.1.11") / UDP(sport=40002, dport=8080) / Raw(b"q" * 8)),
         web1(IP(src="10.244.1.11", dst="10.244.1.10") / TCP(sport=40003, dport=22, flags="S")),
         client(IPv6(src="fd00:10:244:1::a", dst="fd00:10:244:1::b") / TCP(sport=40004, dport=8080, flags="S")),
         client(IP(src="10.244.1.10", dst="10.244.1.11") / TCP(sport=40000, dport=8080, flags="A", seq=2, ack=10))],
        [{"packet": 1, "emits": [{"port": "default/web-1", "checks": {"ip.src": "10.244.1.10", "l4.dport": 8080, "ip.ttl": 63}}]},
         {"packet": 2, "emits": [{"port": "default/client", "checks": {"ip.src": "10.244.1.11", "tcp.flags": "SA"}}]},
         {"packet": 3, "drop": "policy-denied"},
         {"packet": 4, "drop": "policy-denied"},
         {"packet": 5, "drop": "policy-denied"},
         {"packet": 6, "drop": "policy-denied"},
         {"packet": 7, "emits": [{"port": "default/web-1", "checks": {"l4.dport": 8080, "tcp.flags": "A"}}]}],
        config=CONFIG.format(extra="") + POLICY)


# Issue 18: which endpoints kube-proxy balances over. node-a is in zone-a; web-3 runs on node-b (zone-b). Every Service
# is dual-stack, so the IPv4 and IPv6 cases share one cluster.
ZONED_CLUSTER = CLUSTER.replace("  name: node-a\n  annotations:", "  name: node-a\n  labels: {topology.kubernetes.io/zone: zone-a}\n  annotations:", 1)

SELECTION_ENDPOINTS = {
    # no ready endpoint anywhere: the serving-and-terminating one (web-1) serves; web-3 terminates without serving
    "allterm": [("web-1", "node-a", "conditions: {ready: false, serving: true, terminating: true}"),
                ("web-3", "node-b", "conditions: {ready: false, serving: false, terminating: true}")],
    # PreferClose: each endpoint hinted for its own zone
    "zoned": [("web-1", "node-a", "zone: zone-a, hints: {forZones: [{name: zone-a}]}"),
              ("web-3", "node-b", "zone: zone-b, hints: {forZones: [{name: zone-b}]}")],
    # hints name no endpoint for zone-a: kube-proxy ignores them and uses every endpoint (here: web-1 only)
    "elsewhere": [("web-1", "node-a", "zone: zone-a, hints: {forZones: [{name: zone-b}]}")],
    # PreferSameNode: node hints win over zone hints that would allow both
    "noded": [("web-1", "node-a", "zone: zone-a, hints: {forNodes: [{name: node-a}], forZones: [{name: zone-a}]}"),
              ("web-3", "node-b", "zone: zone-a, hints: {forNodes: [{name: node-b}], forZones: [{name: zone-a}]}")],
    "lbproxy": [("web-1", "node-a", "")],
}
SELECTION_ADDRESSES = {"web-1": ("10.244.1.11", "fd00:10:244:1::b"), "web-3": ("10.244.2.13", "fd00:10:244:2::d")}


def selection_services():
    text = """apiVersion: v1
kind: Pod
metadata: {name: web-3, namespace: default}
spec: {nodeName: node-b, containers: [{name: web, image: nginx}]}
status: {podIP: 10.244.2.13, podIPs: [{ip: 10.244.2.13}, {ip: "fd00:10:244:2::d"}]}
"""
    specs = {
        "allterm": (40, "  type: NodePort\n  ports: [{port: 80, targetPort: 8080, nodePort: 30100}]\n"),
        "zoned": (41, "  trafficDistribution: PreferClose\n  ports: [{port: 80, targetPort: 8080}]\n"),
        "elsewhere": (42, "  trafficDistribution: PreferClose\n  ports: [{port: 80, targetPort: 8080}]\n"),
        "noded": (43, "  trafficDistribution: PreferSameNode\n  ports: [{port: 80, targetPort: 8080}]\n"),
        "lbproxy": (44, "  type: LoadBalancer\n  ports: [{port: 80, targetPort: 8080, nodePort: 30104}]\n"
                        "status: {loadBalancer: {ingress: [{ip: 203.0.113.110, ipMode: Proxy}, {ip: 203.0.113.111, ipMode: VIP}, "
                        "{ip: \"2001:db8:ff::110\", ipMode: Proxy}, {ip: \"2001:db8:ff::111\"}]}}\n"),
    }
    for svc, (n, spec) in specs.items():
        text += f"""---
apiVersion: v1
kind: Service
metadata: {{name: {svc}, namespace: default}}
spec:
  clusterIP: 10.96.0.{n}
  clusterIPs: [10.96.0.{n}, "fd00:10:96::{n}"]
  ipFamilies: [IPv4, IPv6]
  ipFamilyPolicy: PreferDualStack
{spec}"""
        for family, index in (("IPv4", 0), ("IPv6", 1)):
            eps = "".join(f"  - {{addresses: [\"{SELECTION_ADDRESSES[pod][index]}\"], nodeName: {node}{', ' + extra if extra else ''}}}\n"
                          for pod, node, extra in SELECTION_ENDPOINTS[svc])
            text += f"""---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: {{name: {svc}-{family.lower()}, namespace: default, labels: {{kubernetes.io/service-name: {svc}}}}}
addressType: {family}
ports: [{{port: 8080, protocol: TCP}}]
endpoints:
{eps}"""
    return text + "---\n"


def endpoint_selection():
    for v6 in (False, True):
        suffix = "-ipv6" if v6 else ""
        me, web1 = ("fd00:10:244:1::a", "fd00:10:244:1::b") if v6 else ("10.244.1.10", "10.244.1.11")
        node, ext = ("fd00:56::11", "2001:db8:100::7") if v6 else (NODE_A, "198.51.100.7")
        L3 = IPv6 if v6 else IP
        vip = (lambda n: f"fd00:10:96::{n}") if v6 else (lambda n: f"10.96.0.{n}")
        proxied, captured = ("2001:db8:ff::110", "2001:db8:ff::111") if v6 else ("203.0.113.110", "203.0.113.111")

        def syn(dst, sport, dport=80):
            return client(L3(src=me, dst=dst) / TCP(sport=sport, dport=dport, flags="S"))

        def outside(dst, dport, sport):
            return Ether(src=ROUTER_MAC, dst=NODE_A_MAC) / L3(src=ext, dst=dst) / TCP(sport=sport, dport=dport, flags="S")

        packets = ([syn(vip(40), 45000), outside(node, 30100, 50100)] +
                   [syn(vip(41), 45010 + i) for i in range(6)] +
                   [syn(vip(42), 45020)] +
                   [syn(vip(43), 45030 + i) for i in range(6)] +
                   [syn(proxied, 45040), syn(captured, 45041), outside(captured, 80, 50101)])
        to_web1 = {"port": "default/web-1", "checks": {"ip.dst": web1, "l4.dport": 8080}}
        expect = ([{"packet": 1, "emits": [to_web1]},
                   {"packet": 2, "emits": [{"port": "default/web-1", "checks": {"ip.src": node, "ip.dst": web1, "l4.dport": 8080}}]}] +
                  [{"packet": 3 + i, "emits": [to_web1]} for i in range(6)] +
                  [{"packet": 9, "emits": [to_web1]}] +
                  [{"packet": 10 + i, "emits": [to_web1]} for i in range(6)] +
                  [{"packet": 16, "emits": [{"port": "uplink", "checks": {"eth.dst": ROUTER_MAC, "ip.dst": proxied, "l4.dport": 80}}]},
                   {"packet": 17, "emits": [to_web1]},
                   {"packet": 18, "emits": [{"port": "default/web-1", "checks": {"ip.src": node, "ip.dst": web1, "l4.dport": 8080}}]}])
        write_case(
            "service-endpoint-selection" + suffix, "service terminating topology ipmode" + (" ipv6" if v6 else ""),
            "Which endpoints a Service balances over, as kube-proxy (pkg/proxy/topology.go): with no ready endpoint "
            "anywhere and traffic policy Cluster the serving-and-terminating one serves ClusterIP and NodePort "
            "(KEP-1669), a terminating endpoint that no longer serves never; PreferClose zone hints keep every flow in "
            "the node's zone; hints that name no endpoint for the zone are ignored; PreferSameNode node hints win over "
            "zone hints; a LoadBalancer ingress IP with ipMode Proxy (KEP-1860) is not captured and leaves for the load "
            "balancer, while the VIP-mode one is DNATed." + (" IPv6." if v6 else " IPv4."),
            packets, expect, config=CONFIG.format(extra="") + selection_services(), cluster=ZONED_CLUSTER)


# Issue 18: SCTP Services and NetworkPolicy ports. web-1 is isolated for ingress except SCTP 3869; the Service maps
# 3868 to 3869, so every translated packet needs its CRC32c recomputed (the runner checks it).
SCTP_CLUSTER = """\
apiVersion: v1
kind: Service
metadata: {name: diameter, namespace: default}
spec:
  type: NodePort
  clusterIP: 10.96.0.60
  clusterIPs: [10.96.0.60, "fd00:10:96::60"]
  ipFamilies: [IPv4, IPv6]
  ipFamilyPolicy: PreferDualStack
  ports: [{name: diameter, port: 3868, targetPort: 3869, protocol: SCTP, nodePort: 30868}]
""" + "".join(f"""---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: {{name: diameter-{family.lower()}, namespace: default, labels: {{kubernetes.io/service-name: diameter}}}}
addressType: {family}
ports: [{{name: diameter, port: 3869, protocol: SCTP}}]
endpoints:
  - {{addresses: ["{address}"], nodeName: node-a}}
""" for family, address in (("IPv4", "10.244.1.11"), ("IPv6", "fd00:10:244:1::b"))) + """---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: web-sctp-only, namespace: default}
spec:
  podSelector: {matchLabels: {app: web}}
  ingress: [{ports: [{protocol: SCTP, port: 3869}]}]
---
"""


def sctp():
    from scapy.layers.sctp import SCTP, SCTPChunkInit, SCTPChunkInitAck, SCTPChunkCookieEcho
    cluster = CLUSTER.replace("  name: web-1\n  namespace: default\n", "  name: web-1\n  namespace: default\n  labels: {app: web}\n", 1)
    assert cluster != CLUSTER
    for v6 in (False, True):
        suffix = "-ipv6" if v6 else ""
        L3 = IPv6 if v6 else IP
        me, web1, vip, node = (("fd00:10:244:1::a", "fd00:10:244:1::b", "fd00:10:96::60", "fd00:56::11") if v6
                               else ("10.244.1.10", "10.244.1.11", "10.96.0.60", NODE_A))
        ext = "2001:db8:100::7" if v6 else "198.51.100.7"
        init = SCTPChunkInit(init_tag=0x1234, a_rwnd=65535, n_out_streams=10, n_in_streams=10, init_tsn=1)
        packets = [
            client(L3(src=me, dst=vip) / SCTP(sport=5000, dport=3868, tag=0) / init),
            Ether(src=WEB1_MAC, dst=GW) / L3(src=web1, dst=me) / SCTP(sport=3869, dport=5000, tag=0x1234) /
            SCTPChunkInitAck(init_tag=0x5678, a_rwnd=65535, n_out_streams=10, n_in_streams=10, init_tsn=1),
            client(L3(src=me, dst=vip) / SCTP(sport=5000, dport=3868, tag=0x5678) / SCTPChunkCookieEcho(cookie=b"fastpath")),
            Ether(src=ROUTER_MAC, dst=NODE_A_MAC) / L3(src=ext, dst=node) / SCTP(sport=5001, dport=30868, tag=0) / init,
            client(L3(src=me, dst=web1) / SCTP(sport=5002, dport=3870, tag=0) / init),
            client(L3(src=me, dst=web1) / SCTP(sport=5003, dport=3869, tag=0) / init),
            client(L3(src=me, dst=vip) / SCTP(sport=5004, dport=3869, tag=0) / init),
        ]
        unreach = {"icmp.type": 1, "icmp.code": 4} if v6 else {"icmp.type": 3, "icmp.code": 3}
        expect = [
            {"packet": 1, "emits": [{"port": "default/web-1", "checks": {"ip.src": me, "ip.dst": web1, "ip.proto": 132, "l4.sport": 5000, "l4.dport": 3869}}]},
            {"packet": 2, "emits": [{"port": "default/client", "checks": {"ip.src": vip, "ip.dst": me, "l4.sport": 3868, "l4.dport": 5000}}]},
            {"packet": 3, "emits": [{"port": "default/web-1", "checks": {"ip.dst": web1, "l4.dport": 3869}}]},
            {"packet": 4, "emits": [{"port": "default/web-1", "checks": {"ip.src": node, "ip.dst": web1, "l4.dport": 3869}}]},
            {"packet": 5, "drop": "policy-denied"},
            {"packet": 6, "emits": [{"port": "default/web-1", "checks": {"ip.src": me, "ip.dst": web1, "l4.dport": 3869}}]},
            {"packet": 7, "drop": "unknown-service-port", "emits": [{"port": "default/client", "checks": dict(unreach, **{"icmp.inner.ip.dst": vip})}]},
        ]
        write_case(
            "service-sctp" + suffix, "service sctp networkpolicy nodeport" + (" ipv6" if v6 else ""),
            "SCTP Services as kube-proxy: a ClusterIP and a NodePort are DNATed (and the NodePort SNATed) to the endpoint's "
            "target port with SCTP's CRC32c recomputed (no pseudo-header, so only the port change needs it); the reply "
            "is reverse-NATed the same way; a NetworkPolicy allowing SCTP 3869 admits that port and denies 3870; a port "
            "the Service lacks is rejected with ICMP port unreachable." + (" IPv6." if v6 else " IPv4."),
            packets, expect, config=CONFIG.format(extra="") + SCTP_CLUSTER, cluster=cluster)


if __name__ == "__main__":
    main()
