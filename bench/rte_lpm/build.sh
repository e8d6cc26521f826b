#!/bin/sh
# Builds the rte_lpm peer against Debian's libdpdk-dev (apt-get install libdpdk-dev pkg-config).
set -e
cd "$(dirname "$0")"
cc -O3 -march=native -Wall -Wextra -o rte_lpm_bench rte_lpm_bench.c $(pkg-config --cflags --libs libdpdk)
