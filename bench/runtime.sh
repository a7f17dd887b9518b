#!/usr/bin/env bash
# The runtime issue's figures, in one run (as root):
#   1. create+start+wait of /bin/true: covey's runtime in-process, runc and crun on the
#      same bundle (cargo bench -p covey-runtime --bench lifecycle), medians and ratios;
#   2. 100 `sleep` containers started concurrently through the daemon: how many failed,
#      and the daemon's (and its runtime helper's) RSS growth per running container.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
N=${N:-100}
COVEY=$ROOT/target/release/covey
TMP=$(mktemp -d /tmp/covey-rtbench.XXXXXX)
DPID=

cleanup() {
    if [ -S "$TMP/run/covey.sock" ]; then
        "$COVEY" -H "unix://$TMP/run/covey.sock" container ls -aq 2>/dev/null |
            xargs -r "$COVEY" -H "unix://$TMP/run/covey.sock" container rm -f >/dev/null 2>&1 || true
    fi
    if [ -n "$DPID" ]; then kill "$DPID" 2>/dev/null || true; wait "$DPID" 2>/dev/null || true; fi
    awk -v t="$TMP" 'index($5, t) == 1 {print $5}' /proc/self/mountinfo | sort -r | xargs -r -n1 umount -l 2>/dev/null || true
    rm -rf "$TMP"
}
trap cleanup EXIT

"$ROOT/scripts/install-deps" >/dev/null
command -v runc >/dev/null && command -v crun >/dev/null ||
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends runc crun >/dev/null
cd "$ROOT"
echo "== create+start+wait of /bin/true"
cargo bench -q -p covey-runtime --bench lifecycle 2>/dev/null
cargo build -q --release -p covey

echo "== $N containers started concurrently through the daemon"
python3 tests/fixtures/build-images.py "$TMP/fx" >/dev/null
"$COVEY" daemon --data-root "$TMP/data" --exec-root "$TMP/run" >"$TMP/daemon.log" 2>&1 &
DPID=$!
for _ in $(seq 100); do [ -S "$TMP/run/covey.sock" ] && break; sleep 0.1; done
C() { "$COVEY" -H "unix://$TMP/run/covey.sock" "$@"; }
C image load -i "$TMP/fx/busybox-save.tar" >/dev/null
HELPER=$(pgrep -P "$DPID" -f runtime-helper)
# The whole path: CLI, API, snapshot, the helper's create, start, wait, remove.
runs=()
for i in $(seq 20); do
    t0=$(date +%s.%N)
    C container run --rm covey-test/saved true
    runs+=("$(awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN {printf "%.1f", (b - a) * 1000}')")
done
echo "covey container run --rm true (CLI, daemon, helper; median of 20): $(printf '%s\n' "${runs[@]}" | sort -g | awk '{v[NR] = $1} END {print v[int((NR + 1) / 2)]}') ms"
rss() { awk '/^VmRSS:/ {print $2}' "/proc/$1/status"; }
before=$(( $(rss "$DPID") + $(rss "$HELPER") ))
t0=$(date +%s.%N)
seq "$N" | xargs -P "$N" -I{} "$COVEY" -H "unix://$TMP/run/covey.sock" container run -d --name "sleeper-{}" covey-test/saved sleep 600 \
    >"$TMP/started" 2>"$TMP/failed" || true
t1=$(date +%s.%N)
running=$(C container ls -q | wc -l)
sleep 1
after=$(( $(rss "$DPID") + $(rss "$HELPER") ))
echo "started: $running of $N running, $(grep -c . "$TMP/failed" || true) errors, in $(awk -v a="$t0" -v b="$t1" 'BEGIN {printf "%.2f", b - a}') s"
echo "daemon+helper RSS: $((before / 1024)) MB idle, $((after / 1024)) MB with $running running"
awk -v a="$after" -v b="$before" -v n="$running" 'BEGIN {printf "RSS growth per running container: %.0f kB (goal: under 512 kB; a containerd shim costs about 13 MB)\n", (a - b) / (n > 0 ? n : 1)}'
