#!/usr/bin/env python3
"""A demo pod's backend (scripts/demo-cluster.sh starts one per server pod, inside its network namespace).

  demo-backend.py NAME IPV4 [TCP-PORTS [UDP-PORTS]]

TCP-PORTS (comma-separated, default 8080; HTTP/1.1 with keep-alive, IPv4 and IPv6): answers every GET with "NAME
CLIENT-ADDRESS", the address the pod saw the connection come from (so tests can check Service SNAT and source
preservation); a POST is answered with "NAME SHA256 LENGTH" of its body (so tests can check bulk bytes arrive intact).
UDP-PORTS (default 5353): a DNS query gets a DNS response with one A record, IPV4 (so `dig` shows which backend
answered); any other datagram is answered with "NAME CLIENT-ADDRESS".
"""
import hashlib
import http.server
import socket
import socketserver
import struct
import sys
import threading

NAME, IPV4 = sys.argv[1], sys.argv[2]
TCP_PORTS = [int(p) for p in (sys.argv[3] if len(sys.argv) > 3 else "8080").split(",")]
UDP_PORTS = [int(p) for p in (sys.argv[4] if len(sys.argv) > 4 else "5353").split(",")]


def peer(address):
    host = address[0]
    return host[7:] if host.startswith("::ffff:") else host


class Http(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive: several requests on one connection must reach one backend

    def do_GET(self):
        body = f"{NAME} {peer(self.client_address)}\n".encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_POST(self):
        digest, left = hashlib.sha256(), int(self.headers.get("Content-Length", "0"))
        total = left
        while left > 0:
            chunk = self.rfile.read(min(left, 1 << 16))
            if not chunk:
                break
            digest.update(chunk)
            left -= len(chunk)
        body = f"{NAME} {digest.hexdigest()} {total - left}\n".encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


class DualStackHttp(http.server.ThreadingHTTPServer):
    address_family = socket.AF_INET6
    daemon_threads = True
    request_queue_size = 128  # socketserver's 5 drops SYNs when many clients connect at once (the policy probers)

    def server_bind(self):
        self.socket.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
        super().server_bind()


def dns_answer(query):
    """A response to a standard query with one question: the question echoed, one A record (TTL 5) for it."""
    ident, flags, qdcount = struct.unpack("!HHH", query[:6])
    if flags & 0x8000 or qdcount != 1:
        return None
    end = 12
    while end < len(query) and query[end] != 0:
        end += query[end] + 1
    question = query[12:end + 5]
    if len(question) < 5:
        return None
    header = struct.pack("!HHHHHH", ident, 0x8180 | (flags & 0x0100), 1, 1, 0, 0)
    answer = b"\xc0\x0c" + struct.pack("!HHIH", 1, 1, 5, 4) + socket.inet_aton(IPV4)
    return header + question + answer


def udp(port):
    sock = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
    sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
    sock.bind(("::", port))
    while True:
        data, address = sock.recvfrom(4096)
        reply = dns_answer(data) if len(data) >= 17 else None
        sock.sendto(reply or f"{NAME} {peer(address)}\n".encode(), address)


for port in UDP_PORTS:
    threading.Thread(target=udp, args=(port,), daemon=True).start()
for port in TCP_PORTS[1:]:
    threading.Thread(target=DualStackHttp(("::", port), Http).serve_forever, daemon=True).start()
DualStackHttp(("::", TCP_PORTS[0]), Http).serve_forever()
