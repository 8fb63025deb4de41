#!/bin/bash
# cpu-per-request.sh BIN_DIR [SECONDS]: CPU time (µs) certfront spends per keep-alive request, HTTP/1.1
# then HTTP/2, measured as loadtest/compare.sh does (utime+stime of its process tree from /proc, via
# `certfront-loadtest proc`) around one `certfront-loadtest requests` run each. BIN_DIR holds
# release builds of certfront and certfront-loadtest; run it for two builds, alternating, to compare.
set -euo pipefail
BIN=$1; DURATION=${2:-10}
W=$(mktemp -d /tmp/certfront-cpu.XXXXXX)
LT=$BIN/certfront-loadtest; CF=$BIN/certfront
openssl ecparam -name prime256v1 -genkey -noout -out "$W/ca-key.pem" 2>/dev/null
openssl req -x509 -new -key "$W/ca-key.pem" -subj "/CN=bench root" -days 2 \
  -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign" -out "$W/ca.pem" 2>/dev/null
openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$W/leaf-key.pem" 2>/dev/null; chmod 600 "$W/leaf-key.pem"
openssl req -new -key "$W/leaf-key.pem" -subj "/CN=bench.localhost" -out "$W/leaf.csr" 2>/dev/null
printf 'basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth\nsubjectAltName=DNS:bench.localhost\n' > "$W/leaf.ext"
openssl x509 -req -in "$W/leaf.csr" -CA "$W/ca.pem" -CAkey "$W/ca-key.pem" -CAcreateserial -days 2 -sha256 -extfile "$W/leaf.ext" -out "$W/leaf.pem" 2>/dev/null
"$LT" backend --listen 127.0.0.1:0 --max-seconds 600 > "$W/backend.addr" & BPID=$!
for _ in $(seq 50); do [[ -s "$W/backend.addr" ]] && break; sleep 0.1; done
BACKEND=$(head -1 "$W/backend.addr")
PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
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
