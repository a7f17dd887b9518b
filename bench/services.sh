#!/usr/bin/env bash
# The services issue's figures, covey against Docker Swarm in the same run (as root): the
# time from `service create -d` to 1, 10 and 30 replicas running, median and range of
# several trials, with the ratio to the 10x goal; busybox pre-pulled on both from the same
# local registry, plus one 30-replica trial without it. Each engine is a single-node swarm
# in its own network namespace.
# The measuring is tests/benches/services.rs (it reuses the test harness's network); it
# removes everything it started, failure or not.
# usage: bench/services.sh   (env: BENCH_TRIALS=5 BENCH_TIMEOUT=120 BENCH_SETTLE_MS=1000)
exec "$(dirname "$0")/harness-bench.sh" services
