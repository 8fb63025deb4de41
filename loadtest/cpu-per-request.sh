#!/bin/bash
# cpu-per-request.sh BIN_DIR [SECONDS]: CPU time (µs) certfront spends per keep-alive request, HTTP/1.1
# then HTTP/2, measured as loadtest/compare.sh does (utime+stime of its process tree from /proc, via
# `certfront-loadtest proc`) around one `certfront-loadtest requests` run each. BIN_DIR holds
# release builds of certfront and certfront-loadtest; run it for two builds, alternating, to compare.
set -euo pipefail
BIN=$1; DURATION=${2:-10}
W=$(mktemp -d /tmp/certfront-cpu.XXXXXX)
LT=$BIN/certfront-loadtest; CF=$BIN/certfront
# shellcheck source=loadtest/lib.sh
. "$(dirname "$0")/lib.sh"
pki "$W" bench.localhost
loadtest_backend "$LT" "$W" 600
PORT=$(free_port)
cat > "$W/certfront.toml" <<EOT
[server]
listen = ["127.0.0.1:$PORT"]
access_log = false
rescan_seconds = 0
[tls]
trust = ["$W/ca.pem"]
resumption = false
[[host]]
fqdn = "bench.localhost"
cert = "$W/leaf.pem"
key = "$W/leaf-key.pem"
upstream = "http://$BACKEND"
EOT
RUST_LOG=warn "$CF" run -c "$W/certfront.toml" 2> "$W/certfront.log" & CPID=$!
sleep 1
T="--addr 127.0.0.1:$PORT --sni bench.localhost --ca $W/ca.pem"
"$LT" --threads 2 requests $T --h1 --connections 8 --duration 2 > /dev/null
jnum() { python3 -c "import json,sys; print(json.loads(sys.argv[2])[sys.argv[1]])" "$1" "$2"; }
for mode in "--h1 --connections 32" "--h2 --connections 32 --streams 10"; do
  b=$(jnum cpu_us "$("$LT" proc --json --pid $CPID)")
  out=$("$LT" --json requests $T $mode --duration "$DURATION")
  a=$(jnum cpu_us "$("$LT" proc --json --pid $CPID)")
  n=$(jnum requests "$out")
  echo "$(basename $BIN) ${mode%% *} requests=$n cpu_us_each=$(python3 -c "print(round(($a-$b)/$n,2))") p99=$(python3 -c "import json,sys; d=json.loads(sys.argv[1]); print({k:v for k,v in d.items() if 'p99' in k or k=='errors' or k=='requests_per_second'})" "$out")"
done
kill $CPID $BPID 2>/dev/null; wait $CPID $BPID 2>/dev/null || true
rm -rf "$W"
