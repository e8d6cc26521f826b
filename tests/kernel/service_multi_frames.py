#!/usr/bin/python3
"""Frames of the three-endpoint Service kernel differential test (ServiceKernelMultiEndpointTests): TCP handshakes and
UDP exchanges between the client pod and ClusterIP 10.96.0.20, where each reply comes from whichever endpoint the
connection was sent to. Which one that is depends on the load balancer (the kernel's `numgen random`, FastPath's
Maglev), so the sequence is built step by step from the choices.

    service_multi_frames.py send DIR CLIENT_NS BACKEND_NS BACKEND2_NS BACKEND3_NS
        sends the sequence through the test's own namespaces, waiting after each frame for the one delivery it causes
        (AF_PACKET sockets in the receiving pods), and writes DIR/in-<sender>.pcap (what was sent, in order) and
        DIR/kernel-<receiver>.pcap (what arrived); never sends anywhere else.
    service_multi_frames.py craft DIR CHOICES
        writes DIR/in-<sender>.pcap for the given endpoint index per connection (comma-separated, TCP connections first,
        then UDP flows), for `fastpath replay`.
"""
import os
import select
import socket
import sys
from scapy.all import Ether, IP, TCP, UDP, Raw, wrpcap
from service_frames import CLIENT_MAC, CLIENT, GATEWAY_MAC, socket_in

SERVICE_IP = "10.96.0.20"
BACKENDS = [("10.244.1.11", "02:42:0a:f4:01:0b"), ("10.244.1.12", "02:42:0a:f4:01:0c"), ("10.244.1.13", "02:42:0a:f4:01:0d")]
RECEIVERS = ["client", "backend", "backend2", "backend3"]
TCP_CONNECTIONS, UDP_FLOWS = 8, 4
ETH_P_ALL, PACKET_OUTGOING = 3, 4
WAIT = 3.0  # seconds a delivery may take before the step counts as lost


def ip(src, dst, ident):
    return IP(src=src, dst=dst, ttl=64, id=ident, flags="DF")


def client_frame(l4, ident):
    return Ether(src=CLIENT_MAC, dst=GATEWAY_MAC) / ip(CLIENT, SERVICE_IP, ident) / l4


def backend_frame(k, l4, ident):
    address, mac = BACKENDS[k]
    return Ether(src=mac, dst=GATEWAY_MAC) / ip(address, CLIENT, ident) / l4


def steps():
    """(connection, sender, frame-or-reply-builder): a builder takes the endpoint index the connection went to.
    Identification, sequence numbers and payloads depend only on the connection, never on the endpoint, so what reaches
    the client after reverse NAT is the same whichever endpoint answered."""
    for c in range(TCP_CONNECTIONS):
        sport, n = 45000 + c, 0x100 * (c + 1)
        yield c, "client", client_frame(TCP(sport=sport, dport=80, flags="S", seq=1000 + c, window=64240, options=[("MSS", 1460)]), n)
        yield c, "backend", lambda k, sport=sport, n=n, c=c: backend_frame(k, TCP(
            sport=8080, dport=sport, flags="SA", seq=9000 + c, ack=1001 + c, window=65160, options=[("MSS", 1460)]), n + 0x80)
        yield c, "client", client_frame(TCP(sport=sport, dport=80, flags="A", seq=1001 + c, ack=9001 + c, window=502), n + 1)
    for u in range(UDP_FLOWS):
        c, sport, n = TCP_CONNECTIONS + u, 46000 + u, 0x4000 + 0x100 * u
        yield c, "client", client_frame(UDP(sport=sport, dport=7000) / Raw(b"fastpath-multi-query-%d" % u), n)
        yield c, "backend", lambda k, sport=sport, n=n, u=u: backend_frame(k, UDP(sport=7007, dport=sport) / Raw(b"fastpath-multi-reply-%d" % u), n + 0x80)
        yield c, "client", client_frame(UDP(sport=sport, dport=7000) / Raw(b"fastpath-multi-again-%d" % u), n + 1)


def sender_name(k):
    return RECEIVERS[1 + k]


def write_inputs(out, sent):
    for i, (_, f) in enumerate(sent):
        f.time = 1_700_000_000 + i  # the replay merges the per-port captures by timestamp: same order as sent
    for who in RECEIVERS:
        frames = [f for w, f in sent if w == who]
        if frames:
            wrpcap(os.path.join(out, f"in-{who}.pcap"), frames)


def craft(out, choices):
    sent = []
    for c, who, f in steps():
        if callable(f):
            sent.append((sender_name(choices[c]), Ether(bytes(f(choices[c])))))
        else:
            sent.append((who, Ether(bytes(f))))
    write_inputs(out, sent)


def receive(listeners, deadline_s):
    """The first IPv4 frame delivered to any pod after now (outgoing copies and other EtherTypes skipped): (who, bytes)."""
    remaining = deadline_s
    while remaining > 0:
        ready, _, _ = select.select(list(listeners.values()), [], [], remaining)
        if not ready:
            break
        for who, s in listeners.items():
            if s in ready:
                data, address = s.recvfrom(65535)
                if address[2] != PACKET_OUTGOING and data[12:14] == b"\x08\x00":
                    return who, data
        remaining = 0.5
    return None, None


def send(out, namespaces):
    senders = {who: socket_in(ns) for who, ns in zip(RECEIVERS, namespaces)}
    listeners = {who: socket_in(ns, socket.htons(ETH_P_ALL)) for who, ns in zip(RECEIVERS, namespaces)}
    sent, received, choice = [], {who: [] for who in RECEIVERS}, {}
    for c, who, f in steps():
        if callable(f):
            if c not in choice:
                break  # the request was lost: stop; the test reports the missing deliveries
            who, f = sender_name(choice[c]), f(choice[c])
        frame = Ether(bytes(f))
        sent.append((who, frame))
        senders[who].send(bytes(frame))
        got, data = receive(listeners, WAIT)
        if got is None:
            continue
        received[got].append(data)
        if got != "client":
            choice.setdefault(c, RECEIVERS.index(got) - 1)
    write_inputs(out, sent)
    for who, frames in received.items():
        wrpcap(os.path.join(out, f"kernel-{who}.pcap"), [Ether(d) for d in frames], linktype=1)
    print("kernel endpoint per connection:", ",".join(str(choice.get(c, "-")) for c in range(TCP_CONNECTIONS + UDP_FLOWS)))


def main():
    mode, out = sys.argv[1], sys.argv[2]
    if mode == "send":
        send(out, sys.argv[3:7])
    else:
        craft(out, [int(x) for x in sys.argv[3].split(",")])


if __name__ == "__main__":
    main()
