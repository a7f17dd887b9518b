#!/usr/bin/env bash
# The scheduler issue's figure: the scheduler alone placing 100,000 pending tasks of 100
# services on 10,000 simulated nodes, in release, with the time and the process's peak RSS
# (node/benches/scheduler.rs). Needs no root and no daemon.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
cargo bench -q -p covey --bench scheduler
