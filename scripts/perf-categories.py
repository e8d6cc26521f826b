#!/usr/bin/env python3
"""Summarises `perf report --no-children --sort dso,sym -g none --stdio` output of a `fastpath run` process into where a
live packet's time goes: the engine's own (JIT-compiled) code, copies between user and kernel memory, checksums,
system call and TAP driver overhead, the receiving stack's work done inside FastPath's writes, poll and scheduling.
Used by scripts/profile-live.sh."""
import re
import sys

RULES = [
    ("copies user<->kernel", r"copy_to_iter|copy_from_iter|copy_user|rep_movs|memcpy|memmove|copy_page|skb_copy_datagram"),
    ("checksums", r"csum|checksum"),
    ("segmentation (GSO) in the kernel", r"segment|gso|tso"),
    ("poll, wake-ups and scheduling", r"poll|schedule|switch|wake|futex|yield|idle|raw_spin_unlock_irqrestore|ttwu|enqueue|dequeue"),
    ("system calls and the TAP driver", r"^tun_|syscall|entry_|__GI___writev|^read$|^write|__libc|exit_to_user|fdget|fput|__x64_sys|ksys_|vfs_"),
    ("the receiving stack's TCP/IP (inside FastPath's writes)", r"tcp|ip_|ipv6|inet|sock|skb|netif|napi|dev_|__dev|neigh|eth_|br_|nf_|rcu|kmem|kfree|alloc|page|slab"),
]

def main(path):
    totals, engine, other = {}, 0.0, 0.0
    for line in open(path, errors="replace"):
        m = re.match(r"\s*([\d.]+)%\s+(.+?)\s+\[(.)\]\s+(.*)", line)
        if not m:
            continue
        pct, dso, kind, sym = float(m.group(1)), m.group(2), m.group(3), m.group(4).strip()
        if kind == "." and ("perf-" in dso or "JIT" in dso or dso.startswith("[unknown]") or "memfd:doublemapper" in dso
                             or "libcoreclr" in dso or "libclrjit" in dso or sym.startswith("FastPath.") or "[FastPath" in sym):
            engine += pct
            continue
        for name, pattern in RULES:
            if re.search(pattern, sym):
                totals[name] = totals.get(name, 0) + pct
                break
        else:
            other += pct
    rows = [("FastPath's own code (engine, port loop; JIT)", engine)] + [(n, totals.get(n, 0)) for n, _ in RULES] + [("other", other)]
    for name, pct in rows:
        print(f"{name}\t{pct:.1f}")

main(sys.argv[1])
