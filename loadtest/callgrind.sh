#!/bin/bash
# callgrind.sh BIN_DIR [REQUESTS]: user-space instructions certfront executes per proxied request,
# HTTP/1.1 then HTTP/2, under valgrind's callgrind: steady where CPU time on shared cores is not.
# certfront runs with its default configuration (one host, the loadtest backend) under callgrind;
# h2load drives a warm-up (64 HTTP/1.1 connections, then 32 HTTP/2 ones x 10 streams), then the
# counters are zeroed, REQUESTS (20000) are sent the same way, and the dump's total is divided
# by the requests h2load saw succeed. Then, when wrk is installed, full handshakes: wrk -t1 -c4
# with `Connection: close` for 20 s (a TLS 1.3 handshake and one request per connection),
# divided by the requests wrk made. The dumps stay in the printed directory for
# `callgrind_annotate --inclusive=no FILE` (where the instructions go).
# Needs: valgrind, nghttp2-client (h2load), openssl; BIN_DIR holds release builds of certfront and
# certfront-loadtest. Each mode takes about a minute. BACKEND=HOST:PORT uses a running backend
# instead of the loadtest's (e.g. nginx answering `return 200`, as compare.sh's second backend).
set -euo pipefail
BIN=$1; REQUESTS=${2:-20000}
W=$(mktemp -d /tmp/certfront-callgrind.XXXXXX)
LT=$BIN/certfront-loadtest; CF=$BIN/certfront
# shellcheck source=loadtest/lib.sh
. "$(dirname "$0")/lib.sh"
pki "$W" localhost
BPID=""
[[ -n "${BACKEND:-}" ]] || loadtest_backend "$LT" "$W" 900
PORT=$(free_port)
# certfront's defaults; resumption and the access log off as in compare.sh.
cat > "$W/certfront.toml" <<EOT
[server]
listen = ["127.0.0.1:$PORT"]
access_log = false
[tls]
trust = ["$W/ca.pem"]
resumption = false
[[host]]
fqdn = "localhost"
cert = "$W/leaf.pem"
key = "$W/leaf-key.pem"
upstream = "http://$BACKEND"
EOT
RUST_LOG=warn valgrind --tool=callgrind --callgrind-out-file="$W/callgrind.%p" \
  "$CF" run -c "$W/certfront.toml" 2> "$W/certfront.log" & VPID=$!
trap 'kill $VPID $BPID 2>/dev/null || true' EXIT   # $BPID may be empty: unquoted on purpose
for _ in $(seq 120); do
  curl -s -o /dev/null --cacert "$W/ca.pem" "https://localhost:$PORT/" && break; sleep 1
done
URL="https://localhost:$PORT/"
h2load --h1 -n 2000 -c64 "$URL" > /dev/null 2>&1
h2load -n 2000 -c32 -m10 "$URL" > /dev/null 2>&1
part=0
for mode in h1 h2; do
  part=$((part + 1))
  callgrind_control -z "$VPID" > /dev/null
  if [[ $mode == h1 ]]; then out=$(h2load --h1 -n "$REQUESTS" -c64 "$URL" 2>&1)
  else out=$(h2load -n "$REQUESTS" -c32 -m10 "$URL" 2>&1); fi
  n=$(awk '/^requests:/ {print $8}' <<< "$out")
  callgrind_control -d "$mode" "$VPID" > /dev/null
  sleep 1
  f="$W/callgrind.$VPID.$part"   # callgrind numbers its dumps from 1
  ir=$(callgrind_annotate "$f" 2>/dev/null | awk '/PROGRAM TOTALS/ {gsub(",", "", $1); print $1}')
  echo "$mode: $n requests, $ir instructions, $(awk -v a="$ir" -v n="$n" 'BEGIN { printf "%.0f", a / n }') per request ($f)"
done
if command -v wrk > /dev/null; then
  wrk -t1 -c4 -d3s -H "Connection: close" "$URL" > /dev/null 2>&1
  callgrind_control -z "$VPID" > /dev/null
  out=$(wrk -t1 -c4 -d20s -H "Connection: close" "$URL" 2>&1)
  n=$(awk '/requests in/ {print $1}' <<< "$out")
  callgrind_control -d handshakes "$VPID" > /dev/null
  sleep 1
  f="$W/callgrind.$VPID.3"
  ir=$(callgrind_annotate "$f" 2>/dev/null | awk '/PROGRAM TOTALS/ {gsub(",", "", $1); print $1}')
  echo "handshake: $n handshakes + requests, $ir instructions, $(awk -v a="$ir" -v n="$n" 'BEGIN { printf "%.0f", a / n }') each ($f)"
fi
