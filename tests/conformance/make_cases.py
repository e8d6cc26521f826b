#!/usr/bin/python3
"""Generates FastPath's own conformance cases under cases/, in the format of ../../../shared/conformance
(see its README): case.json + cluster/ + input.pcap, input packet i at timestamp 1000 + i.

Run with Debian's python3 (scapy). tests/FastPath.Tests/Conformance runs every case with the shared run.py.
"""
import json, os

from scapy.all import ARP, ICMP, IP, IPv6, TCP, UDP, Dot1Q, Dot1AD, Ether, Raw, wrpcap
from scapy.layers.inet6 import ICMPv6ND_NS, ICMPv6NDOptSrcLLAddr, IPv6ExtHdrHopByHop, IPv6ExtHdrDestOpt, IPv6ExtHdrFragment

HERE = os.path.dirname(os.path.abspath(__file__))
GW = "ee:ee:ee:ee:ee:ee"
CLIENT_MAC, WEB1_MAC, NODE_B_MAC = "02:42:0a:f4:01:0a", "02:42:0a:f4:01:0b", "02:00:00:00:02:01"

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


def write_case(name, feature, why, packets, expect, inputs=None):
    d = os.path.join(HERE, "cases", name)
    os.makedirs(os.path.join(d, "cluster"), exist_ok=True)
    with open(os.path.join(d, "cluster", "cluster.yaml"), "w") as f:
        f.write(CLUSTER)
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


if __name__ == "__main__":
    main()
