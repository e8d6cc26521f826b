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
  clients.py probe BASE-PORT TIMEOUT NAME,PROTOCOL,PORT,ADDRESS...
      tries every target at once (one thread each) and prints one line per target, in order: the target, then "allow"
      when the server NAME answered within TIMEOUT seconds, "deny" when nothing came back (a policy drops silently),
      or "error: ..." (refused, wrong server). PROTOCOL: tcp (an HTTP GET), udp (a datagram), icmp (an echo request
      from an ICMP socket, net.ipv4.ping_group_range permitting; PORT unused). Target i is sent from source port (or
      echo id) BASE-PORT + i, so the caller can keep every flow's tuple new to the nodes' conntrack.
  clients.py established HOST PORT MARKER SECONDS
      one keep-alive HTTP connection: a GET, then waits (SECONDS at most) until the file MARKER exists, then a GET on
      the same connection and one on a new connection (2 s timeout each); one line each: "first|same|new: BODY" or
      "first|same|new: error: ...".
"""
import http.client
import os
import socket
import struct
import sys
import threading
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


def get(conn):
    conn.request("GET", "/")
    return conn.getresponse().read().decode().strip()


def probe_tcp(name, address, port, source_port, timeout):
    conn = http.client.HTTPConnection(address, port, timeout=timeout, source_address=("", source_port))
    try:
        return get(conn)
    finally:
        conn.close()


def probe_udp(name, address, port, source_port, timeout):
    family = socket.AF_INET6 if ":" in address else socket.AF_INET
    with socket.socket(family, socket.SOCK_DGRAM) as sock:
        sock.settimeout(timeout)
        sock.bind(("", source_port))
        sock.sendto(b"probe", (address, port))
        data, source = sock.recvfrom(512)
        return data.decode().strip() if source[0] == address else f"{source[0]} answered"


def probe_icmp(name, address, port, source_port, timeout):
    v6 = ":" in address
    family, protocol, request, reply = (socket.AF_INET6, socket.IPPROTO_ICMPV6, 128, 129) if v6 else (socket.AF_INET, socket.IPPROTO_ICMP, 8, 0)
    with socket.socket(family, socket.SOCK_DGRAM, protocol) as sock:
        sock.settimeout(timeout)
        sock.bind(("", source_port))  # an ICMP socket's port is its echo id; the kernel fills in id and checksum
        sock.sendto(struct.pack("!BBHHH", request, 0, 0, 0, 1) + b"probe", (address, 0))
        data, source = sock.recvfrom(512)
        ok = source[0] == address and data[0] == reply
        return f"{name} echo reply" if ok else f"type {data[0]} from {source[0]}"


PROBES = {"tcp": probe_tcp, "udp": probe_udp, "icmp": probe_icmp}


def probe(base_port, timeout, targets):
    results = [None] * len(targets)

    def run(i, target):
        name, protocol, port, address = target.split(",")
        try:
            answer = PROBES[protocol](name, address, int(port), base_port + i, timeout)
            results[i] = "allow" if answer.startswith(name + " ") else f"error: answered {answer!r}"
        except (socket.timeout, TimeoutError):
            results[i] = "deny"
        except OSError as e:
            results[i] = f"error: {e}"

    threads = [threading.Thread(target=run, args=(i, t), daemon=True) for i, t in enumerate(targets)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout + 5)
    for target, result in zip(targets, results):
        print(f"{target} {result or 'error: no result'}", flush=True)


def established(host, port, marker, seconds):
    conn = http.client.HTTPConnection(host, port, timeout=2)
    steps = [("first", lambda: get(conn)), ("same", lambda: get(conn)), ("new", lambda: probe_tcp("", host, port, 0, 2))]
    for step, request in steps:
        if step == "same":
            end = time.time() + seconds
            while not os.path.exists(marker) and time.time() < end:
                time.sleep(0.05)
        try:
            print(f"{step}: {request()}", flush=True)
        except (OSError, http.client.HTTPException) as e:
            print(f"{step}: error: {e!r}", flush=True)


if __name__ == "__main__":
    mode = sys.argv[1]
    if mode == "http":
        http_connections(sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5]))
    elif mode == "udp-flow":
        udp_flow(sys.argv[2], int(sys.argv[3]), sys.argv[4], float(sys.argv[5]))
    elif mode == "probe":
        probe(int(sys.argv[2]), float(sys.argv[3]), sys.argv[4:])
    elif mode == "established":
        established(sys.argv[2], int(sys.argv[3]), sys.argv[4], float(sys.argv[5]))
    else:
        sys.exit(f"unknown mode {mode}")
