#!/usr/bin/env bash
# The networking issue's figures (as root): TCP throughput and round trip between two
# tasks on an overlay network on two nodes, against the bare veths between the nodes, in
# one run, and the latency of a name lookup from a task. The measuring is
# tests/benches/network.rs (it reuses the test harness's network namespaces).
# usage: bench/network.sh   (env: BENCH_SECONDS=5 BENCH_LOOKUPS=2000)
exec "$(dirname "$0")/harness-bench.sh" network
