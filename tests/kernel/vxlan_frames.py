#!/usr/bin/python3
"""Crafts the frames of the VXLAN kernel differential test, writes them to a pcap (the exact bytes FastPath replays)
and sends the same bytes on eth0 of the namespace it runs in. Run only inside the test's own namespaces."""
import sys
from scapy.all import Ether, IP, UDP, TCP, ICMP, Raw, wrpcap, sendp
from scapy.layers.vxlan import VXLAN

POD_MAC, GATEWAY_MAC = "02:42:0a:f4:01:0a", "ee:ee:ee:ee:ee:ee"
NODE_A_MAC, NODE_B_MAC = "02:00:00:00:01:01", "02:00:00:00:02:01"


def encap_frames():
    # From the client pod to web-2 on node-b: one of each transport the node forwards.
    l2 = lambda: Ether(src=POD_MAC, dst=GATEWAY_MAC)
    ip = lambda ident: IP(src="10.244.1.10", dst="10.244.2.11", ttl=64, id=ident, flags="DF")
    return [
        l2() / ip(0x1001) / UDP(sport=40000, dport=8080) / Raw(b"fastpath-kd-udp-payload"),
        l2() / ip(0x1002) / TCP(sport=40001, dport=8080, flags="S", seq=1000, window=64240),
        l2() / ip(0x1003) / ICMP(type=8, id=0x77, seq=1) / Raw(b"fastpath-kd-icmp"),
    ]


def decap_frames():
    # From node-b (web-2) to the client pod, as node-b's Flannel would send it: inner MACs are the two VTEP MACs.
    inner = (Ether(src=NODE_B_MAC, dst=NODE_A_MAC)
             / IP(src="10.244.2.11", dst="10.244.1.10", ttl=64, id=0x2001, flags="DF")
             / UDP(sport=8080, dport=40000) / Raw(b"fastpath-kd-reply"))
    outer = (Ether(src=NODE_B_MAC, dst=NODE_A_MAC)
             / IP(src="192.168.56.12", dst="192.168.56.11", ttl=64, id=0x3001)
             / UDP(sport=50000, dport=8472, chksum=0) / VXLAN(flags=0x08, vni=1) / inner)
    return [outer]


def main():
    which, out = sys.argv[1], sys.argv[2]
    frames = [Ether(bytes(f)) for f in (encap_frames() if which == "encap" else decap_frames())]
    wrpcap(out, frames)
    for f in frames:
        sendp(f, iface="eth0", verbose=False)


if __name__ == "__main__":
    main()
