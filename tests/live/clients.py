#!/usr/bin/env python3
"""Traffic generators the live end-to-end tests (tests/FastPath.Tests/Live) run inside the demo cluster's namespaces,
against scripts/demo-backend.py. Every loop is bounded in count and time.

  clients.py http HOST PORT CONNECTIONS REQUESTS
      CONNECTIONS connections one after another, REQUESTS keep-alive GETs on each; one line per connection: the
      bodies of its responses joined by " | " (each body is "BACKEND CLIENT-ADDRESS-SEEN"), or "error: ...".
  clients.py udp-flow HOST PORT WANT SECONDS
      one UDP flow (one socket, one source port) of DNS queries every 50 ms for SECONDS; first picks a source port
      whose answers come from the backend address WANT (up to 64 tries), so the flow starts on that backend.
      One line per query: "TIME ANSWER-ADDRESS" or "TIME lost".
"""
import http.client
import socket
import struct
import sys
import time


def http_connections(host, port, connections, requests):
    for _ in range(connections):
        bodies = []
        try:
            conn = http.client.HTTPConnection(host, port, timeout=3)
            for _ in range(requests):
                conn.request("GET", "/")
                bodies.append(conn.getresponse().read().decode().strip())
            conn.close()
            print(" | ".join(bodies), flush=True)
        except OSError as e:
            print(f"error: {e}", flush=True)


def query(ident):
    name = b"".join(bytes([len(p)]) + p for p in b"web.shop.svc.cluster.local".split(b".")) + b"\0"
    return struct.pack("!HHHHHH", ident, 0x0100, 1, 0, 0, 0) + name + struct.pack("!HH", 1, 1)


def ask(sock, address, ident):
    sock.sendto(query(ident), address)
    try:
        while True:
            data, source = sock.recvfrom(512)
            # Only the address asked answers: a reply that escaped reverse NAT comes from the backend's own address.
            if source[0] == address[0] and len(data) >= 16 and struct.unpack("!H", data[:2])[0] == ident:
                return socket.inet_ntoa(data[-4:])
    except socket.timeout:
        return None


def udp_flow(host, port, want, seconds):
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    address = (host, port)
    for attempt in range(64):
        sock = socket.socket(family, socket.SOCK_DGRAM)
        sock.settimeout(0.3)
        sock.bind(("", 0))
        if ask(sock, address, attempt) == want:
            break
        sock.close()
    else:
        print(f"error: no source port reached {want}", flush=True)
        return
    end = time.time() + seconds
    ident = 1000
    while time.time() < end:
        ident += 1
        answer = ask(sock, address, ident)
        print(f"{time.time():.3f} {answer or 'lost'}", flush=True)
        time.sleep(0.05)


if __name__ == "__main__":
    mode = sys.argv[1]
    if mode == "http":
        http_connections(sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5]))
    elif mode == "udp-flow":
        udp_flow(sys.argv[2], int(sys.argv[3]), sys.argv[4], float(sys.argv[5]))
    else:
        sys.exit(f"unknown mode {mode}")
