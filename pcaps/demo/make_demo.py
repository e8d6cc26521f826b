#!/usr/bin/python3
"""Regenerates pcaps/demo/demo.pcapng, the capture scripts/demo.sh replays through cluster/ as node-a.

A pcapng whose interface names are FastPath port names ("default/client", "uplink", ...), so every packet enters
on the port it was captured on. Packet i carries timestamp 1000 + i so outputs can be matched to inputs.
Run with Debian's python3 (scapy builds the packets; the pcapng blocks are written here, since scapy's writer
does not name interfaces).
"""
import os
import struct
from scapy.all import ARP, ICMP, IP, IPv6, TCP, UDP, Ether, Raw, wrpcap
from scapy.layers.vxlan import VXLAN
from scapy.layers.inet6 import ICMPv6ND_NS, ICMPv6NDOptSrcLLAddr

GW = "ee:ee:ee:ee:ee:ee"
CLIENT, WEB1, WEB2, NODE_B = "02:42:0a:f4:01:0a", "02:42:0a:f4:01:0b", "02:42:0a:f4:01:0c", "02:00:00:00:02:01"
ROUTER = "02:00:00:00:00:fe"
C4, W1, W2 = "10.244.1.10", "10.244.1.11", "10.244.1.12"
C6, W16 = "fd00:10:244:1::a", "fd00:10:244:1::b"


def client(l3):
    return "default/client", Ether(src=CLIENT, dst=GW) / l3


def web1(l3):
    return "shop/web-1", Ether(src=WEB1, dst=GW) / l3


def block(btype, body):
    body += b"\0" * (-len(body) % 4)
    n = 12 + len(body)
    return struct.pack("<II", btype, n) + body + struct.pack("<I", n)


def option(code, value):
    return struct.pack("<HH", code, len(value)) + value + b"\0" * (-len(value) % 4)


def write_pcapng(path, packets):
    names = []
    for port, _ in packets:
        if port not in names:
            names.append(port)
    out = block(0x0A0D0D0A, struct.pack("<IHHq", 0x1A2B3C4D, 1, 0, -1))
    for name in names:  # if_name (2), if_tsresol (9) = 10^-6
        out += block(1, struct.pack("<HHI", 1, 0, 262144) + option(2, name.encode()) + option(9, b"\x06") + option(0, b""))
    for i, (port, p) in enumerate(packets, 1):
        raw = bytes(p)
        ts = (1000 + i) * 1_000_000
        out += block(6, struct.pack("<IIIII", names.index(port), ts >> 32, ts & 0xFFFFFFFF, len(raw), len(raw)) + raw)
    with open(path, "wb") as f:
        f.write(out)


packets = [
    ("default/client", Ether(src=CLIENT, dst="ff:ff:ff:ff:ff:ff") / ARP(op=1, hwsrc=CLIENT, psrc=C4, pdst="10.244.1.1")),
    client(IPv6(src="fe80::a", dst="ff02::1:ff00:1", hlim=255) / ICMPv6ND_NS(tgt="fe80::1") / ICMPv6NDOptSrcLLAddr(lladdr=CLIENT)),
    client(IP(src=C4, dst=W1) / TCP(sport=40000, dport=8080, flags="S", seq=1000)),
    web1(IP(src=W1, dst=C4) / TCP(sport=8080, dport=40000, flags="SA", seq=5000, ack=1001)),
    client(IP(src=C4, dst=W1) / TCP(sport=40000, dport=8080, flags="A", seq=1001, ack=5001)),
    client(IP(src=C4, dst=W1) / TCP(sport=40000, dport=8080, flags="PA", seq=1001, ack=5001) / Raw(b"GET / HTTP/1.1\r\nHost: web\r\n\r\n")),
    client(IP(src=C4, dst=W1) / UDP(sport=5353, dport=53) / Raw(b"\x12\x34\x01\x00\x00\x01\x00\x00\x00\x00\x00\x00\x03web\x00\x00\x01\x00\x01")),
    client(IP(src=C4, dst=W1) / ICMP(type=8, id=7, seq=1) / Raw(b"ping")),
    web1(IP(src=W1, dst=C4) / ICMP(type=0, id=7, seq=1) / Raw(b"ping")),
    client(IPv6(src=C6, dst=W16) / TCP(sport=40001, dport=8080, flags="S", seq=2000)),
    ("shop/web-2", Ether(src=WEB2, dst=GW) / IP(src=W2, dst=C4) / UDP(sport=9000, dport=9000) / Raw(b"hello from web-2")),
    client(IP(src=C4, dst=W2) / UDP(sport=9000, dport=9000) / Raw(b"hello web-2")),  # web-2's MAC was learned
    client(IP(src=C4, dst=W1, ttl=1) / UDP(sport=33434, dport=33434)),             # traceroute's first probe
    client(IPv6(src=C6, dst=W16, hlim=1) / UDP(sport=33435, dport=33435)),
    client(IP(src="10.244.1.99", dst=W1) / UDP(sport=1, dport=2)),               # spoofed source
    ("default/client", Ether(bytes(Ether(src=CLIENT, dst=GW) / IP(src=C4, dst=W1) / TCP(sport=40000, dport=8080))[:30])),  # IPv4 cut short
    client(IP(src=C4, dst="192.168.56.11") / TCP(sport=40002, dport=10250, flags="S")),  # to the node (kubelet)
    ("uplink", Ether(src=NODE_B, dst="02:00:00:00:01:01") / IP(src="192.168.56.12", dst=W1) / TCP(sport=50000, dport=8080, flags="S")),
    client(IP(src=C4, dst="10.244.2.11") / TCP(sport=40003, dport=8080, flags="S")),          # to web-3 on node-b: VXLAN
    ("uplink", Ether(src=NODE_B, dst="02:00:00:00:01:01") / IP(src="192.168.56.12", dst="192.168.56.11") /
     UDP(sport=51000, dport=8472) / VXLAN(vni=1, flags=0x08) / Ether(src=NODE_B, dst="02:00:00:00:01:01") /
     IP(src="10.244.2.11", dst=C4) / TCP(sport=8080, dport=40003, flags="SA")),               # web-3's answer, decapsulated
    client(IP(src=C4, dst="203.0.113.10") / TCP(sport=40004, dport=443, flags="S")),          # off-cluster: masqueraded
    ("uplink", Ether(src=ROUTER, dst="02:00:00:00:01:01") / IP(src="203.0.113.10", dst="192.168.56.11") /
     TCP(sport=443, dport=40004, flags="SA")),                                                  # the reply, back to the pod
    client(IP(src=C4, dst="10.244.9.9") / UDP(sport=1, dport=2)),                                # no node owns 10.244.9.0/24
    client(IP(src=C4, dst="10.96.0.20") / TCP(sport=40005, dport=80, flags="S")),             # ClusterIP shop/web: DNAT
]
write_pcapng(os.path.join(os.path.dirname(os.path.abspath(__file__)), "demo.pcapng"), packets)
print(f"wrote {len(packets)} packets")
