#!/usr/bin/env bash
# access_log_cost.sh: CPU per request of certfront with the access log off, and writing
# the W3C format (or FORMATS) to a file, under the same keep-alive load.
#
# CPU is certfront's utime+stime from /proc (`certfront-loadtest proc`) around each run,
# divided by the requests served: that ratio holds while the load generator shares the
# cores. The formats alternate ROUNDS times so that a slow moment of the machine does not
# land on one format only; the median per format is printed.
#
# Usage:  loadtest/access_log_cost.sh      (~1 minute with the defaults)
# Env:    DURATION=5  seconds per run      ROUNDS=3      FORMATS="off w3c"
#         H2=1  HTTP/2 (32 connections x 10 streams) instead of HTTP/1.1 (32 connections)
#         CF_PORT=18453  BIN_DIR=DIR (binaries there, no build)  KEEP=1 (keep the work dir)
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
DURATION=${DURATION:-5}
ROUNDS=${ROUNDS:-3}
FORMATS=${FORMATS:-off w3c}
CF_PORT=${CF_PORT:-18453}
NAME=bench.localhost
WORK=$(mktemp -d /tmp/certfront-logcost.XXXXXX)
PIDS=()
CF_PID=""

cleanup() {
    # Only the processes this script started, by their pid.
    for p in "${PIDS[@]}" $CF_PID; do kill "$p" 2>/dev/null || true; done
    for p in "${PIDS[@]}" $CF_PID; do wait "$p" 2>/dev/null || true; done
    if [[ -z "${KEEP:-}" ]]; then rm -rf "$WORK"; else echo "work directory kept: $WORK" >&2; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM
say() { echo "== $*" >&2; }
jnum() { grep -o "\"$1\":[0-9.eE+-]*" <<< "$2" | head -1 | cut -d: -f2; }

if [[ -z "${BIN_DIR:-}" ]]; then
    say "building release binaries"
    (cd "$ROOT" && cargo build --release -q -p certfront -p certfront-loadtest)
    BIN_DIR=${CARGO_TARGET_DIR:-$ROOT/target}/release
fi
LT=$BIN_DIR/certfront-loadtest
CF=$BIN_DIR/certfront

# shellcheck source=loadtest/lib.sh
. "$(dirname "$0")/lib.sh"
pki "$WORK" "$NAME"
loadtest_backend "$LT" "$WORK" 1800
PIDS+=("$BPID")

if [[ -n "${H2:-}" ]]; then LOAD=(--h2 --connections 32 --streams 10); else LOAD=(--h1 --connections 32); fi
TARGET=(--addr "127.0.0.1:$CF_PORT" --sni "$NAME" --ca "$WORK/ca.pem")

# run FORMAT: starts certfront with that access log, loads it, prints CPU µs per request.
run() {
    cat > "$WORK/certfront.toml" <<TOML
[server]
listen = ["127.0.0.1:$CF_PORT"]
access_log = "$1"
access_log_file = "$WORK/access.log"
rescan_seconds = 0
watch_config = false
[tls]
trust = ["$WORK/ca.pem"]
[[host]]
fqdn = "$NAME"
cert = "$WORK/leaf.pem"
key = "$WORK/leaf-key.pem"
upstream = "http://$BACKEND"
TOML
    rm -f "$WORK/access.log"
    RUST_LOG=warn "$CF" run -c "$WORK/certfront.toml" 2>> "$WORK/certfront.log" &
    CF_PID=$!
    for _ in $(seq 100); do
        out=$("$LT" --json requests "${TARGET[@]}" --connections 1 --duration 1 --max-requests 1 2>/dev/null || true)
        [[ "$(jnum requests "$out")" == 1 ]] && break
        sleep 0.1
    done
    "$LT" --threads 2 requests "${TARGET[@]}" "${LOAD[@]}" --duration 1 > /dev/null   # warm-up
    local before after n
    before=$(jnum cpu_us "$("$LT" proc --json --pid "$CF_PID")")
    out=$("$LT" --json --threads 2 requests "${TARGET[@]}" "${LOAD[@]}" --duration "$DURATION")
    after=$(jnum cpu_us "$("$LT" proc --json --pid "$CF_PID")")
    n=$(jnum requests "$out")
    local lines=0
    [[ -f "$WORK/access.log" ]] && lines=$(grep -vc '^#' "$WORK/access.log" || true)
    kill "$CF_PID"; wait "$CF_PID" 2>/dev/null || true; CF_PID=""
    awk -v a="$after" -v b="$before" -v n="$n" -v f="$1" -v l="$lines" -v r="$(jnum requests_per_s "$out")" \
        'BEGIN { printf "%s %.2f %d %.0f %d\n", f, (a - b) / n, n, r, l }'
}

say "format cpu_us_per_request requests requests_per_s log_lines"
for round in $(seq "$ROUNDS"); do
    for f in $FORMATS; do run "$f" | tee -a "$WORK/results.txt"; done
done
say "median CPU µs per request:"
for f in $FORMATS; do
    awk -v f="$f" '$1 == f { print $2 }' "$WORK/results.txt" | sort -n |
        awk -v f="$f" '{ v[NR] = $1 } END { printf "%s %.2f\n", f, v[int((NR + 1) / 2)] }'
done
