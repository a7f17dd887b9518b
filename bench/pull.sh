#!/usr/bin/env bash
# Benchmark: pull + unpack a ~50 MB, 5-layer image from a local registry with
# covey, against skopeo copy + umoci unpack (the reference), in the same run.
# covey's pull also unpacks the layers into its store, so this is like-for-like.
# Prints medians of N runs (default 3) and covey's daemon peak RSS (VmHWM).
# usage: bench/pull.sh   (as root; env N=5 for more runs, COVEY_BIN=path to measure a
#        given build of covey instead of building target/release/covey)
set -euo pipefail

N=${N:-3}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
COVEY=${COVEY_BIN:-$ROOT/target/release/covey}
TMP=$(mktemp -d /tmp/covey-bench.XXXXXX)   # short: unix socket paths max 107 bytes
DPID=

stop_daemon() {  # SIGTERM, then SIGKILL after 10 s
    [ -n "$DPID" ] || return 0
    kill -TERM "$DPID" 2>/dev/null || true
    for _ in $(seq 100); do kill -0 "$DPID" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$DPID" 2>/dev/null || true
    wait "$DPID" 2>/dev/null || true
    DPID=
}
remove() {  # rm -rf, after unmounting anything covey left mounted below $1
    awk -v t="$1" 'index($5, t) == 1 {print $5}' /proc/self/mountinfo | sort -r |
        xargs -r -n1 umount -l 2>/dev/null || true
    rm -rf "$1"
}
cleanup() {
    stop_daemon
    "$ROOT/tests/fixtures/registry" stop "$TMP/reg" || true
    remove "$TMP"
}
trap cleanup EXIT

now() { date +%s.%N; }
elapsed() { awk -v a="$1" -v b="$2" 'BEGIN {printf "%.3f", b - a}'; }
median() { printf '%s\n' "$@" | sort -g | awk '{v[NR] = $1} END {print v[int((NR + 1) / 2)]}'; }

"$ROOT/scripts/install-deps" >/dev/null
[ -n "${COVEY_BIN:-}" ] || (cd "$ROOT" && cargo build --release -p covey)

python3 "$ROOT/tests/fixtures/build-images.py" "$TMP/fx" --bench | grep oci/bench
PORT=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
"$ROOT/tests/fixtures/registry" start "$TMP/reg" "$PORT"
"$ROOT/tests/fixtures/registry" push "$TMP/reg" "$PORT" "$TMP/fx/oci/bench" bench:latest
IMAGE=127.0.0.1:$PORT/bench:latest

ref=()
for i in $(seq "$N"); do
    rm -rf "$TMP/ref" "$TMP/bundle"
    t0=$(now)
    skopeo --policy "$TMP/reg/policy.json" copy -q --src-tls-verify=false \
        "docker://$IMAGE" "oci:$TMP/ref:latest"
    umoci unpack --image "$TMP/ref:latest" "$TMP/bundle" >/dev/null
    ref+=("$(elapsed "$t0" "$(now)")")
    echo "reference run $i: ${ref[-1]} s"
done
rm -rf "$TMP/ref" "$TMP/bundle"

cov=() rss=()
for i in $(seq "$N"); do
    D=$TMP/c$i/data E=$TMP/c$i/exec
    mkdir -p "$D" "$E"
    "$COVEY" daemon --data-root "$D" --exec-root "$E" -H "unix://$E/covey.sock" \
        --insecure-registry "127.0.0.1:$PORT" >"$TMP/c$i/daemon.log" 2>&1 &
    DPID=$!
    for _ in $(seq 300); do
        [ -S "$E/covey.sock" ] && break
        kill -0 "$DPID" 2>/dev/null || { cat "$TMP/c$i/daemon.log" >&2; exit 1; }
        sleep 0.1
    done
    [ -S "$E/covey.sock" ] || { echo "covey daemon: no socket after 30 s" >&2; exit 1; }
    idle=$(awk '/^VmRSS:/ {printf "%.1f", $2 / 1024}' "/proc/$DPID/status")
    t0=$(now)
    "$COVEY" -H "unix://$E/covey.sock" image pull -q "$IMAGE" >/dev/null
    cov+=("$(elapsed "$t0" "$(now)")")
    rss+=("$(awk '/^VmHWM:/ {printf "%.1f", $2 / 1024}' "/proc/$DPID/status")")
    stop_daemon
    remove "$TMP/c$i"
    echo "covey run $i: ${cov[-1]} s, peak RSS ${rss[-1]} MB (idle before the pull: $idle MB)"
done

r=$(median "${ref[@]}") c=$(median "${cov[@]}")
echo "reference (skopeo+umoci): $r s"
echo "covey: $c s"
awk -v c="$c" -v r="$r" 'BEGIN {printf "ratio covey/reference: %.2f\n", c / r}'
echo "covey daemon peak RSS: $(median "${rss[@]}") MB"
