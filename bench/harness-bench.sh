#!/usr/bin/env bash
# Runs one of tests/benches (which reuse the test harness's network namespaces, as root)
# against a release build of covey, so that the figures are a deployed daemon's.
# usage: bench/harness-bench.sh NAME   (cluster, services, network)
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
TARGET=${CARGO_TARGET_DIR:-$ROOT/target}

"$ROOT/scripts/install-deps" >/dev/null
cd "$ROOT"
cargo build -q --release -p covey
COVEY_BIN=$TARGET/release/covey cargo bench -q -p covey-tests --bench "$1"
