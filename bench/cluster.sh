#!/usr/bin/env bash
# The cluster issue's figures, covey against Docker Swarm in the same run (as root):
# a 3-manager + 1-worker swarm of each, one network namespace per node; store commit
# latency and throughput on a clean link and at 100 ms delay / 10% loss; leader kill to
# new leader; idle RSS of a manager and a worker; idle disk writes per hour.
# The measuring is tests/benches/cluster/ (it reuses the test harness's network); it
# removes everything it started, failure or not.
# usage: bench/cluster.sh   (env: BENCH_WRITES=100 BENCH_THROUGHPUT_SECS=10
#        BENCH_FAILOVER_TRIALS=3 BENCH_IDLE_SETTLE=30 BENCH_IDLE_WINDOW=60)
exec "$(dirname "$0")/harness-bench.sh" cluster
