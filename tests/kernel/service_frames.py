#!/usr/bin/python3
"""Crafts the frames of the Service/masquerade kernel differential test, writes them to one pcap per sender (the exact
bytes and order FastPath replays) and sends the same bytes, in the same order, on eth0 of the test's own client,
backend and outside namespaces (an AF_PACKET socket opened inside each via setns). Never sends anywhere else.

    service_frames.py DIR CLIENT_NS BACKEND_NS OUTSIDE_NS
"""
import ctypes
import os
import socket
import sys
import time
from scapy.all import Ether, IP, TCP, UDP, Raw, wrpcap

CLIENT_MAC, BACKEND_MAC = "02:42:0a:f4:01:0a", "02:42:0a:f4:01:0b"
GATEWAY_MAC = "ee:ee:ee:ee:ee:ee"                      # host side of every pod veth (proxy ARP for 169.254.1.1)
NODE_MAC, OUTSIDE_MAC = "02:00:00:00:01:01", "02:00:00:00:00:fe"
CLIENT, BACKEND, CLUSTER_IP = "10.244.1.10", "10.244.1.11", "10.96.0.10"
NODE_IP, EXTERNAL = "192.168.56.11", "203.0.113.5"


def frames():
    """(sender, frame) in send order: each reply is sent after the packet that opened its connection."""
    pod = lambda mac: Ether(src=mac, dst=GATEWAY_MAC)
    ip = lambda src, dst, ident: IP(src=src, dst=dst, ttl=64, id=ident, flags="DF")
    return [
        # 1-3: a TCP connection to the ClusterIP's http port; the backend's SYN-ACK; the client's ACK.
        ("client", pod(CLIENT_MAC) / ip(CLIENT, CLUSTER_IP, 0x1001)
         / TCP(sport=40000, dport=80, flags="S", seq=1000, window=64240, options=[("MSS", 1460)])),
        ("backend", pod(BACKEND_MAC) / ip(BACKEND, CLIENT, 0x2001)
         / TCP(sport=8080, dport=40000, flags="SA", seq=5000, ack=1001, window=65160, options=[("MSS", 1460)])),
        ("client", pod(CLIENT_MAC) / ip(CLIENT, CLUSTER_IP, 0x1002)
         / TCP(sport=40000, dport=80, flags="A", seq=1001, ack=5001, window=502)),
        # 4-5: a UDP datagram to the ClusterIP's dns port and the backend's reply.
        ("client", pod(CLIENT_MAC) / ip(CLIENT, CLUSTER_IP, 0x1003) / UDP(sport=40001, dport=53) / Raw(b"fastpath-sk-udp-query")),
        ("backend", pod(BACKEND_MAC) / ip(BACKEND, CLIENT, 0x2002) / UDP(sport=5353, dport=40001) / Raw(b"fastpath-sk-udp-reply")),
        # 6-7: the client to an off-cluster host (masqueraded to the node's address) and that host's SYN-ACK.
        ("client", pod(CLIENT_MAC) / ip(CLIENT, EXTERNAL, 0x1004)
         / TCP(sport=40002, dport=443, flags="S", seq=7000, window=64240, options=[("MSS", 1460)])),
        ("outside", Ether(src=OUTSIDE_MAC, dst=NODE_MAC) / ip(EXTERNAL, NODE_IP, 0x3001)
         / TCP(sport=443, dport=40002, flags="SA", seq=9000, ack=7001, window=65160, options=[("MSS", 1460)])),
    ]


def socket_in(netns, protocol=0):
    """An AF_PACKET socket bound to eth0 of network namespace `netns` (sockets keep the namespace they were made in);
    protocol 0 only sends, socket.htons(ETH_P_ALL) also receives every frame."""
    libc = ctypes.CDLL(None, use_errno=True)
    fd = os.open(f"/var/run/netns/{netns}", os.O_RDONLY)
    try:
        if libc.setns(fd, 0x40000000) != 0:  # CLONE_NEWNET
            raise OSError(ctypes.get_errno(), f"setns {netns}")
        s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, protocol)
        s.bind(("eth0", socket.ntohs(protocol)))  # the address takes host order, socket() network order
        return s
    finally:
        os.close(fd)


def main():
    out, namespaces = sys.argv[1], dict(zip(("client", "backend", "outside"), sys.argv[2:5]))
    sequence = [(who, Ether(bytes(f))) for who, f in frames()]
    for i, (_, f) in enumerate(sequence):
        f.time = 1_700_000_000 + i  # the replay merges the per-port captures by timestamp: same order as sent here
    for who in namespaces:
        wrpcap(os.path.join(out, f"in-{who}.pcap"), [f for w, f in sequence if w == who])
    sockets = {who: socket_in(ns) for who, ns in namespaces.items()}
    for who, f in sequence:
        sockets[who].send(bytes(f))
        time.sleep(0.05)  # let the node's softirq finish this packet (and its conntrack entry) before the next


if __name__ == "__main__":
    main()
