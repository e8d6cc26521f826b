#!/usr/bin/env bash
# Installs what FastPath's commands and tests need on Debian, only when something is missing:
# libpcap (SharpPcap, benchmarks), tshark (decodes every emitted packet in the tests),
# scapy for Debian's /usr/bin/python3 (the conformance runner), iproute2 and tcpdump (live and kernel differential tests),
# nftables (the Service kernel differential test programs kube-proxy's nftables rules in its namespaces),
# the tools the live demo and its end-to-end tests run inside pods (scripts/demo-cluster.sh, tests/FastPath.Tests/Live):
# ping, curl, nc, dig, iperf3, and ethtool (the live tests read the offloads a pod's TAP reports).
set -euo pipefail
missing=()
[ -e /usr/lib/x86_64-linux-gnu/libpcap.so.0.8 ] || ldconfig -p 2>/dev/null | grep -q 'libpcap.so.0.8' || missing+=(libpcap0.8)
command -v tshark >/dev/null 2>&1 || missing+=(tshark)
/usr/bin/python3 -c 'import scapy' >/dev/null 2>&1 || missing+=(python3-scapy)
command -v ip >/dev/null 2>&1 || missing+=(iproute2)
command -v tcpdump >/dev/null 2>&1 || missing+=(tcpdump)
command -v nft >/dev/null 2>&1 || missing+=(nftables)
command -v ping >/dev/null 2>&1 || missing+=(iputils-ping)
command -v curl >/dev/null 2>&1 || missing+=(curl)
nc -h 2>&1 | grep -q OpenBSD || missing+=(netcat-openbsd)
command -v dig >/dev/null 2>&1 || missing+=(bind9-dnsutils)
command -v iperf3 >/dev/null 2>&1 || missing+=(iperf3)
command -v ethtool >/dev/null 2>&1 || [ -x /usr/sbin/ethtool ] || missing+=(ethtool)
[ -x /usr/lib/cni/host-local ] || [ -x /opt/cni/bin/host-local ] || missing+=(containernetworking-plugins)
command -v nsenter >/dev/null 2>&1 || missing+=(util-linux)
if [ ${#missing[@]} -gt 0 ]; then
  echo "installing: ${missing[*]}"
  if [ "$(id -u)" != 0 ]; then echo "need root to apt-get install ${missing[*]}" >&2; exit 1; fi
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq "${missing[@]}" >/dev/null
fi
command -v dotnet >/dev/null 2>&1 || { echo "the .NET SDK (dotnet) is required: https://learn.microsoft.com/dotnet/core/install/linux-debian" >&2; exit 1; }
